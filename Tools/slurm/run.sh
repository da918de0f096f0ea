#!/usr/bin/env bash
# A sharded `arbiter verify` on a Slurm cluster (docs/slurm.md): submits verify.sbatch as a job array of N shards
# three times (rounds 1–3, each round --dependency=afterok on the one before) and merge.sbatch after the third,
# waits, prints every job's state, and prints the merged verify table. A shard task that fails is re-submitted
# alone, once (the jobs after it are cancelled and re-submitted behind the re-run); a second failure gives up
# with the shard, its state and its log named. Re-running a shard is always safe: it computes the first round
# whose partial it has not written.
#
#   Tools/slurm/run.sh --work DIR [--shards N] [--arbiter PATH] [--sbatch OPTION]... [--poll SECONDS]
#                      [--timeout SECONDS] [--resume] [--kill-shard R:K[:TIMES]] -- VERIFY-OPTIONS...
#
#   --work DIR        a new or empty folder (on a filesystem every node sees): DIR/partials (the shards' partial
#                     results), DIR/logs (one log per round and shard, and the merge's), DIR/report (the merged
#                     report: results.json, report.md, …)
#   --shards N        the number of shards, 1–1000 (default 4)
#   --arbiter PATH    the arbiter binary (default: $ARBITER, else `arbiter` on PATH, else .build/release/arbiter)
#   --sbatch OPTION   an sbatch option for every job (repeatable): --sbatch --partition=cpu --sbatch --mem=40G;
#                     the SBATCH_* environment variables work too
#   --poll SECONDS    how often the queue is read (default 5)
#   --timeout SECONDS give up (cancelling the jobs) after this long; 0 = wait for ever (default)
#   --resume          continue in a DIR an earlier run.sh made: only the shards whose partial of a round is
#                     missing are submitted (same VERIFY-OPTIONS and N required)
#   --kill-shard R:K[:TIMES]  fault injection: shard K's task of round R kills itself before it runs, in the first
#                     TIMES attempts (default 1; 2 kills the re-run too, to see run.sh give up)
#   VERIFY-OPTIONS    the usual `arbiter verify` options, e.g. --model M --data D --count 40 (not --shard,
#                     --partials or --out, which run.sh sets)
# Exit status: 0 when the merge succeeded, 1 when a job failed twice or the merge failed, 2 on a usage error.
set -euo pipefail

prog="run.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rounds=3
die() { echo "$prog: $*" >&2; exit 2; }
say() { echo "$(date +%T) $*"; }

work="" shards=4 arbiter=${ARBITER:-} poll=5 timeout=0 resume=0 kill_round="" kill_shard="" kill_times=1
sbatch_options=()
while [ $# -gt 0 ]; do
    case $1 in
        --work|--shards|--arbiter|--sbatch|--poll|--timeout|--kill-shard)
            [ $# -ge 2 ] || die "$1 needs a value"
            case $1 in
                --work) work=$2 ;;
                --shards) shards=$2 ;;
                --arbiter) arbiter=$2 ;;
                --sbatch) sbatch_options+=("$2") ;;
                --poll) poll=$2 ;;
                --timeout) timeout=$2 ;;
                --kill-shard)
                    [[ "$2" =~ ^([1-9][0-9]*):([1-9][0-9]*)(:([12]))?$ ]] \
                        || die "--kill-shard $2: expected ROUND:SHARD or ROUND:SHARD:TIMES (TIMES 1 or 2)"
                    kill_round=${BASH_REMATCH[1]} kill_shard=${BASH_REMATCH[2]} kill_times=${BASH_REMATCH[4]:-1} ;;
            esac
            shift 2 ;;
        --resume) resume=1; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (verify options go after --)" ;;
    esac
done
verify_options=("$@")

[ -n "$work" ] || die "--work DIR is required"
[[ "$shards" =~ ^[1-9][0-9]*$ ]] && [ "$shards" -le 1000 ] || die "--shards $shards: expected 1–1000"
[[ "$poll" =~ ^[1-9][0-9]*$ ]] || die "--poll $poll: expected a whole number of seconds ≥ 1"
[[ "$timeout" =~ ^[0-9]+$ ]] || die "--timeout $timeout: expected a whole number of seconds (0 = none)"
if [ -n "$kill_round" ]; then
    [ "$kill_round" -le "$rounds" ] || die "--kill-shard: round $kill_round: a sharded run has rounds 1–$rounds"
    [ "$kill_shard" -le "$shards" ] || die "--kill-shard: shard $kill_shard: the run has shards 1–$shards"
fi
[ ${#verify_options[@]} -gt 0 ] || die "no verify options: give them after --, e.g. -- --model DIR --data DIR"
for option in "${verify_options[@]}"; do
    case $option in
        --shard|--shard=*|--partials|--partials=*|--out|--out=*)
            die "verify option $option: run.sh sets --shard, --partials and --out itself" ;;
    esac
done
if [ -z "$arbiter" ]; then
    arbiter=$(command -v arbiter || true)
    [ -n "$arbiter" ] || arbiter="$here/../../.build/release/arbiter"
fi
[ -x "$arbiter" ] && [ -f "$arbiter" ] || die "--arbiter $arbiter: not an executable file (build it: make build)"
arbiter=$(cd "$(dirname "$arbiter")" && pwd)/$(basename "$arbiter")
for tool in sbatch scontrol scancel; do
    command -v "$tool" >/dev/null || die "$tool not found: run on a Slurm submit host (or start one: cluster.sh start)"
done
unset ARBITER_SLURM_KILL_SHARD   # only --kill-shard sets it, on the one job it names

# The work folder: new or empty, or (--resume) one this script made. Nothing else is ever written into.
marker=".arbiter-slurm-run"
arguments_line="shards=$shards verify=$(printf '%q ' "${verify_options[@]}")"
if [ -e "$work" ] && [ ! -d "$work" ]; then die "--work $work: exists and is not a folder"; fi
if [ "$resume" = 1 ]; then
    [ -f "$work/$marker" ] || die "--resume: $work was not made by run.sh (no $marker)"
    recorded=$(sed -n 2p "$work/$marker")
    [ "$recorded" = "$arguments_line" ] || die "--resume: $work was run with '$recorded', not '$arguments_line'"
elif [ -d "$work" ] && [ -n "$(ls -A "$work")" ]; then
    die "--work $work: not empty (run.sh writes only into a new or empty folder; --resume continues its own)"
else
    mkdir -p "$work/partials" "$work/logs"
    printf 'made by Tools/slurm/run.sh on %s\n%s\n' "$(date -u +%FT%TZ)" "$arguments_line" > "$work/$marker"
fi
work=$(cd "$work" && pwd)
partials="$work/partials"
logs="$work/logs"

# ---- jobs -----------------------------------------------------------------------------------------------------
labels=() job_ids=()          # every job submitted, in order, for the final table
declare -A stage_job          # stage (1..3 = rounds, 4 = merge) -> the job now standing for it
declare -A attempts           # stage -> attempts submitted (1, or 2 after a re-run)

missing_shards() {            # shards without a partial of round $1, as an --array list ("1-4", "2,5-7")
    local round=$1 k
    for ((k = 1; k <= shards; k++)); do
        [ -f "$partials/round-$round-shard-$k-of-$shards.json" ] || echo "$k"
    done | awk 'function flush() { if (n) out = out (out == "" ? "" : ",") (a == b ? a : a "-" b) }
                { if (n && $1 == b + 1) b = $1; else { flush(); a = b = $1; n = 1 } }
                END { flush(); print out }'
}

sbatch_id() {                 # sbatch --parsable prints "id" or "id;cluster"
    local out
    out=$(sbatch --parsable "$@") || return 1
    printf '%s\n' "${out%%;*}"
}

# submit_round ROUND TASKS DEPENDENCY ATTEMPT: one array job for those shards of the round.
submit_round() {
    local round=$1 tasks=$2 dependency=$3 attempt=$4 suffix="" export="ALL" id
    [ "$attempt" = 1 ] || suffix="-rerun"
    if [ "$round" = "$kill_round" ] && [ "$attempt" -le "$kill_times" ]; then
        export="ALL,ARBITER_SLURM_KILL_SHARD=$kill_shard"
    fi
    id=$(sbatch_id --job-name="arbiter-round-$round" --array="$tasks" \
        --output="$logs/round-$round-shard-%a$suffix.log" --export="$export" \
        ${dependency:+--dependency=afterok:$dependency} "${sbatch_options[@]}" \
        "$here/verify.sbatch" --arbiter "$arbiter" --shards "$shards" --partials "$partials" \
        -- "${verify_options[@]}") || give_up "sbatch refused round $round"
    labels+=("round $round${suffix:+ re-run}") job_ids+=("$id")
    stage_job[$round]=$id attempts[$round]=$attempt
    say "submitted round $round${suffix:+ (re-run)}: job $id, shards $tasks${dependency:+, after job $dependency}"
}

submit_merge() {
    local dependency=$1 id
    id=$(sbatch_id --job-name=arbiter-merge --output="$logs/merge.log" --open-mode=append \
        ${dependency:+--dependency=afterok:$dependency} "${sbatch_options[@]}" \
        "$here/merge.sbatch" --arbiter "$arbiter" --partials "$partials" --out "$work/report") \
        || give_up "sbatch refused the merge job"
    labels+=("merge") job_ids+=("$id")
    stage_job[4]=$id attempts[4]=1
    say "submitted merge: job $id${dependency:+, after job $dependency}"
}

# submit_from STAGE DEPENDENCY: the rounds from STAGE on, each for the shards still missing its partial (all of
# them in a new run; a round none misses is skipped), and the merge, each job after the one before.
submit_from() {
    local stage=$1 dependency=$2 round tasks
    for ((round = stage; round <= rounds; round++)); do
        tasks=$(missing_shards "$round")
        if [ -z "$tasks" ]; then say "round $round: every shard's partial is there"; continue; fi
        submit_round "$round" "$tasks" "$dependency" 1
        dependency=${stage_job[$round]}
    done
    submit_merge "$dependency"
}

# task_states JOB: one line per task, "TASK STATE EXIT RUNTIME NODE REASON" (TASK "-" for a job that is no array;
# a pending array's record covers several tasks, each listed). From scontrol, or sacct once the record is purged.
task_states() {
    local job=$1 lines line task state code runtime node reason t
    if lines=$(scontrol -o show job "$job" 2>/dev/null); then
        while IFS= read -r line; do
            task=$(field ArrayTaskId "$line") state=$(field JobState "$line") code=$(field ExitCode "$line")
            runtime=$(field RunTime "$line") node=$(field NodeList "$line") reason=$(field Reason "$line")
            for t in $(expand_tasks "${task:--}"); do
                printf '%s %s %s %s %s %s\n' "$t" "$state" "${code:--}" "${runtime:--}" "${node:--}" "${reason:--}"
            done
        done <<< "$lines"
    elif command -v sacct >/dev/null && sacct -n -X -P -j "$job" --format=JobID > /dev/null 2>&1; then
        sacct -n -X -P -j "$job" --format=JobID,State,ExitCode,Elapsed,NodeList \
            | awk -F'|' '{ t = $1; sub(/^[0-9]+_?/, "", t); if (t == "") t = "-"; split($2, s, " ");
                          print t, s[1], $3, $4, ($5 == "" ? "-" : $5), "-" }'
    else
        echo "$prog: job $job is known neither to scontrol nor to sacct" >&2
        return 1
    fi
}

field() {                     # field NAME LINE: the value of NAME= in a line of `scontrol -o show job`
    local v
    v=$(grep -o " $1=[^ ]*" <<< " $2" | head -n 1) || true
    printf '%s' "${v#* $1=}"
}

expand_tasks() {              # "1-3,5%2" -> 1 2 3 5
    local spec=${1%%%*} part
    [ "$spec" != "-" ] || { echo -; return; }
    for part in ${spec//,/ }; do
        if [[ "$part" =~ ^([0-9]+)-([0-9]+)$ ]]; then
            seq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        else
            echo "$part"
        fi
    done
}

started=$(date +%s)
deadline_passed() { [ "$timeout" -gt 0 ] && [ $(( $(date +%s) - started )) -ge "$timeout" ]; }

ended_states='^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|PREEMPTED|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)$'

# wait_stage STAGE: polls until every task of the stage's job is finished; prints a line when the tally changes.
# Leaves the failed tasks (state other than COMPLETED) in $failed as "TASK:STATE:EXIT" words.
wait_stage() {
    local stage=$1 job=${stage_job[$1]} states tally previous="" open name
    name=$( [ "$stage" = 4 ] && echo merge || echo "round $stage" )
    while :; do
        states=$(task_states "$job") || give_up "cannot read the state of job $job"
        tally=$(awk '{ n[$2 ($2 == "PENDING" && $6 != "-" && $6 != "None" ? " (" $6 ")" : "")]++ }
                     END { for (s in n) printf "%s%d %s", (sep++ ? ", " : ""), n[s], s }' <<< "$states")
        [ "$tally" = "$previous" ] || say "$name (job $job): $tally"
        previous=$tally
        open=$(awk -v ended="$ended_states" '$2 !~ ended' <<< "$states")
        [ -n "$open" ] || break
        if deadline_passed; then
            give_up "timed out after $timeout s waiting for $name (job $job: $tally)"
        fi
        sleep "$poll"
    done
    failed=$(awk '$2 != "COMPLETED" { printf "%s%s:%s:%s", (n++ ? " " : ""), $1, $2, $3 }' <<< "$states")
}

print_jobs() {
    local i job
    echo
    echo "jobs:"
    printf '  %-16s %-10s %-6s %-14s %-6s %-10s %s\n' stage job task state exit runtime node
    for i in "${!job_ids[@]}"; do
        job=${job_ids[$i]}
        task_states "$job" 2>/dev/null | sort -n | while read -r task state code runtime node reason; do
            printf '  %-16s %-10s %-6s %-14s %-6s %-10s %s\n' "${labels[$i]}" "$job" "$task" "$state" "$code" \
                "$runtime" "$node"
        done
    done
    echo
}

cancel_from() {               # cancels the jobs standing for stages STAGE..4 (they wait on a failed one)
    local stage
    for ((stage = $1; stage <= 4; stage++)); do
        [ -n "${stage_job[$stage]:-}" ] || continue
        scancel "${stage_job[$stage]}" 2>/dev/null || true
        say "cancelled job ${stage_job[$stage]} ($( [ "$stage" = 4 ] && echo merge || echo "round $stage"))," \
            "which waited on it"
        unset "stage_job[$stage]"
    done
}

give_up() {
    echo "$prog: $1" >&2
    cancel_from 1 >/dev/null
    print_jobs
    echo "$prog: gave up; the partials written so far are kept in $partials. Fix the cause, then continue with" >&2
    echo "  $0 --resume --work $work --shards $shards --arbiter $arbiter -- ${verify_options[*]}" >&2
    exit 1
}

# ---- the run --------------------------------------------------------------------------------------------------
say "sharded verify: $shards shards × $rounds rounds, then the merge; work folder $work"
say "arbiter: $arbiter"
first=1
if [ "$resume" = 1 ]; then
    for ((first = 1; first <= rounds; first++)); do [ -z "$(missing_shards "$first")" ] || break; done
fi
submit_from "$first" ""

for ((stage = first; stage <= 4; stage++)); do
    [ -n "${stage_job[$stage]:-}" ] || continue
    wait_stage "$stage"
    [ -n "$failed" ] || continue
    if [ "$stage" = 4 ]; then
        echo "$prog: the merge (job ${stage_job[4]}) ended ${failed#*:}; its log, $logs/merge.log:" >&2
        tail -n 30 "$logs/merge.log" >&2 || true
        give_up "the merge failed"
    fi
    tasks=$(for f in $failed; do echo "${f%%:*}"; done | paste -sd, -)
    details=$(for f in $failed; do IFS=: read -r t s c <<< "$f"; echo "shard $t $s (exit $c)"; done | paste -sd, -)
    if [ "${attempts[$stage]}" -ge 2 ]; then
        for f in $failed; do
            t=${f%%:*}
            echo "--- $logs/round-$stage-shard-$t-rerun.log (last lines)" >&2
            tail -n 15 "$logs/round-$stage-shard-$t-rerun.log" >&2 2>/dev/null || true
        done
        give_up "round $stage: the re-run failed too: ${details//,/, }"
    fi
    say "round $stage: ${details//,/, }; re-submitting shard(s) $tasks alone"
    cancel_from $((stage + 1))
    submit_round "$stage" "$tasks" "" 2
    submit_from $((stage + 1)) "${stage_job[$stage]}"
    stage=$((stage - 1))      # wait for the re-run, then go on
done

print_jobs
say "done in $(( $(date +%s) - started )) s; the merge's output ($logs/merge.log):"
cat "$logs/merge.log"
echo
echo "report: $work/report"
