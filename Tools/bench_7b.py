#!/usr/bin/env python3
"""`make bench-7b`: Arbiter on a LLaVA-1.5-7B-shaped checkpoint with random bf16 weights (issue #23, item 4).

    bench_7b.py --arbiter .build/release/arbiter --python .venv/bin/python [--work DIR | --model DIR]
                [--tokens 650] [--budget-minutes 20]

In a work folder (--work: an existing empty folder that the caller deletes, as `make bench-7b` does with a trap;
without it a temporary folder that this script deletes, on an error or a signal too):

1. builds the checkpoint with Tools/make_7b_shaped.py (~14.1 GB; refused below 20 GB free), timed, with its
   peak RSS; --model DIR uses an existing folder instead (nothing is built, nothing of it deleted);
2. runs `arbiter verify --count 4` on it, which `verify` refuses (fewer than 2 × minimumPerTarget conflict items
   per target), and records the message. Every verify here runs with --keep-going: the stand-in tokenizer (500
   BPE pieces, Tools/make_7b_shaped.py) splits some answer words so that both candidates begin with the same
   token ("▁"), and verify refuses a run where more than 10% of the items cannot be scored;
3. plans the smallest generated run `verify` accepts (`verify --plan --json --count N --random-sets 1`, N the
   smallest count whose generated items hold 8 conflict items per target) and runs it for real only when its
   predicted time is within --budget-minutes (on 2 cores it is days: the plan's figure is printed instead);
4. runs `arbiter bench-forward --model M --tokens T --repeats 1 --logits last` (load, one warm-up and one timed
   forward of the decoder over T random ids) with f32 compute (bf16 weights widened block by block) and with
   ARBITER_COMPUTE=bf16, each under /usr/bin/time for the process's peak RSS;
5. predicts one such forward from the plan's calibration (the baselines stage's formula, `PlanCounter.
   baselineStage`, at T tokens without the vision tower: layers × (T·s_row + T²·s_pair + s_run) + the logits'
   FLOPs at the calibrated rate, over the workers) and prints a table.

Exits 1 when a peak RSS exceeds 1.15 × the checkpoint's bytes or the f32 forward's prediction is off by more than
25% (the plan calibrates f32 layers: the bf16 row's error is shown, not checked); 2 when it cannot run (disk,
build). Timings need an idle host (the load average is printed). Standard library only; --python runs the
generator (torch, transformers).
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
MIN_PER_TARGET = 4        # AnalysisConfiguration.minimumPerTarget: verify needs 2× this per target


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


def verify_count4(arbiter, model, work):
    cmd = [arbiter, "verify", "--model", model, "--count", "4", "--seed", str(SEED), "--keep-going", "--out",
           os.path.join(work, "report-count-4")]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - start
    message = (proc.stderr.strip().splitlines() or [""])[-1]
    return {"status": proc.returncode, "seconds": seconds, "message": message}


def smallest_count(arbiter, work):
    """The smallest --count whose generated items (seed SEED, 336-pixel images) hold 2 × MIN_PER_TARGET
    conflict items following each target."""
    for count in range(8, 200, 2):
        out = os.path.join(work, f"data-{count}")
        subprocess.run([arbiter, "data", "generate", "--count", str(count), "--seed", str(SEED), "--image-size",
                        "336", "--out", out], check=True, capture_output=True, text=True)
        with open(os.path.join(out, "dataset.json")) as f:
            data = json.load(f)
        shutil.rmtree(out)
        items = data["items"]
        targets = {"image": 0, "text": 0}
        for item in items:
            if item.get("kind") == "conflict" and item.get("target") in targets:
                targets[item["target"]] += 1
        if min(targets.values()) >= 2 * MIN_PER_TARGET:
            return count
    raise BenchError("no --count up to 200 gives 8 conflict items per target")


def plan(arbiter, model, count, random_sets, env=None):
    cmd = [arbiter, "verify", "--plan", "--json", "--model", model, "--count", str(count), "--seed", str(SEED),
           "--random-sets", str(random_sets), "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return None, proc.stderr.strip()
    return json.loads(proc.stdout)[0], ""


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


def forward(arbiter, model, tokens, compute):
    env = dict(os.environ)
    env.pop("ARBITER_COMPUTE", None)
    if compute == "bf16":
        env["ARBITER_COMPUTE"] = "bf16"
    proc, seconds, rss = timed_run([arbiter, "bench-forward", "--model", model, "--tokens", str(tokens),
                                    "--repeats", "1", "--logits", "last"], env=env)
    if proc.returncode != 0:
        raise BenchError(f"bench-forward ({compute}) failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    info = last_json(proc.stdout, "bench-forward")
    return {"compute": compute, "wall": seconds, "forward": info["seconds_best"], "rss": rss,
            "rss_cli": info.get("peak_rss_bytes", 0)}


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

    log("verify --count 4 …")
    count4 = verify_count4(args.arbiter, model, work)
    count = smallest_count(args.arbiter, work)
    for _ in range(12):  # items the model cannot score lower the count: a few more, then give up
        log(f"plan of verify --count {count} --random-sets 1 …")
        reduced, plan_error = plan(args.arbiter, model, count, 1)
        if reduced is not None or "conflict items following" not in plan_error:
            break
        count += 2
    if reduced is None:
        raise BenchError(f"verify --plan --count {count} failed: {plan_error}")
    budget = args.budget_minutes * 60
    ran = None
    if reduced["seconds"] <= budget:
        log(f"running verify --count {count} --random-sets 1 (planned {duration(reduced['seconds'])}) …")
        cmd = [args.arbiter, "verify", "--model", model, "--count", str(count), "--seed", str(SEED),
               "--random-sets", "1", "--keep-going", "--out", os.path.join(work, "report")]
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        ran = {"seconds": time.monotonic() - start, "status": proc.returncode,
               "message": (proc.stderr.strip().splitlines() or [""])[-1]}

    rows = []
    for compute in ("f32", "bf16"):
        log(f"bench-forward --tokens {args.tokens} ({compute}) …")
        rows.append(forward(args.arbiter, model, args.tokens, compute))
    predicted = predicted_forward_seconds(reduced, args.tokens)
    baseline = next(s for s in reduced["stages"] if s["name"].startswith("baselines"))
    per_baseline = baseline["seconds"] / max(baseline["passes"], 1)

    failures = []
    print(f"bench-7b: LLaVA-1.5-7B-shaped checkpoint, random bf16 weights (load average {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores; timings need an idle host)")
    print(f"  checkpoint       {gb(size)}"
          + (f" in {built['shards']} shards, {built['parameters'] / 1e9:.2f} B parameters" if built else
             f" ({model}, not built here)"))
    if built:
        print(f"  build            {built['seconds']:.1f} s, generator's peak RSS {gb(built['rss'])} "
              f"({built['rss'] / size:.2f}× the checkpoint)")
    print(f"  verify --count 4 exit {count4['status']} after {count4['seconds']:.1f} s: {count4['message']}")
    c = reduced["calibration"]
    memory = sum(reduced["memory"].values())
    print(f"  plan             verify --count {count} --random-sets 1: {reduced['items']} items of "
          f"{reduced['meanTokens']:.0f} tokens (mean), {reduced['passes']} passes, {reduced['flops'] / 1e12:.0f} "
          f"TFLOP, predicted {duration(reduced['seconds'])} (worst case {duration(reduced['worstCaseSeconds'])}), "
          f"peak memory {gb(memory)}; calibration {c['seconds']:.1f} s on {c['workers']} workers")
    if ran is None:
        print(f"                   not run: over the {args.budget_minutes:g}-minute budget")
    else:
        error = reduced["seconds"] / max(ran["seconds"], 1e-9) - 1
        print(f"                   ran: exit {ran['status']} after {duration(ran['seconds'])} ({error:+.0%} "
              f"predicted vs measured) {ran['message']}")
        if ran["status"] == 0 and abs(error) > TOLERANCE:
            failures.append(f"reduced verify predicted {error:+.0%}")
    print(f"  plan's baselines stage: {per_baseline:.1f} s per pass ({baseline['passes']} passes, vision tower "
          f"included, prompts of {reduced['meanTokens']:.0f} tokens)")
    print()
    print(f"  {'compute':8} {'load+forward':>12} {'forward':>9} {'predicted':>10} {'error':>7} {'peak RSS':>10} "
          f"{'RSS/file':>9}")
    for row in rows:
        error = predicted / row["forward"] - 1
        ratio = row["rss"] / size
        note = "" if row["compute"] == "f32" else "  (plan times f32 layers: not checked)"
        print(f"  {row['compute']:8} {row['wall']:11.1f}s {row['forward']:8.1f}s {predicted:9.1f}s {error:+6.0%} "
              f"{gb(row['rss']):>10} {ratio:8.3f}×{note}")
        if ratio > RSS_LIMIT:
            failures.append(f"{row['compute']} peak RSS {ratio:.3f}× the checkpoint (limit {RSS_LIMIT}×)")
        if row["compute"] == "f32" and abs(error) > TOLERANCE:
            failures.append(f"f32 forward predicted {error:+.0%} (limit ±{TOLERANCE:.0%})")
    f32, bf16 = rows
    kernel = has_avx512bf16() and os.environ.get("ARBITER_NO_AVX512BF16") != "1"
    print(f"  bf16 compute: {f32['forward'] / bf16['forward']:.2f}× the f32 forward; "
          + ("the AVX512-BF16 kernel ran" if kernel else "this CPU has no AVX512-BF16 (/proc/cpuinfo), so bf16 "
             "compute took f32's widening path: the difference is the host's noise"))
    print(f"  tokens {args.tokens}, logits at the last position; load+forward = the process (mapping, one warm-up "
          f"and one timed forward); the plan calibrates on batches of {c['rows']} rows")
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
    parser.add_argument("--budget-minutes", type=float, default=20, help="run the reduced verify within this")
    args = parser.parse_args()
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
