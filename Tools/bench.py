#!/usr/bin/env python3
"""Speed of Arbiter against PyTorch eager on this machine (`make bench`).

    bench.py --arbiter .build/release/arbiter [--sections forward] [--tokens 512] [--repeats 3]

Each section builds what it needs in a temporary folder (nothing is committed), times PyTorch, runs the
matching `arbiter` command, and adds rows to the printed table. Sections are listed in SECTIONS; add one by
writing a function `(BenchContext) -> list[Row]` and appending a `Section` entry.

Section `forward`: a Qwen2-0.5B-shaped checkpoint (hidden 896, 24 layers, 14 heads / 2 kv heads,
intermediate 4864, vocab 151936, tied embeddings, q/k/v biases) with random weights, saved once as float32
and once as bfloat16; one forward over `--tokens` random ids, best of `--repeats` after a warm-up, PyTorch with
`torch.set_num_threads(2)` and eager attention; Arbiter through
`arbiter bench-forward --model DIR --tokens N --repeats R --logits all|streamed|last`, each with logits at every
position (returned whole, or streamed in vocabulary blocks so they are never all in memory; PyTorch's time for
both is its plain forward) and at the last position only (`logits_to_keep=1` in PyTorch), which prints one JSON line
`{"seconds": [...], "seconds_best": x, "peak_rss_bytes": n}`.

Section `analysis`: `arbiter verify` on the main bundled model (240 generated items, seed 260203677; `--repeats`
runs, the median reported) against
Tools/analysis_torch.py, the same analyses in PyTorch with forward hooks (whole forward per setting) on the same
items written by `arbiter data generate`; prints both wall times and PyTorch/Arbiter (target >= 10x), and the
script's cross-check of every item's following score against `arbiter run` (max |delta s|).

Section `gemm`: the matrix products of a LLaVA-1.5-7B layer (4096->4096, 4096->11008, 11008->4096; x of 64 and
512 rows) as the model runs them: Arbiter through `arbiter bench-gemm` (`linearInto` on random weights: f32 weights
(OpenBLAS sgemm), bf16 weights widened to f32 (the default path), bf16 weights in bf16 compute (the AVX512-BF16
kernel, ARBITER_COMPUTE=bf16)) and PyTorch's `torch.nn.functional.linear` in float32 and in bfloat16; medians of
`--repeats` runs (at least 5) after a warm-up, GFLOP/s = 2·rows·in·out / time, and the ratios (target on an
AVX512-BF16 CPU: Arbiter bf16 compute >= 1.5x Arbiter f32).
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import torch
import transformers


def log(message: str) -> None:
    print(message, flush=True)


@dataclasses.dataclass
class Row:
    section: str
    case: str  # e.g. the dtype
    pytorch_seconds: float | None
    arbiter_seconds: float | None
    arbiter_peak_rss: int | None = None
    checkpoint_bytes: int | None = None
    note: str = ""


@dataclasses.dataclass
class BenchContext:
    arbiter: str | None  # path of the arbiter executable, None when unavailable
    arbiter_problem: str  # why it is unavailable ("" when available)
    workdir: str
    tokens: int
    repeats: int
    threads: int
    timeout: float


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    run: Callable[[BenchContext], list[Row]]
    summary: str


# --- helpers --------------------------------------------------------------------------------------------

def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path)
               if name.endswith(".safetensors"))


def best_of(run: Callable[[], None], repeats: int) -> tuple[float, list[float]]:
    """Warm-up once, then `repeats` timed runs; returns (best, all)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), times


def run_arbiter(ctx: BenchContext, args: list[str]) -> tuple[dict | None, str]:
    """Runs `arbiter ARGS`; returns (parsed last JSON line, problem text)."""
    if ctx.arbiter is None:
        return None, ctx.arbiter_problem
    command = [ctx.arbiter, *args]
    log(f"  $ {' '.join(command)}")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=ctx.timeout)
    except subprocess.TimeoutExpired:
        return None, f"arbiter timed out after {ctx.timeout:.0f} s"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        if any("bench-forward" in line and ("nknown" in line or "nexpected" in line) for line in tail):
            return None, "this arbiter has no `bench-forward` command yet"
        return None, f"arbiter exited {done.returncode}: " + " | ".join(tail)
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return None, "arbiter printed no JSON line"
    try:
        return json.loads(lines[-1]), ""
    except json.JSONDecodeError as error:
        return None, f"arbiter printed invalid JSON ({error})"


def find_arbiter(path: str | None) -> tuple[str | None, str]:
    if path is None:
        return None, "no --arbiter given"
    if not os.path.isfile(path):
        return None, f"{path} does not exist (build it with `swift build -c release`)"
    if not os.access(path, os.X_OK):
        return None, f"{path} is not executable"
    try:
        help_text = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"{path} --help failed: {error}"
    if "bench-forward" not in help_text:
        return None, f"{path} has no `bench-forward` command yet"
    return os.path.abspath(path), ""


# --- section: forward -----------------------------------------------------------------------------------

QWEN2_05B_SHAPE = dict(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=True,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, hidden_act="silu",
)


def build_qwen2_05b(folder: str, seed: int = 0) -> dict[str, str]:
    """Saves the random Qwen2-0.5B-shaped checkpoint as float32 and bfloat16; returns dtype → folder.
    Folders already there from an earlier run with --workdir are reused when their config matches."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    wanted = {name: os.path.join(folder, f"qwen2-0.5b-shape-{name}") for name in ("float32", "bfloat16")}
    if all(reusable(path, name) for name, path in wanted.items()):
        log(f"  reusing the checkpoints in {folder}")
        return wanted

    torch.manual_seed(seed)
    config = Qwen2Config(**QWEN2_05B_SHAPE)
    started = time.time()
    model = Qwen2ForCausalLM(config).eval()
    params = sum(p.numel() for p in model.parameters())
    log(f"  built Qwen2-0.5B-shaped model ({params / 1e6:.0f} M parameters) in {time.time() - started:.0f} s")
    folders = {}
    for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        path = os.path.join(folder, f"qwen2-0.5b-shape-{dtype_name}")
        model.to(dtype).save_pretrained(path, safe_serialization=True)
        folders[dtype_name] = path
        log(f"  saved {dtype_name}: {folder_bytes(path) / 1e9:.2f} GB in {path}")
    del model
    gc.collect()
    return folders


def reusable(path: str, dtype_name: str) -> bool:
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError):
        return False
    same_shape = all(config.get(key) == value for key, value in QWEN2_05B_SHAPE.items())
    return same_shape and config.get("dtype") == dtype_name and folder_bytes(path) > 0


def time_pytorch_forward(path: str, dtype: torch.dtype, tokens: int, repeats: int,
                         last_logits: bool = False) -> tuple[float, list[float]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager").eval()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens), generator=generator)

    def forward() -> None:
        with torch.inference_mode():
            model(input_ids=ids, use_cache=False, logits_to_keep=1 if last_logits else 0)

    try:
        return best_of(forward, repeats)
    finally:
        del model
        gc.collect()


def section_forward(ctx: BenchContext) -> list[Row]:
    folders = build_qwen2_05b(ctx.workdir)
    rows = []
    # Logits at every position (a plain forward: the [tokens, 151936] logits alone are 0.31 GB, a third of
    # the bf16 file), the same logits streamed in vocabulary blocks (Arbiter's forward(ids:…consume:); PyTorch
    # row: its plain forward, timed once for both), and at the last position only (what every analysis reads;
    # both sides skip the rest).
    cases = [(dtype_name, path, logits) for logits in ("all", "streamed", "last") for dtype_name, path in folders.items()]
    pytorch: dict[tuple[str, bool], tuple[float, list[float]]] = {}
    for dtype_name, path, logits in cases:
        dtype = getattr(torch, dtype_name)
        label = {"all": dtype_name, "streamed": f"{dtype_name}, streamed logits",
                 "last": f"{dtype_name}, last logits"}[logits]
        key = (dtype_name, logits == "last")
        if key not in pytorch:
            pytorch[key] = time_pytorch_forward(path, dtype, ctx.tokens, ctx.repeats, last_logits=logits == "last")
            log(f"  PyTorch {label}: best {pytorch[key][0]:.3f} s of {[round(t, 3) for t in pytorch[key][1]]}")
        best = pytorch[key][0]
        result, problem = run_arbiter(ctx, ["bench-forward", "--model", path, "--tokens", str(ctx.tokens),
                                            "--repeats", str(ctx.repeats), "--logits", logits])
        if result is not None:
            log(f"  Arbiter {label}: best {result['seconds_best']:.3f} s of "
                f"{[round(t, 3) for t in result['seconds']]}, peak RSS {result['peak_rss_bytes'] / 1e9:.2f} GB")
        else:
            log(f"  Arbiter {label}: not run: {problem}")
        rows.append(Row("forward", label, best,
                        result["seconds_best"] if result else None,
                        int(result["peak_rss_bytes"]) if result else None,
                        folder_bytes(path), problem))
    return rows


def sweep_model() -> str:
    """The main bundled model when it exists, else the tiny random LLaVA."""
    for name in ("arbiter-main", "tiny-llava"):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "GoldenData", "models", name)
        if os.path.isdir(path):
            return os.path.normpath(path)
    raise SystemExit("no LLaVA-format model under GoldenData/models")


def section_sweep(ctx: BenchContext) -> list[Row]:
    """Knockout sweep (7 edge kinds x every layer window): resume-from-layer vs recomputing from layer 0.
    The 'PyTorch s' column holds the from-layer-0 time here, so the ratio is the speed-up of resuming."""
    model = sweep_model()
    result, problem = run_arbiter(ctx, ["bench-sweep", "--model", model, "--mode", "sweep"])
    if result is None:
        return [Row("knockout-sweep", os.path.basename(model), None, None, None, None, problem)]
    log(f"  sweep over {result['samples']} samples, {result['layers']} layers: from layer 0 {result['seconds_full']:.3f} s, "
        f"resumed {result['seconds_resume']:.3f} s")
    return [Row("knockout-sweep", f"{os.path.basename(model)}: resume (vs from layer 0)", result["seconds_full"],
                result["seconds_resume"], None, None, "knockout-sweep: 'PyTorch s' column = Arbiter without resume")]


def section_cache_memory(ctx: BenchContext) -> list[Row]:
    """Peak memory of a run caching every hook vs one caching a single hook (filter keeps memory flat)."""
    model = sweep_model()
    rows = []
    for mode in ("cache-full", "cache-filtered"):
        result, problem = run_arbiter(ctx, ["bench-sweep", "--model", model, "--mode", mode])
        if result is not None:
            log(f"  {mode}: {result['cached_tensors']} tensors cached, peak RSS {result['peak_rss_bytes'] / 1e6:.1f} MB")
        rows.append(Row("cache-memory", f"{os.path.basename(model)}: {mode}", None, None,
                        int(result["peak_rss_bytes"]) if result else None, None, problem))
    return rows


def section_analysis(ctx: BenchContext) -> list[Row]:
    """Wall time of the full analysis set on the main bundled model: `arbiter verify` (data generated in memory)
    against Tools/analysis_torch.py (transformers + forward hooks, a whole forward per setting) on the same items,
    written by `arbiter data generate` with verify's count, seed and the model's image size (target >= 10x)."""
    model = sweep_model()
    case = f"verify {os.path.basename(model)}"
    if ctx.arbiter is None:
        return [Row("analysis", case, None, None, None, None, ctx.arbiter_problem)]
    count, seed = 240, 260203677  # VerifyCommand's defaults
    # `--repeats` runs; the median is reported (this shared 2-core host moves one run's wall time by ±10 %).
    walls: list[float] = []
    problem = ""
    for run in range(max(1, ctx.repeats)):
        started = time.time()
        # verify exits 1 when a claim fails; that is a finding, not a benchmark failure (2+ is an error).
        done = subprocess.run([ctx.arbiter, "verify", "--model", model, "--json", "--count", str(count), "--seed", str(seed)],
                              capture_output=True, text=True, timeout=ctx.timeout)
        walls.append(time.time() - started)
        if done.returncode not in (0, 1):
            problem = f"arbiter verify exited {done.returncode}: {done.stderr.strip()[-200:]}"
            break
        log(f"  verify on {os.path.basename(model)}, run {run + 1}/{max(1, ctx.repeats)}: {walls[-1]:.1f} s wall")
    wall = statistics.median(walls)
    if not problem:
        log(f"  verify: median {wall:.1f} s of {[round(w, 1) for w in walls]}")
    arbiter_seconds = None if problem else wall
    results = os.path.join(ctx.workdir, "verify.json")
    if not problem:
        with open(results, "w") as f:
            f.write(done.stdout)

    # The same items as a dataset folder, then the PyTorch+hooks script (its own process: threads, memory).
    with open(os.path.join(model, "config.json")) as f:
        image_size = json.load(f)["vision_config"]["image_size"]
    data = os.path.join(ctx.workdir, "data")
    shutil.rmtree(data, ignore_errors=True)
    generated = subprocess.run([ctx.arbiter, "data", "generate", "--count", str(count), "--seed", str(seed),
                                "--image-size", str(image_size), "--out", data], capture_output=True, text=True)
    if generated.returncode != 0:
        return [Row("analysis", case, None, arbiter_seconds, None, None,
                    problem or f"arbiter data generate failed: {generated.stderr.strip()[-200:]}")]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis_torch.py")
    command = [sys.executable, script, "--model", model, "--data", data, "--threads", str(ctx.threads),
               "--json", os.path.join(ctx.workdir, "analysis_torch.json"), "--arbiter", ctx.arbiter]
    if not problem:
        command += ["--arbiter-results", results]
    log(f"  $ {' '.join(command)}")
    torch_run = subprocess.run(command, capture_output=True, text=True, timeout=ctx.timeout * 10)
    lines = [line for line in torch_run.stdout.strip().splitlines() if line.startswith("{")]
    if torch_run.returncode != 0 or not lines:
        tail = " | ".join((torch_run.stderr or torch_run.stdout).strip().splitlines()[-3:])
        return [Row("analysis", case, None, arbiter_seconds, None, None, problem or f"analysis_torch.py failed: {tail}")]
    summary = json.loads(lines[-1])
    for line in torch_run.stdout.splitlines():
        if line.startswith(("==", "  ")):
            log("  " + line.strip())
    # The script's own wall time (model load and every analysis; not the interpreter/torch import).
    pytorch_seconds = summary["seconds"]
    log(f"  PyTorch+hooks: {pytorch_seconds:.1f} s ({summary['forward_passes']} forward passes); "
        f"max |delta s| vs arbiter: {summary.get('max_abs_s_diff', float('nan')):.2e}")
    note = ""
    if arbiter_seconds:
        speedup = pytorch_seconds / arbiter_seconds
        log(f"  PyTorch/Arbiter: {speedup:.1f}x (target >= 10x)")
        note = (f"analysis: PyTorch/Arbiter = {speedup:.1f}x (target >= 10x; PyTorch = Tools/analysis_torch.py, "
                f"whole forward per setting; max |delta s| {summary.get('max_abs_s_diff', float('nan')):.1e})")
    return [Row("analysis", f"{case} vs PyTorch+hooks (target <= 60 s, >= 10x)", pytorch_seconds, arbiter_seconds,
                None, None, problem or note)]


# --- section: gemm --------------------------------------------------------------------------------------

LLAVA_7B_LAYER_SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096)]  # (in, out): q/k/v/o, gate/up, down
GEMM_ROWS = [64, 512]


def median_of(run: Callable[[], None], repeats: int) -> float:
    """Warm-up once, then the median of `repeats` timed runs."""
    return statistics.median(best_of(run, repeats)[1])


def time_pytorch_linear(rows: int, inputs: int, outputs: int, dtype: torch.dtype, repeats: int) -> float:
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(rows, inputs, generator=generator) * 2 - 1).to(dtype)
    w = (torch.rand(outputs, inputs, generator=generator) * 2 - 1).to(dtype)

    def product() -> None:
        with torch.inference_mode():
            torch.nn.functional.linear(x, w)

    return median_of(product, repeats)


def section_gemm(ctx: BenchContext) -> list[Row]:
    repeats = max(ctx.repeats, 5)
    rows_out = []
    cases = [("f32 weights", "f32", "f32"), ("bf16 weights, f32 compute", "bf16", "f32"),
             ("bf16 weights, bf16 compute", "bf16", "bf16")]
    for inputs, outputs in LLAVA_7B_LAYER_SHAPES:
        for rows in GEMM_ROWS:
            flops = 2.0 * rows * inputs * outputs
            shape = f"{inputs}->{outputs}, {rows} rows"
            pytorch = {name: time_pytorch_linear(rows, inputs, outputs, getattr(torch, name), repeats)
                       for name in ("float32", "bfloat16")}
            log(f"  {shape}: PyTorch float32 {flops / pytorch['float32'] / 1e9:.1f} GFLOP/s, "
                f"bfloat16 {flops / pytorch['bfloat16'] / 1e9:.1f} GFLOP/s")
            arbiter: dict[str, float | None] = {}
            for label, weights, compute in cases:
                result, problem = run_arbiter(ctx, ["bench-gemm", "--in", str(inputs), "--out", str(outputs),
                                                    "--rows", str(rows), "--weights", weights, "--compute", compute,
                                                    "--repeats", str(repeats)])
                seconds = result["seconds_median"] if result else None
                arbiter[label] = seconds
                if result:
                    log(f"  {shape}: Arbiter {label} ({result['path']}): {result['gflops_median']:.1f} GFLOP/s")
                else:
                    log(f"  {shape}: Arbiter {label}: not run: {problem}")
                versus = pytorch["bfloat16" if compute == "bf16" else "float32"]
                rows_out.append(Row("gemm", f"{shape}: {label}", versus, seconds, None, None,
                                    problem if not result else ""))

            def rate(seconds: float | None) -> str:
                return "-" if seconds is None else f"{flops / seconds / 1e9:.0f}"

            f32, bf16 = arbiter["f32 weights"], arbiter["bf16 weights, bf16 compute"]
            ratio = f"{f32 / bf16:.2f}x" if f32 and bf16 else "-"
            rows_out[-1].note = (f"gemm {shape}: GFLOP/s Arbiter f32 {rate(f32)}, bf16 widened "
                                 f"{rate(arbiter['bf16 weights, f32 compute'])}, bf16 compute {rate(bf16)}; PyTorch "
                                 f"float32 {rate(pytorch['float32'])}, bfloat16 {rate(pytorch['bfloat16'])}; "
                                 f"Arbiter bf16/f32 = {ratio} (target >= 1.5x), PyTorch bf16/f32 = "
                                 f"{pytorch['float32'] / pytorch['bfloat16']:.2f}x")
            log(f"  {rows_out[-1].note}")
    return rows_out


# Each section returns rows for the same table.
SECTIONS: list[Section] = [
    Section("forward", section_forward,
            "Qwen2-0.5B-shaped forward over N tokens, float32 and bfloat16 checkpoints"),
    Section("sweep", section_sweep, "knockout sweep with and without resume-from-layer"),
    Section("cache-memory", section_cache_memory, "peak memory: full activation cache vs filtered cache"),
    Section("gemm", section_gemm, "the matrix products of a LLaVA-1.5-7B layer: f32 and bf16 weights, f32 and bf16 "
                                  "compute, against PyTorch float32 and bfloat16 (GFLOP/s, medians)"),
    Section("analysis", section_analysis, "the full analysis set and claims (arbiter verify) on the main bundled model, "
                                          "against the same computation in PyTorch with hooks (Tools/analysis_torch.py)"),
]


# --- table ----------------------------------------------------------------------------------------------

def format_table(rows: list[Row]) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    header = ["section", "case", "PyTorch s", "Arbiter s", "Arbiter/PyTorch", "Arbiter peak RSS",
              "checkpoint", "RSS/checkpoint"]
    lines = [header]
    for row in rows:
        ratio = (f"{row.arbiter_seconds / row.pytorch_seconds:.2f}x"
                 if row.arbiter_seconds is not None and row.pytorch_seconds else "-")
        rss = "-" if row.arbiter_peak_rss is None else f"{row.arbiter_peak_rss / 1e9:.2f} GB"
        size = "-" if row.checkpoint_bytes is None else f"{row.checkpoint_bytes / 1e9:.2f} GB"
        rss_ratio = (f"{row.arbiter_peak_rss / row.checkpoint_bytes:.2f}"
                     if row.arbiter_peak_rss is not None and row.checkpoint_bytes else "-")
        lines.append([row.section, row.case, seconds(row.pytorch_seconds), seconds(row.arbiter_seconds), ratio,
                      rss, size, rss_ratio])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    notes = sorted({row.note for row in rows if row.note})
    text.extend(f"note: {note}" for note in notes)
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arbiter", help="path of the arbiter executable (e.g. .build/release/arbiter)")
    parser.add_argument("--sections", default=",".join(s.name for s in SECTIONS),
                        help=f"comma-separated sections to run (default all: {', '.join(s.name for s in SECTIONS)})")
    parser.add_argument("--tokens", type=int, default=512, help="tokens per forward pass (default 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats after a warm-up (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per arbiter run")
    parser.add_argument("--workdir", help="folder for the temporary checkpoints (default: a new temp folder, "
                                          "deleted afterwards)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    args = parser.parse_args(argv)

    by_name = {section.name: section for section in SECTIONS}
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in by_name]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {sorted(by_name)}")

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    arbiter, problem = find_arbiter(args.arbiter)
    log(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}")
    log(f"arbiter: {arbiter}" if arbiter else f"arbiter: not available: {problem}; printing PyTorch numbers only")

    workdir = args.workdir or tempfile.mkdtemp(prefix="arbiter-bench-")
    os.makedirs(workdir, exist_ok=True)
    rows: list[Row] = []
    try:
        for name in chosen:
            section = by_name[name]
            log(f"\n== {section.name}: {section.summary}")
            ctx = BenchContext(arbiter, problem, os.path.join(workdir, section.name), args.tokens, args.repeats,
                               args.threads, args.timeout)
            os.makedirs(ctx.workdir, exist_ok=True)
            rows.extend(section.run(ctx))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    log("\n" + format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([dataclasses.asdict(row) for row in rows], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
