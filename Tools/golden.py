#!/usr/bin/env python3
"""Writes and checks GoldenData/: tiny seeded checkpoints and reference activations from transformers.

    golden.py write [--force] [--out DIR]   (re)generate; refuses to overwrite hand-changed files
    golden.py check [--out DIR]             regenerate into a temp folder and compare with DIR
    golden.py hub-layout SRC DST            copy a transformers-5-saved LLaVA folder with llava-hf hub names

The models and their input cases are defined in golden_models.py (MODELS); the hook capture points and the
HDF5 writer in golden_capture.py; the file layout in GoldenData/README.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

import golden_capture as capture  # noqa: E402
import golden_compare as compare  # noqa: E402
import golden_models as models  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "GoldenData")
MANIFEST = "manifest.json"


def log(message: str) -> None:
    print(message, flush=True)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def configure_torch() -> None:
    # One thread and deterministic kernels: the same bytes on every run of this machine kind.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


# --- generation -----------------------------------------------------------------------------------------

def generate_model(spec: models.ModelSpec, root: str) -> list[str]:
    """Writes one checkpoint and its activation files under `root`; returns their relative paths."""
    started = time.time()
    torch.manual_seed(spec.seed)
    model = spec.build()
    models.init_parameters(model, spec.seed)
    model.eval()
    model_dir = os.path.join(root, "models", spec.model_id)
    os.makedirs(model_dir, exist_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    outside = spec.extra_files(model_dir, root) if spec.extra_files is not None else []
    written = [os.path.relpath(os.path.join(model_dir, name), root) for name in sorted(os.listdir(model_dir))]
    written.extend(outside)

    # Activations come from the saved checkpoint, loaded back as the Swift side will load it.
    loaded, info = type(model).from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32,
                                               output_loading_info=True)
    problems = {key: sorted(value) for key, value in info.items() if value}
    if problems:
        raise RuntimeError(f"{spec.model_id}: reloading the saved checkpoint reported {problems}")
    loaded.eval()
    reloaded = loaded.state_dict()
    for name, param in model.state_dict().items():
        if not torch.equal(param, reloaded[name]):
            raise RuntimeError(f"{spec.model_id}: {name} changed when saved and loaded back")
    goldens: dict[str, models.Datasets] = {}
    for case in spec.cases:
        datasets = spec.run_case(loaded, case, model_dir, root)
        goldens[case.name] = datasets
        path = os.path.join(root, "activations", spec.model_id, f"{case.name}.h5")
        capture.ensure_parent(path)
        attributes = capture.file_attributes(spec.model_id, loaded.config.model_type, spec.seed, case.name,
                                             case.prompt)
        capture.write_h5(path, attributes, datasets)
        written.append(os.path.relpath(path, root))
    if spec.derived is not None:
        written.extend(spec.derived(model_dir, root, goldens))
    log(f"  {spec.model_id}: {len(written)} files in {time.time() - started:.1f} s")
    return written


def generate_all(root: str) -> list[str]:
    configure_torch()
    written: list[str] = []
    for spec in models.MODELS:
        log(f"generating {spec.model_id} (seed {spec.seed}, {len(spec.cases)} cases)")
        written.extend(generate_model(spec, root))
    return sorted(written)


def manifest_for(root: str, files: list[str]) -> dict:
    return {
        "format_version": 1,
        "generator": "Tools/golden.py",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
        "init_recipe": models.INIT_RECIPE,
        "models": {spec.model_id: {"seed": spec.seed, "cases": [c.name for c in spec.cases]}
                   for spec in models.MODELS},
        "files": {path: {"sha256": sha256(os.path.join(root, path)),
                         "bytes": os.path.getsize(os.path.join(root, path))} for path in files},
    }


def write_json_atomic(path: str, value: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_manifest(out: str) -> dict | None:
    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# --- write ----------------------------------------------------------------------------------------------

def command_write(out: str, force: bool) -> int:
    os.makedirs(out, exist_ok=True)
    old = load_manifest(out)
    old_files = old["files"] if old else {}
    staging = tempfile.mkdtemp(dir=out, prefix=".staging-")
    try:
        files = generate_all(staging)
        manifest = manifest_for(staging, files)
        conflicts, plan = [], []
        for path in files:
            target = os.path.join(out, path)
            new_hash = manifest["files"][path]["sha256"]
            if not os.path.exists(target):
                plan.append((path, "new"))
                continue
            current = sha256(target)
            if current == new_hash:
                plan.append((path, "unchanged"))
            elif old_files.get(path, {}).get("sha256") == current:
                plan.append((path, "updated"))
            else:
                conflicts.append(path)
                plan.append((path, "overwritten (was changed since the manifest)"))
        if conflicts and not force:
            log("refusing to write: these golden files differ from the SHA-256 in manifest.json "
                "(changed by hand or by another tool); rerun with --force (make goldens FORCE=1) to overwrite:")
            for path in conflicts:
                log(f"  {path}")
            return 1
        for path, status in plan:
            if status != "unchanged":
                target = os.path.join(out, path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(os.path.join(staging, path), target)  # atomic per file (same file system)
        write_json_atomic(os.path.join(out, MANIFEST), manifest)
        counts: dict[str, int] = {}
        for _, status in plan:
            counts[status.split(" ")[0]] = counts.get(status.split(" ")[0], 0) + 1
        log("wrote " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" file(s) and {MANIFEST}")
        for path, status in plan:
            if status.startswith("overwritten"):
                log(f"  overwrote {path}")
        stale = sorted(set(old_files) - set(files))
        for path in stale:
            log(f"  note: {path} is no longer generated (dropped from the manifest; delete it if unused)")
        return 0
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- check ----------------------------------------------------------------------------------------------

def command_check(out: str) -> int:
    return check_generated(out, generate_all, compare.compare_files, "golden check", "golden data", "make goldens",
                           "regenerate with `make goldens FORCE=1` and commit GoldenData/")


def check_generated(out: str, generate: Callable[[str], list[str]],
                    compare_file: Callable[[str, str], tuple[list[str], str]], label: str, what: str,
                    write_command: str, fix: str) -> int:
    """Regenerates into a temp folder with `generate` and compares every file with `out` (and its manifest):
    `compare_file(fresh, committed)` returns the problems and a summary. Returns the exit code."""
    started = time.time()
    manifest = load_manifest(out)
    if manifest is None:
        log(f"error: {os.path.join(out, MANIFEST)} is missing; run `{write_command}` first")
        return 1
    failures: list[str] = []
    current_versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    for key, version in current_versions.items():
        if manifest["versions"].get(key) != version:
            log(f"warning: {what} was written with {key} {manifest['versions'].get(key)}, "
                f"this environment has {version}")
    with tempfile.TemporaryDirectory(prefix=f"{label.replace(' ', '-')}-") as fresh:
        files = generate(fresh)
        committed = sorted(manifest["files"])
        for path in sorted(set(committed) - set(files)):
            failures.append(f"{path}: in manifest.json but no longer generated")
        for path in files:
            target = os.path.join(out, path)
            if not os.path.exists(target):
                failures.append(f"{path}: generated but missing from {out}")
                continue
            entry = manifest["files"].get(path)
            if entry is None:
                failures.append(f"{path}: not listed in manifest.json")
            elif sha256(target) != entry["sha256"]:
                failures.append(f"{path}: SHA-256 differs from manifest.json (edited by hand?)")
            problems, summary = compare_file(os.path.join(fresh, path), target)
            status = "ok  " if not problems else "FAIL"
            log(f"{status} {path}  {summary}")
            failures.extend(f"{path}: {p}" for p in problems)
    elapsed = time.time() - started
    return report_check(f"{label} ({elapsed:.1f} s)", failures, fix, f"{len(files)} files match")


def report_check(label: str, failures: list[str], fix: str, passed: str) -> int:
    """Prints a check's verdict (every failure, then how to accept an intended change); returns the exit code."""
    if failures:
        log(f"\n{label} FAILED ({len(failures)} problem(s)):")
        for failure in failures:
            log(f"  {failure}")
        log(f"If the change is intended, {fix}.")
        return 1
    log(f"{label} passed: {passed}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="(re)generate the golden files")
    write.add_argument("--force", action="store_true", help="overwrite files changed since the manifest")
    write.add_argument("--out", default=DEFAULT_OUT, help="golden data folder (default: GoldenData/)")
    check = sub.add_parser("check", help="regenerate into a temp folder and compare")
    check.add_argument("--out", default=DEFAULT_OUT, help="golden data folder (default: GoldenData/)")
    hub = sub.add_parser("hub-layout", help="copy a transformers-5-saved LLaVA checkpoint in the llava-hf layout")
    hub.add_argument("source", help="folder written by LlavaForConditionalGeneration.save_pretrained")
    hub.add_argument("destination", help="new folder (llava-hf weight names, transformers-4-style config)")
    args = parser.parse_args(argv)
    if args.command == "hub-layout":
        names = models.llava.write_hub_layout(args.source, args.destination)
        log(f"wrote {', '.join(names)} to {args.destination}")
        return 0
    out = os.path.abspath(args.out)
    if args.command == "write":
        return command_write(out, args.force)
    return command_check(out)


if __name__ == "__main__":
    sys.exit(main())
