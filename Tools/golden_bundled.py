#!/usr/bin/env python3
"""Reference outputs of the bundled trained models on a fixed set of held-out items (GoldenData/heldout/).

    golden_bundled.py write [--force]   compute with transformers, write GoldenData/activations/<model>/heldout.h5
    golden_bundled.py check             recompute into a temp folder and compare with the committed files

The held-out items are committed in GoldenData/heldout/ (dataset.json + images/), written once by

    arbiter data generate --count 96 --seed 7001 --out GoldenData/heldout --image-size 32

(seed 7001 is used by no training run, so every item is unseen by the bundled models). For each bundled model
folder under GoldenData/models/ with a `training_record.json`, every item's prompt is built from the model's
prompt_layout.json exactly as Swift's PromptBuilder assembles it (Tools/train_tiny.py `prompt_pieces`),
tokenised with the model's tokenizer.json, the image run through the model's CLIPImageProcessor, and the
model run by transformers (`LlavaForConditionalGeneration`, eager attention, float32, one thread).

File layout (GoldenData/README.md, "Held-out item files"): the root attributes of every golden file
(case "heldout") plus `dataset`; datasets
    input_ids      int64   [ΣT]          every item's prompt ids, concatenated in dataset order
    item_offsets   int64   [N + 1]       item i is input_ids[item_offsets[i] ..< item_offsets[i + 1]]
    logits_last    float32 [N, vocab]    logits at each item's last prompt position
    image_features float32 [N·U, d]   projector output of each item's image (U image tokens; items without an
                                         image contribute no rows; `image_offsets` [N + 1] in rows)
The Swift test (Tests/ArbiterAnalysesTests/BundledGoldenTests.swift) requires identical ids, logits within
the golden tolerance, and the same decision (sign of the following score) on every item.

Writes are atomic per file; `write` refuses to replace a file whose SHA-256 is not the one recorded in
GoldenData/bundled-manifest.json unless --force is given.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402

import golden_capture as capture  # noqa: E402
import golden_compare as compare  # noqa: E402
from golden import log, sha256  # noqa: E402
from train_tiny import Encoder, item_fields, prompt_pieces  # noqa: E402

ROOT = os.path.join(os.path.dirname(HERE), "GoldenData")
DATASET = os.path.join(ROOT, "heldout")
MANIFEST = os.path.join(ROOT, "bundled-manifest.json")
CASE = "heldout"


def bundled_models() -> list[str]:
    """Model folders under GoldenData/models/ trained by Tools/train_tiny.py (they carry training_record.json)."""
    base = os.path.join(ROOT, "models")
    return sorted(name for name in os.listdir(base)
                  if os.path.exists(os.path.join(base, name, "training_record.json")))


def run_model(model_id: str) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    from tokenizers import Tokenizer
    from transformers import AutoImageProcessor, LlavaForConditionalGeneration

    folder = os.path.join(ROOT, "models", model_id)
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    enc = Encoder(Tokenizer.from_file(os.path.join(folder, "tokenizer.json")))
    with open(os.path.join(folder, "prompt_layout.json")) as f:
        layout = json.load(f)
    with open(os.path.join(DATASET, "dataset.json")) as f:
        items = json.load(f)["items"]
    ids_all: list[int] = []
    offsets, image_offsets = [0], [0]
    logits_rows, feature_rows = [], []
    with torch.no_grad():
        for item in items:
            pixels = None
            if item.get("image"):
                with Image.open(os.path.join(DATASET, item["image"])) as im:
                    pixels = processor(images=im, return_tensors="pt")["pixel_values"]
            text = "".join(prompt_pieces(layout, item_fields(item), pixels is not None))
            ids = enc.encode(text)
            out = model(input_ids=torch.tensor([ids]), pixel_values=pixels, use_cache=False)
            logits_rows.append(out.logits[0, -1].float().numpy())
            if pixels is not None:
                features = model.get_image_features(pixel_values=pixels)
                features = features.pooler_output if hasattr(features, "pooler_output") else features
                features = torch.cat(list(features), dim=0) if isinstance(features, (list, tuple)) else features
                feature_rows.append(features.reshape(-1, features.shape[-1]).float().numpy())
            ids_all.extend(ids)
            offsets.append(len(ids_all))
            image_offsets.append(image_offsets[-1] + (feature_rows[-1].shape[0] if pixels is not None else 0))
    attributes = capture.file_attributes(model_id, model.config.model_type, 0, CASE)
    attributes["dataset"] = "GoldenData/heldout"
    datasets = {
        "input_ids": np.asarray(ids_all, dtype=np.int64),
        "item_offsets": np.asarray(offsets, dtype=np.int64),
        "image_offsets": np.asarray(image_offsets, dtype=np.int64),
        "logits_last": np.stack(logits_rows).astype(np.float32),
        "image_features": np.concatenate(feature_rows).astype(np.float32),
    }
    return attributes, datasets


def generate(root: str) -> list[str]:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    written = []
    for model_id in bundled_models():
        started = time.time()
        attributes, datasets = run_model(model_id)
        rel = os.path.join("activations", model_id, f"{CASE}.h5")
        path = os.path.join(root, rel)
        capture.ensure_parent(path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".h5")
        os.close(fd)
        capture.write_h5(tmp, attributes, datasets)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        log(f"  {model_id}: {len(datasets['item_offsets']) - 1} items in {time.time() - started:.1f} s -> {rel}")
        written.append(rel)
    return written


def dataset_files() -> list[str]:
    files = ["heldout/dataset.json"]
    files += sorted(os.path.join("heldout", "images", n) for n in os.listdir(os.path.join(DATASET, "images")))
    return files


def load_manifest() -> dict:
    if not os.path.exists(MANIFEST):
        return {"files": {}}
    with open(MANIFEST) as f:
        return json.load(f)


def command_write(force: bool) -> int:
    old = load_manifest()["files"]
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".staging-") as staging:
        files = generate(staging)
        conflicts = [rel for rel in files if os.path.exists(os.path.join(ROOT, rel))
                     and rel in old and sha256(os.path.join(ROOT, rel)) != old[rel]["sha256"]]
        if conflicts and not force:
            log("refusing to write: these files differ from bundled-manifest.json (changed by hand?); use --force:")
            for rel in conflicts:
                log(f"  {rel}")
            return 1
        for rel in files:
            target = os.path.join(ROOT, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(staging, rel), target)
    everything = files + dataset_files()
    manifest = {"format_version": 1, "generator": "Tools/golden_bundled.py",
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                "files": {rel: {"sha256": sha256(os.path.join(ROOT, rel))} for rel in sorted(everything)}}
    fd, tmp = tempfile.mkstemp(dir=ROOT, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, MANIFEST)
    log(f"wrote {len(files)} file(s) and {os.path.relpath(MANIFEST, os.path.dirname(ROOT))}")
    return 0


def command_check() -> int:
    manifest = load_manifest()["files"]
    failures = []
    for rel in dataset_files():
        if rel not in manifest or sha256(os.path.join(ROOT, rel)) != manifest[rel]["sha256"]:
            failures.append(f"{rel}: SHA-256 differs from bundled-manifest.json")
    with tempfile.TemporaryDirectory(prefix="golden-bundled-") as fresh:
        for rel in generate(fresh):
            committed = os.path.join(ROOT, rel)
            if not os.path.exists(committed):
                failures.append(f"{rel}: generated but not committed")
                continue
            if rel not in manifest or sha256(committed) != manifest[rel]["sha256"]:
                failures.append(f"{rel}: SHA-256 differs from bundled-manifest.json")
            problems, summary = compare.compare_files(os.path.join(fresh, rel), committed)
            log(f"{'ok  ' if not problems else 'FAIL'} {rel}  {summary}")
            failures.extend(f"{rel}: {p}" for p in problems)
    if failures:
        log(f"bundled golden check FAILED ({len(failures)} problem(s)):")
        for failure in failures:
            log(f"  {failure}")
        return 1
    log("bundled golden check passed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write")
    write.add_argument("--force", action="store_true")
    sub.add_parser("check")
    args = parser.parse_args()
    return command_write(args.force) if args.command == "write" else command_check()


if __name__ == "__main__":
    sys.exit(main())
