#!/usr/bin/env python3
"""A LLaVA-1.5-7B-shaped model folder with random bf16 weights, for `make bench-7b` (issue #23, item 4).

    make_7b_shaped.py OUT [--seed N] [--config DIR] [--max-shard-size 5GB]
    make_7b_shaped.py --self-test      the same on tiny-llava's config in a temp folder (run by `make tools-check`)

OUT must not exist. The folder is written into a staging folder beside it (`.OUT.staging-PID`) and renamed to OUT
at the end; a failed run deletes the staging folder (which it created) and leaves nothing under OUT. It holds:

  config.json, generation_config.json, model-0000K-of-0000N.safetensors, model.safetensors.index.json
      transformers' LlavaForConditionalGeneration built from the real llava-1.5-7b config
      (Tests/ArbiterCLITests/Fixtures/plan/llava-1.5-7b: CLIP ViT-L/14-336 tower, Llama-2-7B text model, vocab
      32064, 7.06 B parameters), saved with save_pretrained in bf16 shards (~14.1 GB).
  tokenizer.json
      GoldenData/models/tiny-llava's Llama-style BPE (500 pieces, byte fallback, so any text tokenizes), laid out
      as llava-1.5-7b-hf's: pieces 500…31999 unused fillers (no merge makes them), then the added tokens <image>
      (32000, the config's image_token_index) and <pad> (32001); every id fits the vocab of 32064.
      Its 500 pieces make prompts longer than Llama-2's 32,000 would (`arbiter verify --plan` prints the lengths).
  preprocessor_config.json
      CLIPImageProcessor at 336 pixels (llava-1.5-7b-hf's), so `verify` generates and feeds 336×336 images.
  No prompt_layout.json: Arbiter uses its built-in llava-1.5 layout for model_type llava.

The model is never held in f32: it is built on the meta device, and each parameter is then made as a bf16 tensor
of its own and put in place (peak memory: the bf16 model, ~14.1 GB, plus one tensor's random bits). Weights are
drawn from bits, not from a normal distribution (7 billion normal draws take minutes on 2 cores): each value is
±(1 + m/128)·2^e with the sign, the mantissa m (7 bits) and e ∈ {−7, −6} (one bit) uniform from a PCG64 stream
seeded by (seed, parameter index) — a symmetric distribution of standard deviation ≈ 0.019, the scale of
transformers' initializer_range 0.02, with no zero and no value above 0.031. Norm weights are 1 and norm biases
0, as transformers initialises them. After saving, every tensor of every shard is read back and compared with
the model's (same name, dtype bf16, shape and bytes).

Prints progress to stderr and one JSON line on stdout: parameters, bytes, shards, seconds (build, save, check)
and peak_rss_bytes (this process's maximum resident set, from getrusage).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

DEFAULT_CONFIG = os.path.join(ROOT, "Tests", "ArbiterCLITests", "Fixtures", "plan", "llava-1.5-7b")
TOKENIZER_SOURCE = os.path.join(ROOT, "GoldenData", "models", "tiny-llava", "tokenizer.json")
IMAGE_TOKEN = "<image>"
SEED = 2307
# Bits of a bf16 weight: sign and mantissa random, exponent field 120 or 121 (2^-7 or 2^-6) by one random bit.
KEEP_BITS = 0x80FF   # sign, exponent's lowest bit, 7 mantissa bits
EXPONENT_BASE = 120 << 7
# CLIP normalisation (transformers.image_utils.OPENAI_CLIP_MEAN / _STD), as llava-1.5-7b-hf's processor.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# Free disk beyond the checkpoint itself (config, tokenizer, filesystem slack).
DISK_MARGIN = 1 << 30


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports kB


def random_bf16(shape: torch.Size, seed: int, index: int) -> torch.Tensor:
    """A bf16 tensor of `shape` from the PCG64 stream of (seed, index): ±(1 + m/128)·2^e, e ∈ {−7, −6}."""
    count = int(np.prod(shape)) if len(shape) else 1
    words = (count + 3) // 4
    bits = np.random.PCG64(np.random.SeedSequence([seed, index])).random_raw(words).view(np.uint16)[:count]
    bits &= KEEP_BITS
    bits |= EXPONENT_BASE
    return torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16).reshape(shape)


def load_config(config_dir: str) -> transformers.LlavaConfig:
    path = os.path.join(config_dir, "config.json")
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path}: no config.json (give --config a LLaVA model folder)")
    config = transformers.LlavaConfig.from_pretrained(config_dir)
    if config.model_type != "llava":
        raise SystemExit(f"error: {path}: model_type is '{config.model_type}', not 'llava'")
    config.dtype = torch.bfloat16
    config.text_config.dtype = torch.bfloat16
    config.vision_config.dtype = torch.bfloat16
    return config


def build_model(config: transformers.LlavaConfig, seed: int) -> torch.nn.Module:
    """The model with every parameter a bf16 tensor of its own, never an f32 copy."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta"):
            model = transformers.LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default)
    persistent = set(model.state_dict().keys())
    named = dict(model.named_parameters())
    for name, _ in model.named_buffers():
        if name in persistent:  # would be saved uninitialised
            raise SystemExit(f"error: the model has a persistent buffer '{name}'; this script does not fill buffers")
    with torch.no_grad():
        for index, (name, param) in enumerate(named.items()):
            owner_name, _, leaf = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            is_norm = "norm" in type(owner).__name__.lower()
            if is_norm and leaf == "weight":
                value = torch.ones(param.shape, dtype=torch.bfloat16)
            elif is_norm and leaf == "bias":
                value = torch.zeros(param.shape, dtype=torch.bfloat16)
            else:
                value = random_bf16(param.shape, seed, index)
            setattr(owner, leaf, torch.nn.Parameter(value, requires_grad=False))
    for name, param in model.named_parameters():
        if param.device.type != "cpu" or param.dtype != torch.bfloat16:
            raise RuntimeError(f"{name} is {param.dtype} on {param.device} after filling")
    model.eval()
    return model


def tokenizer_json(image_id: int, vocab_size: int) -> str:
    """tiny-llava's tokenizer laid out as llava-1.5-7b-hf's: the BPE vocabulary padded with unused pieces up to
    `image_id` (no merge produces them), then the added tokens <image> (`image_id`) and <pad>."""
    import tokenizers

    with open(TOKENIZER_SOURCE) as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    if sorted(vocab.values()) != list(range(len(vocab))) or len(vocab) > image_id:
        raise RuntimeError(f"{TOKENIZER_SOURCE}: expected ids 0…n−1 below {image_id} in the BPE vocabulary")
    for i in range(len(vocab), image_id):
        vocab[f"<unused{i}>"] = i
    images = [t for t in tok["added_tokens"] if t["content"] == IMAGE_TOKEN]
    if len(images) != 1:
        raise RuntimeError(f"{TOKENIZER_SOURCE}: expected one added token {IMAGE_TOKEN}, found {len(images)}")
    images[0]["id"] = image_id
    tok["added_tokens"].append(dict(images[0], content="<pad>", id=image_id + 1))
    text = json.dumps(tok, indent=2, ensure_ascii=False) + "\n"
    check = tokenizers.Tokenizer.from_str(text)
    ids = check.encode(f"USER: {IMAGE_TOKEN}{IMAGE_TOKEN}\nWhat color is the <unused600> apple? ASSISTANT:").ids
    size = check.get_vocab_size(with_added_tokens=True)
    if ids.count(image_id) != 2 or max(ids) > image_id or size > vocab_size:
        raise RuntimeError(f"the padded tokenizer does not give {IMAGE_TOKEN} id {image_id} within the vocab of "
                           f"{vocab_size} ({size} ids): {ids}")
    return text


def write_processor(folder: str, side: int) -> None:
    config = {
        "image_processor_type": "CLIPImageProcessor", "do_convert_rgb": True, "do_resize": True,
        "size": {"shortest_edge": side}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": side, "width": side}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
    }
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def read_tensors(path: str):
    """(name, dtype, shape, bytes) of every tensor of a safetensors file, read with plain reads one at a time (a
    memory map would count the shard's pages, up to 5 GB, in this process's resident set)."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
        header.pop("__metadata__", None)
        base = 8 + length
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            start, end = info["data_offsets"]
            f.seek(base + start)
            data = bytearray(end - start)
            if f.readinto(data) != len(data):
                raise RuntimeError(f"{path}: {name} is cut short")
            yield name, info["dtype"], info["shape"], data


def check_saved(folder: str, model: torch.nn.Module) -> tuple[int, int]:
    """Every saved tensor equals the model's (name, dtype BF16, shape, bytes); returns (shards, bytes)."""
    from transformers.core_model_loading import revert_weight_conversion

    # save_pretrained writes the checkpoint's own names (language_model.model.layers.…, as llava-1.5-7b-hf), by
    # transformers' reverse of its loading conversion: the same mapping gives the names to expect.
    expected = revert_weight_conversion(model, model.state_dict())
    index_path = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    seen: set[str] = set()
    for file in files:
        for key, dtype, shape, data in read_tensors(os.path.join(folder, file)):
            if key not in expected or key in seen:
                raise RuntimeError(f"{file}: unexpected or repeated tensor {key}")
            want = expected[key]
            if dtype != "BF16" or list(want.shape) != shape:
                raise RuntimeError(f"{file}: {key} is {dtype} {shape}, the model's is {want.dtype} {list(want.shape)}")
            if not torch.equal(torch.frombuffer(data, dtype=torch.bfloat16).reshape(want.shape), want):
                raise RuntimeError(f"{file}: {key} differs from the model's")
            seen.add(key)
    missing = set(expected) - seen
    if missing:
        raise RuntimeError(f"{folder}: tensors not saved: {sorted(missing)[:5]}")
    total = sum(os.path.getsize(os.path.join(folder, n)) for n in files)
    return len(files), total


def self_test() -> int:
    """`make tools-check`: the same steps on tiny-llava's config (seconds) — the folder is written, every tensor
    read back equal, a flipped byte in a shard is caught, and an existing OUT is refused."""
    import subprocess
    import tempfile

    tiny = os.path.join(ROOT, "GoldenData", "models", "tiny-llava")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "model")
        cmd = [sys.executable, os.path.abspath(__file__), out, "--config", tiny]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        names = sorted(os.listdir(out))
        want = ["config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
                "tokenizer.json"]
        if names != want or any(n.startswith(".") for n in os.listdir(tmp)):
            raise RuntimeError(f"self-test: the folder holds {names} (staging left: {os.listdir(tmp)})")
        again = subprocess.run(cmd, capture_output=True, text=True)
        if again.returncode == 0 or "exists" not in again.stderr:
            raise RuntimeError(f"self-test: an existing folder was not refused: {again.stderr[-500:]}")
        config = load_config(tiny)
        model = build_model(config, SEED)
        check_saved(out, model)
        shard = os.path.join(out, "model.safetensors")
        with open(shard, "r+b") as f:
            f.seek(os.path.getsize(shard) - 3)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 1]))
        try:
            check_saved(out, model)
        except RuntimeError as e:
            log(f"self-test: a flipped byte is caught ({e})")
        else:
            raise RuntimeError("self-test: a flipped byte in the shard was not caught")
    log("self-test: passed")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the model folder to create (must not exist)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="folder whose config.json is the model's shape")
    parser.add_argument("--max-shard-size", default="5GB", help="save_pretrained's shard size")
    args = parser.parse_args()

    out = os.path.abspath(args.out)
    parent = os.path.dirname(out)
    if os.path.lexists(out):
        raise SystemExit(f"error: {out} exists; give a new folder (this script never replaces anything)")
    if not os.path.isdir(parent):
        raise SystemExit(f"error: {parent}: no such folder")
    torch.set_num_threads(max(os.cpu_count() or 1, 1))
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    started = time.monotonic()
    config = load_config(args.config)
    tokenizer = tokenizer_json(config.image_token_id, config.text_config.vocab_size)
    model = build_model(config, args.seed)
    parameters = sum(p.numel() for p in model.parameters())
    need = 2 * parameters + DISK_MARGIN
    free = shutil.disk_usage(parent).free
    if free < need:
        raise SystemExit(f"error: {parent}: {free / 1e9:.1f} GB free, the checkpoint needs {need / 1e9:.1f} GB")
    built = time.monotonic()
    log(f"built {parameters / 1e9:.2f} B parameters in bf16 in {built - started:.1f} s "
        f"(peak RSS {peak_rss_bytes() / 2**30:.1f} GiB)")

    staging = os.path.join(parent, f".{os.path.basename(out)}.staging-{os.getpid()}")
    os.mkdir(staging)
    try:
        model.save_pretrained(staging, max_shard_size=args.max_shard_size)
        with open(os.path.join(staging, "tokenizer.json"), "w") as f:
            f.write(tokenizer)
        write_processor(staging, config.vision_config.image_size)
        saved = time.monotonic()
        log(f"saved in {saved - built:.1f} s (peak RSS {peak_rss_bytes() / 2**30:.1f} GiB); reading every tensor back")
        shards, size = check_saved(staging, model)
        checked = time.monotonic()
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"{out}: {shards} shards, {size / 1e9:.2f} GB, checked in {checked - saved:.1f} s "
        f"(peak RSS {peak_rss_bytes() / 2**30:.1f} GiB)")
    print(json.dumps({
        "parameters": parameters, "bytes": size, "shards": shards, "seed": args.seed,
        "seconds": {"build": round(built - started, 2), "save": round(saved - built, 2),
                    "check": round(checked - saved, 2), "total": round(checked - started, 2)},
        "peak_rss_bytes": peak_rss_bytes(),
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
