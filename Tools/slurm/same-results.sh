#!/usr/bin/env bash
# Checks that two results.json files of `arbiter verify --out` / `arbiter merge --out` are byte for byte equal
# except their timing fields: the lines `"seconds" : NUMBER` (results.json is written with sorted keys, one field a
# line, so the two files have the same lines in the same order when the runs agree). On a difference it prints
# the first differing lines (diff -u) and exits 1.
#
#   Tools/slurm/same-results.sh A/results.json B/results.json [--ignore-key NAME]...   (default: seconds)
set -euo pipefail
prog="same-results.sh"
die() { echo "$prog: $*" >&2; exit 2; }

files=() keys=()
while [ $# -gt 0 ]; do
    case $1 in
        --ignore-key) [ $# -ge 2 ] || die "--ignore-key needs a field name"; keys+=("$2"); shift 2 ;;
        -*) die "unknown option $1" ;;
        *) files+=("$1"); shift ;;
    esac
done
[ ${#files[@]} = 2 ] || die "usage: $prog A/results.json B/results.json [--ignore-key NAME]..."
[ ${#keys[@]} -gt 0 ] || keys=(seconds)
for f in "${files[@]}"; do
    [ -f "$f" ] || die "$f: no such file"
    [ -s "$f" ] || die "$f: empty"
done
for k in "${keys[@]}"; do [[ "$k" =~ ^[A-Za-z0-9_]+$ ]] || die "--ignore-key $k: expected a field name"; done
pattern="^[[:space:]]*\"($(IFS='|'; echo "${keys[*]}"))\" : [-+0-9.eE\"a-z]+,?\$"

strip() { grep -Ev -- "$pattern" "$1" || true; }
ignored_a=$(grep -Ec -- "$pattern" "${files[0]}" || true)
ignored_b=$(grep -Ec -- "$pattern" "${files[1]}" || true)
differences=$(mktemp)
trap 'rm -f "$differences"' EXIT
if diff -u --label "${files[0]}" --label "${files[1]}" <(strip "${files[0]}") <(strip "${files[1]}") > "$differences"
then
    if [ "$ignored_a" != "$ignored_b" ]; then
        echo "$prog: ${files[0]} has $ignored_a timing field(s), ${files[1]} $ignored_b" >&2
        exit 1
    fi
    echo "$prog: the same results ($(wc -l < "${files[0]}") lines; $ignored_a timing field(s) ignored: ${keys[*]})"
else
    echo "$prog: ${files[0]} and ${files[1]} differ beyond the timing fields (${keys[*]}); first differences:" >&2
    head -n 40 "$differences" >&2
    exit 1
fi
