#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for Arbiter's sharded verify (docs/slurm.md).
#
#   Tools/slurm/cluster.sh start    munged, slurmctld and slurmd as root, configured for localhost in a private
#                                   temporary folder; returns when the node is idle
#   Tools/slurm/cluster.sh env      prints `export SLURM_CONF=…`: eval it to point sbatch/squeue at the cluster
#   Tools/slurm/cluster.sh status   the daemons, the node and the queue; exit 0 if running, 3 if not
#   Tools/slurm/cluster.sh stop     cancels the cluster's jobs, stops exactly the daemons `start` started (and
#                                   any job step they left), removes the folder
#
# Installs nothing: it needs the Debian packages slurm-wlm and munge (`make slurm-deps`). Everything lives in a
# folder made by mktemp under ${TMPDIR:-/tmp} (configuration, munge key and socket, state, spool, logs, pid
# files); the file ${TMPDIR:-/tmp}/arbiter-slurm-cluster names it while the cluster runs. Nothing outside those
# two is written, and the system's munge socket, /etc/slurm and /etc/munge are neither read nor touched.
# The node is the host's short name at 127.0.0.1 with the CPUs (nproc) and memory (/proc/meminfo) read at start;
# no cgroups (proctrack/linuxproc, task/none), so it runs in a container without systemd.
#
# Environment: ARBITER_SLURM_TIMEOUT (seconds to wait for the node, default 60), ARBITER_SLURM_PORT (slurmctld's
# port; slurmd's is the next one; default: the first free pair from 6817).
set -euo pipefail

prog="cluster.sh"
root_tmp="${TMPDIR:-/tmp}"
pointer="$root_tmp/arbiter-slurm-cluster"
marker_name=".arbiter-slurm-cluster"
timeout="${ARBITER_SLURM_TIMEOUT:-60}"

die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }

# The cluster folder named by the pointer file, checked to be one this script made (its marker file).
cluster_dir() {
    [ -f "$pointer" ] || return 1
    local dir
    dir=$(head -n 1 "$pointer")
    [ -n "$dir" ] && [ -f "$dir/$marker_name" ] || return 2
    printf '%s\n' "$dir"
}

# pid of daemon NAME if its pid file's process is alive and is the daemon this cluster started: its command line
# names the cluster folder (so a recycled pid is never taken for ours).
daemon_pid() {
    local dir=$1 name=$2 pid
    [ -f "$dir/run/$name.pid" ] || return 1
    pid=$(tr -dc '0-9' < "$dir/run/$name.pid")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 1
    printf '%s\n' "$pid"
}

# Processes left by this cluster: any holding a file of the cluster folder open (slurmstepd keeps the slurmd log
# open; the daemons' own pid files name the daemons), and everything they started (a job's tasks).
leftover_pids() {
    local dir=$1 p roots=""
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" != "$$" ] || continue
        if { ls -l "$p/fd"; } 2>/dev/null | grep -qF -- " -> $dir/"; then roots="$roots ${p#/proc/}"; fi
    done
    [ -n "$roots" ] || return 0
    local stat ppid
    for p in /proc/[0-9]*/stat; do       # "pid (name) state ppid …", without ps (procps is not in every image)
        { read -r stat < "$p"; } 2>/dev/null || continue
        read -r _ ppid _ <<< "${stat##*) }"
        printf '%s %s\n' "${p//[^0-9]/}" "$ppid"
    done | awk -v roots="$roots" -v self="$$" '
        { parent[$1] = $2 }
        END {
            n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1
            do {
                changed = 0
                for (p in parent)
                    if (!(p in keep) && (parent[p] in keep) && p != self) { keep[p] = 1; changed = 1 }
            } while (changed)
            for (p in keep) print p
        }'
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_tools() {
    local missing="" t
    for t in munged munge unmunge slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
        command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
    done
    [ -z "$missing" ] || die "missing:$missing — install the Debian packages slurm-wlm and munge (make slurm-deps)"
}

node_state() { SLURM_CONF="$1/etc/slurm.conf" sinfo -h -n "$2" -o '%t' 2>/dev/null | head -n 1; }

show_logs() {
    local dir=$1 f
    for f in "$dir/log/munged.log" "$dir/log/slurmctld.log" "$dir/log/slurmd.log"; do
        [ -f "$f" ] || continue
        echo "--- last lines of $f" >&2
        tail -n 15 "$f" >&2
    done
}

start_failed() {
    echo "$prog: start failed; stopping what it started" >&2
    show_logs "$start_dir"
    stop_dir "$start_dir" >&2
}

start() {
    [ "$(id -u)" = 0 ] || die "start needs root (munged, slurmctld and slurmd run as root on this one-node cluster)"
    check_tools
    local dir
    if dir=$(cluster_dir); then
        die "a cluster is already running in $dir (started by this script); stop it first: $0 stop"
    elif [ -e "$pointer" ]; then
        die "$pointer exists but does not name a cluster folder made by this script; it was left alone" \
            "(remove it if it is stale)"
    fi
    local port=${ARBITER_SLURM_PORT:-}
    if [ -z "$port" ]; then
        port=6817
        while ! port_free "$port" || ! port_free $((port + 1)); do
            port=$((port + 2))
            [ "$port" -lt 6917 ] \
                || die "no free pair of ports in 6817–6916 for slurmctld and slurmd (set ARBITER_SLURM_PORT)"
        done
    else
        [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65534 ] \
            || die "ARBITER_SLURM_PORT=$port: expected a port number in 1024–65534"
        port_free "$port" && port_free $((port + 1)) \
            || die "ARBITER_SLURM_PORT=$port: port $port or $((port + 1)) is in use"
    fi
    [[ "$timeout" =~ ^[0-9]+$ ]] && [ "$timeout" -ge 1 ] \
        || die "ARBITER_SLURM_TIMEOUT=$timeout: expected a whole number of seconds ≥ 1"

    local node cpus mem_kb mem_mb
    node=$(hostname -s)
    [[ "$node" =~ ^[A-Za-z0-9][A-Za-z0-9-]*$ ]] || die "the host name '$node' cannot be a Slurm node name"
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
    [[ "$mem_kb" =~ ^[0-9]+$ ]] || die "/proc/meminfo: no MemTotal line"
    mem_mb=$((mem_kb / 1024))

    # A Unix socket's path holds at most 107 bytes; munged's is the longest path below the folder.
    [ ${#root_tmp} -le 60 ] || die "TMPDIR=$root_tmp is too long for munged's socket path (at most 60 characters)"
    local above=$root_tmp
    while [ -n "$above" ]; do
        [ -d "$above" ] || die "TMPDIR=$root_tmp: $above is not a folder"
        [ "$(( 0$(stat -c %a "$above") & 1 ))" = 1 ] \
            || die "TMPDIR=$root_tmp: munged wants every folder above its socket searchable by all; $above is not"
        above=${above%/*}
    done
    dir=$(mktemp -d "$root_tmp/arbiter-slurm.XXXXXX")
    chmod 711 "$dir"   # munged wants every folder above its socket searchable by all
    echo "made by Tools/slurm/cluster.sh start on $(date -u +%FT%TZ); cluster.sh stop removes this folder" \
        > "$dir/$marker_name"
    mkdir -m 700 "$dir/etc" "$dir/run" "$dir/log" "$dir/state" "$dir/spool"
    mkdir -m 711 "$dir/munge"
    # The pointer is written only if no file of that name exists (noclobber): never over someone else's file.
    if ! (set -o noclobber; printf '%s\n' "$dir" > "$pointer") 2>/dev/null; then
        rm -rf -- "$dir"
        die "$pointer appeared while starting; left alone"
    fi
    # From here on, any failure (or an interrupt) stops what was started and removes the folder.
    start_dir=$dir
    trap 'start_failed' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    local conf="$dir/etc/slurm.conf"
    cat > "$conf" <<CONF
# Written by Tools/slurm/cluster.sh for a one-node cluster on $node; removed by \`cluster.sh stop\`.
ClusterName=arbiter
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket.2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((mem_mb / cpus))
MpiDefault=none
ReturnToService=2
MinJobAge=3600
MailProg=/bin/true
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=arbiter Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

    # The daemons alone get ARBITER_SLURM_CLUSTER (`stop` finds what they leave by it).
    env ARBITER_SLURM_CLUSTER="$dir" munged --socket="$dir/munge/munge.socket.2" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
    echo probe | munge -S "$dir/munge/munge.socket.2" | unmunge -S "$dir/munge/munge.socket.2" >/dev/null \
        || die "munged does not answer on $dir/munge/munge.socket.2"
    env ARBITER_SLURM_CLUSTER="$dir" SLURM_CONF="$conf" slurmctld -f "$conf"
    env ARBITER_SLURM_CLUSTER="$dir" SLURM_CONF="$conf" slurmd -f "$conf" -N "$node"

    local waited=0 state=""
    while :; do
        state=$(node_state "$dir" "$node") || true
        [ "$state" != idle ] || break
        [ "$waited" -lt "$timeout" ] \
            || die "node $node is not idle after $timeout s (state: ${state:-no answer from slurmctld})"
        sleep 1
        waited=$((waited + 1))
    done
    trap - EXIT INT TERM
    say "one-node cluster up in $dir: node $node, $cpus CPUs, $mem_mb MB, partition arbiter, ports $port/$((port + 1))"
    say "point sbatch and squeue at it with: eval \"\$($0 env)\""
}

# Stops the cluster in DIR: cancels its jobs, TERM (then KILL after 15 s) to slurmd, slurmctld, munged and any
# process they left, then removes DIR and the pointer (if it names DIR).
stop_dir() {
    local dir=$1 conf="$1/etc/slurm.conf" pid name pids waited
    if daemon_pid "$dir" slurmctld >/dev/null; then
        SLURM_CONF="$conf" scancel --quiet --full --user=root 2>/dev/null || true
        SLURM_CONF="$conf" scancel --quiet --user=root 2>/dev/null || true
        waited=0
        while [ -n "$(SLURM_CONF="$conf" squeue -h -t running,completing -o %A 2>/dev/null)" ] \
              && [ "$waited" -lt 60 ]; do
            sleep 0.5
            waited=$((waited + 1))
        done
    fi
    for name in slurmd slurmctld munged; do
        pid=$(daemon_pid "$dir" "$name") || continue
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while [ -d "/proc/$pid" ] && [ "$waited" -lt 75 ]; do sleep 0.2; waited=$((waited + 1)); done
        if [ -d "/proc/$pid" ]; then
            echo "$prog: $name ($pid) did not stop after 15 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "$prog: stopped $name ($pid)"
    done
    pids=$(leftover_pids "$dir")
    if [ -n "$pids" ]; then
        echo "$prog: stopping what the cluster left running: $(echo $pids)"   # unquoted: one line
        kill -TERM $pids 2>/dev/null || true
        sleep 2
        pids=$(leftover_pids "$dir")
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    rm -rf -- "$dir"
    if [ -f "$pointer" ] && [ "$(head -n 1 "$pointer")" = "$dir" ]; then rm -f -- "$pointer"; fi
    echo "$prog: removed $dir"
}

stop() {
    local dir rc=0
    dir=$(cluster_dir) || rc=$?
    case $rc in
        0) stop_dir "$dir" ;;
        1) say "no cluster is running (no $pointer)" ;;
        *) die "$pointer does not name a cluster folder made by this script; nothing was stopped" ;;
    esac
}

status() {
    local dir name pid running=0
    dir=$(cluster_dir) || { say "no cluster is running"; exit 3; }
    say "cluster folder $dir"
    for name in munged slurmctld slurmd; do
        if pid=$(daemon_pid "$dir" "$name"); then
            echo "  $name: running (pid $pid)"
            running=$((running + 1))
        else
            echo "  $name: not running"
        fi
    done
    if [ "$running" -eq 3 ]; then
        SLURM_CONF="$dir/etc/slurm.conf" sinfo -N -o '%N %t %c CPUs %m MB %P' || true
        SLURM_CONF="$dir/etc/slurm.conf" squeue || true
        exit 0
    fi
    say "the cluster is not (fully) running; $0 stop cleans it up"
    exit 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env)
        dir=$(cluster_dir) || die "no cluster is running (start one: $0 start)"
        printf 'export SLURM_CONF=%q\n' "$dir/etc/slurm.conf"
        ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
