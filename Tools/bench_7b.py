#!/usr/bin/env python3
"""`make bench-7b`: Arbiter on a LLaVA-1.5-7B-shaped checkpoint with random bf16 weights (issue #23, item 4).

    bench_7b.py --arbiter .build/release/arbiter --python .venv/bin/python [--work DIR | --model DIR]
                [--tokens 650] [--budget-minutes 20]

In a work folder (--work: an existing empty folder that the caller deletes, as `make bench-7b` does with a trap;
without it a temporary folder that this script deletes, on an error or a signal too):

1. builds the checkpoint with Tools/make_7b_shaped.py (~14.1 GB; refused below 20 GB free), timed, with its
   peak RSS; --model DIR uses an existing folder instead (nothing is built, nothing of it deleted);
2. runs `arbiter bench-forward --model M --tokens T --repeats 1 --logits last` (load, one warm-up and one timed
   forward of the decoder over T random ids) with f32 compute (bf16 weights widened block by block) and with
   ARBITER_COMPUTE=bf16, each under /usr/bin/time for the process's peak RSS; then with `--side-by-side` (one f32
   forward per worker at once, one BLAS thread each, as verify's baselines run its items: seconds per forward =
   wall / workers), and predicts that from the plan's calibration (the baselines stage's formula,
   `PlanCounter.baselineStage`, at T tokens without the vision tower: layers × (T·s_row + T²·s_pair + s_run) +
   the logits' FLOPs at the calibrated rate, over the workers). A forward alone is slower per forward (two BLAS
   threads on one product, the work between products on one core): shown, not checked;
3. plans `verify --count 4` as a trial run (TRIAL below: four generated conflict items, `--minimum-per-target 1`
   so that verify accepts them — its flow, routing and MLP claims then say they are inconclusive —, no top-up,
   one random head set, the two-stage DLA ranking of 4 candidates, head interventions after the image, and 4 GiB
   for keys and values so that no pass runs them again); the plan pilots the model itself (its own cost is
   printed). Then runs the trial for real when the plan predicts it within --budget-minutes, under /usr/bin/time,
   and compares the measured time with the prediction, in all and per stage (each stage's time measured from
   verify's progress lines, from the stage's first line to the next stage's);
4. plans the default protocol (240 items, every option at its default) from the shape alone (`--prompt-tokens
   650`, LLaVA-1.5's prompt length, no pilot), to print what a real run on this host would take.

Exits 1 when a peak RSS of the load and forward exceeds 1.15 × the checkpoint's bytes, or the side-by-side f32
forward's or the trial run's prediction is off by more than 25% (the other rows' errors are shown, not checked); 2
when it cannot run (disk, build, a verify that fails). Timings need an idle host (the load average is printed).
Standard library only; --python runs the generator (torch, transformers).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RSS_LIMIT = 1.15
TOLERANCE = 0.25
MIN_FREE_BYTES = 20 * 10**9
SEED = 260203677          # verify's default seed, given explicitly to every command
# The trial run (with --count): a few items through every stage, cut as a 7B needs it (docs/verify-plan.md).
TRIAL = ["--mix", "conflict=1", "--minimum-per-target", "1", "--top-up", "0", "--random-sets", "1",
         "--head-ranking", "dla:4", "--head-positions", "after-image", "--key-value-memory", "4", "--keep-going",
         "--seed", str(SEED)]
# The plan's stages (name prefix) and the progress line verify prints as each begins.
STAGE_MARKERS = [("baselines", "baseline passes over"), ("information flow", "knockout "),
                 ("logit lens", "attention routing"), ("head ranking", "single-head ablation"),
                 ("item top-up", "amplification: "), ("head blocking", "blocking the top"),
                 ("specificity", "general ability:"), ("α selection", "α for the top set"),
                 ("amplification", "amplifying the top heads")]
PROGRESS = re.compile(r"^\[\s*([0-9.]+)s\] (.*)$")


class BenchError(Exception):
    """Something this bench cannot run past (exit 2)."""


def log(message):
    print(message, file=sys.stderr, flush=True)


def timed_run(cmd, env=None, timeout=None):
    """Runs `cmd` under /usr/bin/time; returns (completed process, wall seconds, peak RSS bytes)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as rec:
        start = time.monotonic()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rec.name] + cmd, capture_output=True, text=True,
                              env=env, timeout=timeout)
        seconds = time.monotonic() - start
        lines = [line for line in open(rec.name).read().splitlines() if line.strip()]
    rss = int(lines[-1]) * 1024 if lines and lines[-1].strip().isdigit() else 0
    return proc, seconds, rss


def last_json(text, what):
    for line in reversed(text.splitlines()):
        if line.startswith("{") or line.startswith("["):
            return json.loads(line)
    raise BenchError(f"{what} printed no JSON line:\n{text[-2000:]}")


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)
               if n.endswith(".safetensors"))


def build(python, folder):
    proc, seconds, rss = timed_run([python, os.path.join(HERE, "make_7b_shaped.py"), folder])
    if proc.returncode != 0:
        raise BenchError(f"make_7b_shaped.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    info = last_json(proc.stdout, "make_7b_shaped.py")
    return {"seconds": seconds, "rss": rss, "parameters": info["parameters"], "shards": info["shards"]}


def plan(arbiter, model, options):
    """`verify --plan --json` with `options`: (the plan, wall seconds)."""
    cmd = [arbiter, "verify", "--plan", "--json", "--model", model] + options
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd[1:])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)[0], seconds


def trial_count(arbiter, model):
    """The smallest --count from 4 whose trial verify accepts (two conflict items of each target), with its plan."""
    for count in range(4, 17):
        try:
            log(f"plan of the trial run, --count {count} (pilots the model: minutes) …")
            return count, plan(arbiter, model, ["--count", str(count)] + TRIAL)
        except BenchError as e:
            if "conflict items following" not in str(e):
                raise
    raise BenchError("no --count from 4 to 16 gives two conflict items of each instruction target")


def stage_times(progress_lines, total):
    """Seconds per plan stage from verify's timestamped progress lines: each marked stage runs from its first
    line to the next marked stage's (the last to `total`); what comes before the baselines is the preparation."""
    starts = []
    for line in progress_lines:
        m = PROGRESS.match(line)
        if not m:
            continue
        at, text = float(m.group(1)), m.group(2)
        message = text.split(": ", 1)[1] if ": " in text else text
        for stage, marker in STAGE_MARKERS:
            if message.startswith(marker) and stage not in [s for s, _ in starts]:
                starts.append((stage, at))
    times = {"model and items": starts[0][1] if starts else total}
    for k, (stage, at) in enumerate(starts):
        end = starts[k + 1][1] if k + 1 < len(starts) else total
        times[stage] = end - at
    return times


def self_test():
    """stage_times on progress lines as verify prints them (a trial run on arbiter-main, times made up)."""
    lines = ["[   0.0s] loading m", "[   1.5s] m: baseline passes over 4 samples",
             "[  10.0s] m: knockout image->text (1/9)", "[  20.0s] m: knockout cues->last (9/9)",
             "[  40.0s] m: attention routing", "[  41.0s] m: logit lens", "[  42.0s] m: direct logit attribution",
             "[  45.0s] m: single-head ablation of 4 candidates, layer 1/32",
             "[  60.0s] m: single-head ablation of 4 candidates, layer 32/32", "[  70.0s] m: blocking the top 52 heads",
             "[  80.0s] m: blocking 1 random head sets of 52",
             "[  90.0s] m: α for the top set and 1 random sets on 1 calibration failures",
             "[ 100.0s] m: amplifying the top heads and 1 random sets on 1 failed held-out samples", "not a line"]
    got = stage_times(lines, 130.0)
    want = {"model and items": 1.5, "baselines": 8.5, "information flow": 30.0, "logit lens": 5.0,
            "head ranking": 25.0, "head blocking": 20.0, "α selection": 10.0, "amplification": 30.0}
    if got != want:
        raise SystemExit(f"bench_7b.py --self-test: stage_times gave {got}, expected {want}")
    print("bench_7b.py --self-test: stage times from progress lines as expected")


def run_trial(arbiter, model, count, work):
    """Runs the trial verify, echoing its progress; (wall seconds, peak RSS, exit status, progress lines)."""
    cmd = ["/usr/bin/time", "-f", "%M", "-o", os.path.join(work, "trial.time"), arbiter, "verify", "--model",
           model, "--count", str(count), "--out", os.path.join(work, "trial-report")] + TRIAL
    start = time.monotonic()
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:
            line = line.rstrip("\n")
            lines.append(line)
            log("  verify: " + line)
        proc.stdout.read()
        status = proc.wait()
    seconds = time.monotonic() - start
    with open(os.path.join(work, "trial.time")) as f:
        recorded = [x for x in f.read().split() if x.isdigit()]
    rss = int(recorded[-1]) * 1024 if recorded else 0
    return seconds, rss, status, lines


def predicted_forward_seconds(p, tokens):
    """One decoder forward over `tokens` rows with logits at the last one, as the plan times a baseline pass
    (PlanCounter.baselineStage without the vision tower)."""
    c, s = p["calibration"], p["shape"]
    d, q, kv = s["hidden"], s["heads"] * s["headDim"], s["keyValueHeads"] * s["headDim"]
    linear = 2 * (d * q + 2 * d * kv + q * d) + 2 * 3 * d * s["intermediate"]  # PlanModelShape.linearFLOPsPerRow
    rate = linear / max(c["secondsPerRow"], 1e-15)
    logits = 2 * d * s["vocabulary"]
    t = float(tokens)
    per_layer = t * c["secondsPerRow"] + t * t * c["secondsPerPair"] + c["secondsPerRun"]
    return (s["layers"] * per_layer + logits / rate) / max(c["workers"], 1)


def forward(arbiter, model, tokens, compute, side_by_side=False):
    """bench-forward's timed forward: alone (all BLAS threads on it), or `--side-by-side` (one forward per worker at
    once, one BLAS thread each, as verify runs its items: seconds per forward = wall / workers)."""
    env = dict(os.environ)
    env.pop("ARBITER_COMPUTE", None)
    if compute == "bf16":
        env["ARBITER_COMPUTE"] = "bf16"
    proc, seconds, rss = timed_run([arbiter, "bench-forward", "--model", model, "--tokens", str(tokens),
                                    "--repeats", "1", "--logits", "last"] + (["--side-by-side"] if side_by_side else []),
                                   env=env)
    if proc.returncode != 0:
        raise BenchError(f"bench-forward ({compute}) failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    info = last_json(proc.stdout, "bench-forward")
    workers = info.get("workers", 1)
    return {"compute": compute if workers == 1 else f"{compute} ×{workers}", "wall": seconds,
            "forward": info["seconds_best"], "rss": rss, "rss_cli": info.get("peak_rss_bytes", 0),
            "checked": compute == "f32" and side_by_side}


def has_avx512bf16():
    """Whether this CPU has AVX512-BF16 (the flag `arbiter_has_avx512bf16` checks), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and "avx512_bf16" in line.split() for line in f)
    except OSError:
        return False


def gb(n):
    return f"{n / 1e9:.2f} GB"


def duration(seconds):
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def run(args, work):
    free = shutil.disk_usage(work).free
    if args.model is None and free < MIN_FREE_BYTES:
        raise BenchError(f"{work}: {free / 1e9:.1f} GB free; the 7B-shaped checkpoint takes ~14.1 GB and this bench "
                         f"refuses below {MIN_FREE_BYTES / 1e9:.0f} GB (set TMPDIR to a folder on a larger disk)")
    load = os.getloadavg()[0]
    built = None
    if args.model is None:
        model = os.path.join(work, "llava-1.5-7b-shaped")
        log(f"building the checkpoint in {model} …")
        built = build(args.python, model)
    else:
        model = os.path.abspath(args.model)
    size = folder_bytes(model)

    rows = []
    for compute in ("f32", "bf16"):
        log(f"bench-forward --tokens {args.tokens} ({compute}) …")
        rows.append(forward(args.arbiter, model, args.tokens, compute))
    log(f"bench-forward --tokens {args.tokens} --side-by-side (f32, as verify runs its items) …")
    rows.append(forward(args.arbiter, model, args.tokens, "f32", side_by_side=True))

    count, (trial, plan_seconds) = trial_count(args.arbiter, model)
    budget = args.budget_minutes * 60
    ran = None
    if trial["seconds"] <= budget:
        log(f"running the trial verify --count {count} (planned {duration(trial['seconds'])}) …")
        seconds, rss, status, lines = run_trial(args.arbiter, model, count, work)
        if status != 0:
            raise BenchError(f"the trial verify failed ({status}): {lines[-1] if lines else ''}")
        ran = {"seconds": seconds, "rss": rss, "stages": stage_times(lines, seconds)}
    log("plan of the default protocol from the shape (240 items, --prompt-tokens 650) …")
    default, _ = plan(args.arbiter, model, ["--prompt-tokens", "650", "--seed", str(SEED)])

    failures = []
    print(f"bench-7b: LLaVA-1.5-7B-shaped checkpoint, random bf16 weights (load average {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores; timings need an idle host)")
    print(f"  checkpoint       {gb(size)}"
          + (f" in {built['shards']} shards, {built['parameters'] / 1e9:.2f} B parameters" if built else
             f" ({model}, not built here)"))
    if built:
        print(f"  build            {built['seconds']:.1f} s, generator's peak RSS {gb(built['rss'])} "
              f"({built['rss'] / size:.2f}× the checkpoint)")
    predicted = predicted_forward_seconds(trial, args.tokens)
    print()
    print(f"  {'compute':8} {'load+forward':>12} {'forward':>9} {'predicted':>10} {'error':>7} {'peak RSS':>10} "
          f"{'RSS/file':>9}")
    for row in rows:
        error = predicted / row["forward"] - 1
        ratio = row["rss"] / size
        note = "  (checked: the plan's throughput per forward)" if row["checked"] else "  (not checked)"
        print(f"  {row['compute']:8} {row['wall']:11.1f}s {row['forward']:8.1f}s {predicted:9.1f}s {error:+6.0%} "
              f"{gb(row['rss']):>10} {ratio:8.3f}×{note}")
        if ratio > RSS_LIMIT:
            failures.append(f"{row['compute']} peak RSS {ratio:.3f}× the checkpoint (limit {RSS_LIMIT}×)")
        if row["checked"] and abs(error) > TOLERANCE:
            failures.append(f"f32 side-by-side forward predicted {error:+.0%} (limit ±{TOLERANCE:.0%})")
    f32, bf16, _ = rows
    kernel = has_avx512bf16() and os.environ.get("ARBITER_NO_AVX512BF16") != "1"
    print(f"  bf16 compute: {f32['forward'] / bf16['forward']:.2f}× the f32 forward; "
          + ("the AVX512-BF16 kernel ran" if kernel else "this CPU has no AVX512-BF16 (/proc/cpuinfo), so bf16 "
             "compute took f32's widening path: the difference is the host's noise"))
    print(f"  tokens {args.tokens}, logits at the last position; load+forward = the process (mapping, one warm-up "
          f"and one timed forward); ×N = N forwards side by side, one BLAS thread each, seconds per forward; the plan "
          f"calibrates on batches of {trial['calibration']['rows']} rows, its products on "
          f"{trial['calibration'].get('productRows', trial['calibration']['rows'])}")
    print()
    memory = sum(trial["memory"].values())
    print(f"  trial run: verify --count {count} {' '.join(TRIAL)}")
    print(f"  plan: {trial['items']} items of {trial['meanTokens']:.0f} tokens (mean), {trial['passes']} passes, "
          f"{trial['flops'] / 1e12:.0f} TFLOP, predicted {duration(trial['seconds'])}, peak memory {gb(memory)}; "
          f"planning took {duration(plan_seconds)} (its pilot {duration(trial.get('pilotSeconds') or 0)})")
    if ran is None:
        print(f"  not run: the plan predicts more than the {args.budget_minutes:g}-minute budget")
    else:
        error = trial["seconds"] / max(ran["seconds"], 1e-9) - 1
        print(f"  ran in {duration(ran['seconds'])}: predicted {error:+.0%}; peak RSS {gb(ran['rss'])} "
              f"({ran['rss'] / size:.2f}× the checkpoint: weights mapped + baselines + keys and values)")
        print(f"    {'stage':44} {'passes':>7} {'TFLOP':>8} {'predicted':>10} {'measured':>10} {'error':>7}")
        for stage in trial["stages"]:
            name = stage["name"]
            key = next((k for k in ran["stages"] if name.startswith(k)), None)
            measured = ran["stages"].get(key) if key else None
            shown = f"{duration(measured):>10}" if measured is not None else f"{'–':>10}"
            err = (f"{stage['seconds'] / measured - 1:+6.0%}" if measured and measured > 0.5 and stage["seconds"] > 0
                   else f"{'–':>7}")
            print(f"    {name[:44]:44} {stage['passes']:7d} {stage['flops'] / 1e12:8.2f} "
                  f"{duration(stage['seconds']):>10} {shown} {err}")
        if abs(error) > TOLERANCE:
            failures.append(f"the trial run predicted {error:+.0%} (limit ±{TOLERANCE:.0%})")
    print()
    print(f"  the default protocol (240 items of 650 tokens, from the shape): {default['passes']} passes, "
          f"{default['flops'] / 1e12:,.0f} TFLOP, predicted {duration(default['seconds'])} on this host, peak memory "
          f"{gb(sum(default['memory'].values()))}")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arbiter", default=".build/release/arbiter")
    parser.add_argument("--python", default=".venv/bin/python", help="python with torch and transformers")
    parser.add_argument("--work", help="an existing empty folder to work in (the caller deletes it)")
    parser.add_argument("--model", help="an existing 7B-shaped folder (skip the build)")
    parser.add_argument("--tokens", type=int, default=650, help="tokens of the timed forward (LLaVA-1.5: 650)")
    parser.add_argument("--budget-minutes", type=float, default=120,
                        help="run the trial verify when the plan predicts it within this")
    parser.add_argument("--self-test", action="store_true", help="check the progress-line parsing and exit")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return 0
    if not os.access(args.arbiter, os.X_OK):
        log(f"error: {args.arbiter}: no arbiter executable (make build)")
        return 2
    # A signal ends the run through the cleanup below (SIGINT raises KeyboardInterrupt by itself).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    own = args.work is None
    if own:
        work = tempfile.mkdtemp(prefix="arbiter-bench-7b-")
    else:
        work = os.path.abspath(args.work)
        if not os.path.isdir(work) or os.listdir(work):
            log(f"error: --work {work}: give an existing empty folder")
            return 2
    try:
        return run(args, work)
    except BenchError as e:
        log(f"error: {e}")
        return 2
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
