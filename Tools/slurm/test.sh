#!/usr/bin/env bash
# Tests of the Slurm scripts (`make slurm-test`; root, with slurm-wlm and munge installed): a one-node cluster in
# a private TMPDIR and the stand-in arbiter of Tools/slurm/test/arbiter, which follows the sharded verify's
# command-line contract without computing anything. Covers docs/slurm.md's one-node example as written, a shard
# killed before it runs and one cancelled while it runs (each re-run alone), a shard failing twice (run.sh gives
# up naming it, --resume finishes the run), a merge refusal, run.sh's refusals, the results check, check.sh (the
# body of `make slurm-verify`) passing and failing — the cluster stopped either way — and cluster.sh's start,
# status and stop (the daemons and a running job's processes gone, its folder removed, others' files untouched).
# `make slurm-verify` runs the same scripts with the real arbiter.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "test.sh: needs root (the cluster's daemons run as root)" >&2; exit 2; }
base=$(mktemp -d /tmp/arbiter-slurm-test.XXXXXX)
chmod 711 "$base"                 # munged wants every folder above its socket searchable by all
export TMPDIR=$base               # the cluster's folder and pointer live here: apart from any other cluster
export PATH="$here/test:$PATH"    # `arbiter` is the stand-in
unset ARBITER SLURM_CONF ARBITER_SLURM_KILL_SHARD
export STAND_IN_SECONDS=1
cd "$repo"
inputs=(--model GoldenData/controls/dense --data GoldenData/controls/data)
passed=0 failed=0 failures=()

cleanup() {
    "$here/cluster.sh" stop > /dev/null 2>&1 || true
    rm -rf -- "$base"
}
trap cleanup EXIT

# check NAME CONDITION...: records a pass if the command succeeds.
check() {
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1)); echo "  ok   $name"
    else
        failed=$((failed + 1)); failures+=("$name"); echo "  FAIL $name"
    fi
}
has() { grep -qF -- "$2" "$1"; }                    # has FILE TEXT
lacks() { ! grep -qF -- "$2" "$1"; }
status_is() { [ "$1" = "$2" ]; }
count_files() { find "$1" -maxdepth 1 -name "$2" | wc -l; }
cluster_gone() {                                    # no pointer, no folder, no process naming the folder
    local dir=$1
    [ ! -e "$TMPDIR/arbiter-slurm-cluster" ] && [ ! -e "$dir" ] \
        && ! grep -lF -- "$dir/" /proc/[0-9]*/cmdline > /dev/null 2>&1
}
find_process() {                                    # find_process "ARG ARG ": a pid whose command line is that
    local p
    for p in /proc/[0-9]*; do
        [ "$( { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null)" != "$1" ] || { echo "${p#/proc/}"; return; }
    done
}
run_logged() {                                      # run_logged LOG COMMAND...: status in $status
    local log=$1
    shift
    "$@" > "$log" 2>&1
    status=$?
}

echo "== docs/slurm.md: the one-node example, as written"
block=$(awk '/one-node example: run by Tools\/slurm\/test.sh/ { found = 1; next }
             found && /^```sh/ { inside = 1; next }
             inside && /^```/ { exit }
             inside { print }' docs/slurm.md)
check "the example is in docs/slurm.md" test -n "$block"
run_logged "$base/example.log" bash -e -c "$block"
check "the example exits 0" status_is "$status" 0
check "its merge ran" has "$base/example.log" "claim table of --model GoldenData/controls/dense"
check "its cluster is stopped" test ! -e "$TMPDIR/arbiter-slurm-cluster"

echo "== run.sh's refusals (no job submitted)"
mkdir -p "$base/full" && touch "$base/full/mine"
run_logged "$base/r1.log" "$here/run.sh" --work "$base/full" -- "${inputs[@]}"
check "a non-empty work folder is refused" status_is "$status" 2
check "  naming it" has "$base/r1.log" "--work $base/full: not empty"
check "  and left alone" test "$(ls -A "$base/full")" = mine
run_logged "$base/r2.log" "$here/run.sh" --work "$base/w2" -- "${inputs[@]}" --shard 1/4
check "--shard among the verify options is refused" status_is "$status" 2
check "  naming it" has "$base/r2.log" "verify option --shard: run.sh sets"
run_logged "$base/r3.log" "$here/run.sh" --work "$base/w3" --shards 0 -- "${inputs[@]}"
check "--shards 0 is refused" has "$base/r3.log" "--shards 0: expected 1–1000"
run_logged "$base/r4.log" "$here/run.sh" --work "$base/w4" --kill-shard 4:1 -- "${inputs[@]}"
check "--kill-shard of round 4 is refused" has "$base/r4.log" "round 4: a sharded run has rounds 1–3"
run_logged "$base/r5.log" "$here/run.sh" --work "$base/full" --resume -- "${inputs[@]}"
check "--resume of a folder run.sh did not make is refused" has "$base/r5.log" "was not made by run.sh"
run_logged "$base/r6.log" "$here/run.sh" --work "$base/w6" -- "${inputs[@]}"
check "without a cluster, sbatch's refusal stops run.sh" status_is "$status" 1

echo "== cluster.sh start, status, refusals"
echo "someone else's file" > "$TMPDIR/arbiter-slurm-cluster"
run_logged "$base/c0.log" "$here/cluster.sh" start
check "start refuses a pointer file it did not write" status_is "$status" 1
check "  and leaves it alone" test "$(cat "$TMPDIR/arbiter-slurm-cluster")" = "someone else's file"
run_logged "$base/c0s.log" "$here/cluster.sh" stop
check "stop refuses it too" status_is "$status" 1
rm -f "$TMPDIR/arbiter-slurm-cluster"
mkdir -p "$base/broken"
printf '#!/bin/sh\necho "slurmd: fatal: broken on purpose" >&2\nexit 1\n' > "$base/broken/slurmd"
chmod +x "$base/broken/slurmd"
PATH="$base/broken:$PATH" run_logged "$base/cb.log" "$here/cluster.sh" start
check "a start whose slurmd fails exits 1" status_is "$status" 1
check "  saying so" has "$base/cb.log" "start failed; stopping what it started"
broken=$(sed -n 's/^cluster.sh: removed //p' "$base/cb.log")
check "  having stopped munged and slurmctld and removed its folder" cluster_gone "${broken:-none}"
check "  which was its own" test -n "$broken"
run_logged "$base/c1.log" "$here/cluster.sh" start
check "start exits 0" status_is "$status" 0
cluster=$(sed -n 1p "$TMPDIR/arbiter-slurm-cluster" 2>/dev/null)
check "  in a folder of TMPDIR" test -d "$cluster" -a "${cluster#"$TMPDIR"/arbiter-slurm.}" != "$cluster"
run_logged "$base/c2.log" "$here/cluster.sh" start
check "a second start is refused" status_is "$status" 1
check "  naming the running cluster" has "$base/c2.log" "a cluster is already running in $cluster"
run_logged "$base/c3.log" "$here/cluster.sh" status
check "status exits 0" status_is "$status" 0
check "  the node is idle" has "$base/c3.log" "idle"
eval "$("$here/cluster.sh" env)"

echo "== a shard killed before it runs is re-run alone"
run_logged "$base/k.log" "$here/run.sh" --work "$base/k" --poll 1 --kill-shard 1:2 -- "${inputs[@]}"
check "run.sh exits 0" status_is "$status" 0
check "  it re-submits shard 2 of round 1 alone" \
    has "$base/k.log" "round 1: shard 2 FAILED (exit 0:9); re-submitting shard(s) 2 alone"
check "  the re-run is shard 2 only" has "$base/k.log" "submitted round 1 (re-run): job"
check "  the killed task's log says so" has "$base/k/logs/round-1-shard-2.log" "fault injection"
check "  the re-run wrote round 1" has "$base/k/logs/round-1-shard-2-rerun.log" "shard 2/4: round 1 of 3 written"
check "  12 partials" test "$(count_files "$base/k/partials" 'round-*.json')" = 12
check "  the merged report" test -f "$base/k/report/results.json"

echo "== a shard cancelled while it runs is re-run alone"
STAND_IN_SECONDS=6 "$here/run.sh" --work "$base/c" --poll 1 -- "${inputs[@]}" > "$base/c.log" 2>&1 &
runner=$!
for _ in $(seq 60); do
    job=$(squeue -h -r -t running -n arbiter-round-2 -o '%i' | grep '_3$' | head -n 1)
    [ -z "$job" ] || break
    sleep 0.5
done
check "round 2's shard 3 started" test -n "$job"
[ -z "$job" ] || scancel "$job"
wait "$runner"
status=$?
check "run.sh exits 0" status_is "$status" 0
check "  it re-submits shard 3 of round 2 alone" has "$base/c.log" "round 2: shard 3 CANCELLED"
check "  12 partials" test "$(ls "$base/c/partials" | grep -c '^round-[123]-shard-[1-4]-of-4\.json$')" = 12
check "  and nothing else (no half-written file)" test "$(ls -A "$base/c/partials" | wc -l)" = 12
check "  the merged report" test -f "$base/c/report/results.json"

echo "== a shard that fails twice: run.sh gives up, --resume finishes"
run_logged "$base/g.log" "$here/run.sh" --work "$base/g" --poll 1 --kill-shard 3:1:2 -- "${inputs[@]}"
check "run.sh exits 1" status_is "$status" 1
check "  naming the shard and how it ended" \
    has "$base/g.log" "round 3: the re-run failed too: shard 1 FAILED (exit 0:9)"
check "  showing the re-run's log" has "$base/g.log" "round-3-shard-1-rerun.log"
check "  the merge is cancelled, not run" test ! -e "$base/g/report"
check "  the 11 partials are kept" test "$(count_files "$base/g/partials" 'round-*.json')" = 11
check "  it tells how to resume" has "$base/g.log" "--resume --work $base/g"
check "  no job is left in the queue" test -z "$(squeue -h -o %i)"
run_logged "$base/g2.log" "$here/run.sh" --work "$base/g" --poll 1 --resume -- "${inputs[@]}" --count 9
check "--resume with other verify options is refused" status_is "$status" 2
run_logged "$base/g3.log" "$here/run.sh" --work "$base/g" --poll 1 --resume -- "${inputs[@]}"
check "--resume exits 0" status_is "$status" 0
check "  skipping rounds 1 and 2" has "$base/g3.log" "submitted round 3: job"
check "  and running shard 1 of round 3 only" has "$base/g3.log" ", shards 1"
check "  the merged report" test -f "$base/g/report/results.json"

echo "== a merge refusal is reported, naming the shard"
run_logged "$base/m.log" "$here/run.sh" --work "$base/m" --poll 1 --kill-shard 3:4:2 -- "${inputs[@]}"
sed -i 's/"options": "[^"]*"/"options": "--model elsewhere"/' "$base/m/partials/round-1-shard-2-of-4.json"
run_logged "$base/m2.log" "$here/run.sh" --work "$base/m" --poll 1 --resume -- "${inputs[@]}"
check "run.sh exits 1" status_is "$status" 1
check "  saying the merge failed" has "$base/m2.log" "the merge failed"
check "  with the merge's message naming the shard" has "$base/m2.log" "round-1-shard-2-of-4.json: made by another run"

echo "== the results check"
cp "$base/k/report/results.json" "$base/a.json"
sed 's/"seconds" : [0-9.]*/"seconds" : 1.5/' "$base/a.json" > "$base/b.json"
run_logged "$base/s1.log" "$here/same-results.sh" "$base/a.json" "$base/b.json"
check "results differing in seconds only are the same" status_is "$status" 0
sed 's/"value" : \([0-9]\)/"value" : 1\1/' "$base/a.json" > "$base/c.json"
run_logged "$base/s2.log" "$here/same-results.sh" "$base/a.json" "$base/c.json"
check "a different number is a difference" status_is "$status" 1
check "  shown as a diff" has "$base/s2.log" '+        "value" : 1'
sed '/"seconds"/d' "$base/a.json" > "$base/d.json"
run_logged "$base/s3.log" "$here/same-results.sh" "$base/a.json" "$base/d.json"
check "a missing timing field is a difference" status_is "$status" 1

echo "== cluster.sh stop with a job running"
job=$(sbatch --parsable -o /dev/null --wrap 'exec sleep 300')
for _ in $(seq 40); do [ "$(squeue -h -j "$job" -o %T)" = RUNNING ] && break; sleep 0.5; done
sleeper=$(find_process "sleep 300 ")
check "the job runs" test -n "$sleeper"
run_logged "$base/stop.log" "$here/cluster.sh" stop
check "stop exits 0" status_is "$status" 0
check "  the job's process is gone" test ! -d "/proc/${sleeper:-0}"
check "  the daemons, the folder and the pointer are gone" cluster_gone "$cluster"
run_logged "$base/c4.log" "$here/cluster.sh" status
check "status then exits 3" status_is "$status" 3
run_logged "$base/c5.log" "$here/cluster.sh" stop
check "a second stop exits 0" status_is "$status" 0
unset SLURM_CONF

echo "== check.sh (make slurm-verify's body)"
run_logged "$base/v1.log" "$here/check.sh" --arbiter "$here/test/arbiter" -- "${inputs[@]}"
check "it exits 0" status_is "$status" 0
check "  re-running the killed shard alone" \
    has "$base/v1.log" "round 2: shard 4 FAILED (exit 0:9); re-submitting shard(s) 4 alone"
check "  checking the results" has "$base/v1.log" "same-results.sh: the same results"
check "  printing both times" has "$base/v1.log" "unsharded verify:"
check "  its cluster stopped" test ! -e "$TMPDIR/arbiter-slurm-cluster"
check "  its folder removed" test -z "$(find "$TMPDIR" -maxdepth 1 -name 'arbiter-slurm-verify.*')"
STAND_IN_MERGE_DIFFERS=1 run_logged "$base/v2.log" "$here/check.sh" --arbiter "$here/test/arbiter" --no-kill \
    -- "${inputs[@]}"
check "with merged results that differ it exits 1" status_is "$status" 1
check "  showing the difference" has "$base/v2.log" "differ beyond the timing fields"
check "  its cluster stopped all the same" test ! -e "$TMPDIR/arbiter-slurm-cluster"
check "  its folder kept and named" has "$base/v2.log" "the run's folder is kept: $TMPDIR/arbiter-slurm-verify."

echo
echo "test.sh: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
    printf '  failed: %s\n' "${failures[@]}"
    echo "logs: kept in $base/*.log"
    trap - EXIT
    "$here/cluster.sh" stop > /dev/null 2>&1 || true
    exit 1
fi
