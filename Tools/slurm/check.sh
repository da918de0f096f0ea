#!/usr/bin/env bash
# `make slurm-verify`: the sharded verify on a one-node Slurm cluster on this machine, checked against the
# unsharded verify (docs/slurm.md). Starts the cluster (cluster.sh), runs run.sh into a temporary folder
# (N shards × 3 rounds, one shard of round 2 killed by default to show its re-run alone, then the merge), runs
# `arbiter verify --out` on the same inputs, checks the two results.json are equal except the "seconds" fields
# (same-results.sh), prints both wall times, and stops the cluster whatever happens.
#
#   Tools/slurm/check.sh [--arbiter PATH] [--shards N] [--kill-shard R:K | --no-kill] [--timeout SECONDS] [--keep]
#                        -- VERIFY-OPTIONS...
#
# The temporary folder (${TMPDIR:-/tmp}/arbiter-slurm-verify.*) is removed after a success unless --keep; after a
# failure it is kept and named.
set -euo pipefail

prog="check.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "$prog: $*" >&2; exit 2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

arbiter="$here/../../.build/release/arbiter" shards=4 kill="2:4" timeout=3600 keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --arbiter|--shards|--kill-shard|--timeout)
            [ $# -ge 2 ] || die "$1 needs a value"
            case $1 in
                --arbiter) arbiter=$2 ;; --shards) shards=$2 ;; --kill-shard) kill=$2 ;; --timeout) timeout=$2 ;;
            esac
            shift 2 ;;
        --no-kill) kill=""; shift ;;
        --keep) keep=1; shift ;;
        --) shift; break ;;
        *) die "unknown option $1 (verify options go after --)" ;;
    esac
done
[ $# -gt 0 ] || die "no verify options: give them after --, e.g. -- --model DIR --data DIR"
[ -x "$arbiter" ] && [ -f "$arbiter" ] || die "--arbiter $arbiter: not an executable file (make build)"

status=1 cluster_started=0 work=""
finish() {
    if [ "$cluster_started" = 1 ]; then
        "$here/cluster.sh" stop || echo "$prog: cluster.sh stop failed; see $here/cluster.sh status" >&2
    fi
    [ -n "$work" ] || return 0
    if [ "$status" = 0 ] && [ "$keep" = 0 ]; then
        rm -rf -- "$work"
    else
        echo "$prog: the run's folder is kept: $work"
    fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$here/cluster.sh" start      # refuses if a cluster of cluster.sh runs already: that one is not stopped here
cluster_started=1
work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-slurm-verify.XXXXXX")
eval "$("$here/cluster.sh" env)"

echo
echo "== sharded verify on the one-node Slurm cluster (run.sh)"
started=$(date +%s.%N)
"$here/run.sh" --work "$work/slurm" --shards "$shards" --arbiter "$arbiter" --poll 1 --timeout "$timeout" \
    ${kill:+--kill-shard "$kill"} -- "$@"
slurm_seconds=$(elapsed "$started")

echo
echo "== unsharded verify on the same inputs"
started=$(date +%s.%N)
"$arbiter" verify "$@" --out "$work/unsharded"
unsharded_seconds=$(elapsed "$started")

echo
echo "== check"
"$here/same-results.sh" "$work/slurm/report/results.json" "$work/unsharded/results.json"
printf '%s: sharded on Slurm (%s shards × 3 rounds + merge%s): %s s; unsharded verify: %s s\n' "$prog" \
    "$shards" "${kill:+, shard ${kill#*:} of round ${kill%%:*} killed and re-run alone}" "$slurm_seconds" \
    "$unsharded_seconds"
status=0
