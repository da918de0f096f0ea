#!/usr/bin/env python3
"""The fixture of issue #21 ("bring your own model"): a model folder of a user's own kind, built from a seed.

    make_own_model.py write [--force] [--out DIR]   (re)build the fixture (refuses to overwrite hand-edited files)
    make_own_model.py check [--out DIR]             rebuild into a temp folder and require identical bytes (the
                                                    reference activations: identical, or within the golden tolerance)

DIR (default Tests/ArbiterCLITests/Fixtures/own-model) receives:
  model/         a tiny random LLaVA (transformers LlavaForConditionalGeneration: CLIP vision tower, Llama
                 decoder, seeded with golden_models.init_parameters) with a WordLevel tokenizer of its own: 42
                 lower-case words and <unk>, split at whitespace, where <image> is a vocabulary word — not an
                 added token, so "<image><image>" is one unknown word and the layout must separate the repeats
  layout.json    its prompt layout: no chat wrapper, the image then "text …" and the item's sentences, "answer"
  reference.png  a picture (a red square on white, not square, so the processor resizes and crops)
  reference.h5   transformers' run of the model on that picture and a prompt built by the layout (golden layout
                 of GoldenData/README.md: input_ids, pixel_values, image_features, decoder hooks, logits)
  manifest.json  SHA-256 of every file, the seed and the library versions

docs/your-model.md walks through this model; ArbiterCLITests (YourModelTests) run it end to end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import golden  # noqa: E402
import golden_capture as capture  # noqa: E402
import golden_compare as compare  # noqa: E402
import golden_llava as llava  # noqa: E402
import golden_models as models  # noqa: E402
from golden import log, sha256  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "Tests", "ArbiterCLITests", "Fixtures", "own-model")
SEED = 2121
MODEL_ID = "model"  # the folder name, as `arbiter compare --models DIR` looks the model up
IMAGE_TOKEN = "<image>"
# The vocabulary: <unk>, <image>, then the words of the fixture's prompts and answers (ids in this order).
WORDS = (
    "text answer the shape is a it of follow trust use image picture words caption what color say one word only "
    "red green blue yellow purple orange white black square circle triangle cross diamond and not look at read "
    "this there"
).split()
VOCABULARY = ["<unk>", IMAGE_TOKEN] + WORDS
VISION = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32)
LAYOUT = {
    "name": "own-words",
    "description": "A non-chat prompt for a whitespace WordLevel tokenizer: the image tokens separated by "
                   "spaces, then 'text' and the context, the instruction, the question, the output-format "
                   "sentence, and 'answer'.",
    "add_special_tokens": False,
    "image_token": IMAGE_TOKEN,
    "image_separator": " ",
    "answer_prefix": " ",
    "pieces": [
        {"slot": "image"},
        {"text": " text", "with": "context"},
        {"slot": "context", "prefix": " "},
        {"slot": "instruction", "prefix": " "},
        {"slot": "question", "prefix": " "},
        {"slot": "constraint", "prefix": " "},
        {"text": " answer"},
    ],
}
# The item of the reference run (image: reference.png).
REFERENCE_FIELDS = {
    "context": "the shape is blue",
    "instruction": "follow the image",
    "question": "what color is the shape",
    "constraint": "say one word",
}
REFERENCE_IMAGE_SIZE = (40, 36)  # width, height


def build_tokenizer(vocabulary: list[str] = VOCABULARY) -> tokenizers.Tokenizer:
    """A lower-casing, whitespace-split WordLevel tokenizer over `vocabulary` (ids in its order; "<unk>" the
    unknown word). Also the planted-mechanism controls' tokenizer (Tools/make_controls.py)."""
    from tokenizers import Tokenizer, models as tmodels, normalizers, pre_tokenizers

    if len(set(vocabulary)) != len(vocabulary):
        raise RuntimeError("a word appears twice in the vocabulary")
    tok = Tokenizer(tmodels.WordLevel(vocab={w: i for i, w in enumerate(vocabulary)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # <image> stays a plain vocabulary word: no added tokens at all.
    return tok


def build_model() -> torch.nn.Module:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    text = LlamaConfig(
        vocab_size=len(VOCABULARY), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_act="silu", max_position_embeddings=128,
        rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, bos_token_id=None, eos_token_id=None,
        pad_token_id=None,
    )
    num_patches = (VISION["image_size"] // VISION["patch_size"]) ** 2
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**VISION), text_config=text, image_token_id=VOCABULARY.index(IMAGE_TOKEN),
        image_seq_length=num_patches, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default", multimodal_projector_bias=True, tie_word_embeddings=False,
    )
    return LlavaForConditionalGeneration(config)


def assemble(layout: dict, fields: dict[str, str], image_tokens: int) -> str:
    """The prompt text by the layout's rules (as Arbiter's PromptBuilder assembles it)."""
    def present(slot: str) -> bool:
        return image_tokens > 0 if slot == "image" else bool(fields.get(slot))
    parts = []
    for piece in layout["pieces"]:
        if "slot" in piece:
            slot = piece["slot"]
            if not present(slot):
                continue
            value = (layout.get("image_separator", "").join([layout["image_token"]] * image_tokens)
                     if slot == "image" else fields[slot])
            parts.append(piece.get("prefix", "") + value)
        elif "with" not in piece or present(piece["with"]):
            parts.append(piece["text"])
    return "".join(parts)


def draw_reference_image() -> Image.Image:
    image = Image.new("RGB", REFERENCE_IMAGE_SIZE, (255, 255, 255))
    ImageDraw.Draw(image).rectangle((10, 8, 29, 27), fill=(220, 30, 30))
    return image


def reference_run(model: torch.nn.Module, model_dir: str, image_path: str, prompt: str) -> dict[str, np.ndarray]:
    """One eager float32 forward with the decoder hooks recorded, as GoldenData's LLaVA cases."""
    processor = llava.load_image_processor(model_dir)
    pixel_values = processor(images=Image.open(image_path), return_tensors="pt")["pixel_values"].to(torch.float32)
    tok = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids = np.asarray(tok.encode(prompt).ids, dtype=np.int64)
    image_id = VOCABULARY.index(IMAGE_TOKEN)
    num_patches = (VISION["image_size"] // VISION["patch_size"]) ** 2
    if int((ids == image_id).sum()) != num_patches or VOCABULARY.index("<unk>") in ids:
        raise RuntimeError(f"reference prompt tokenizes badly: {ids.tolist()}")
    recorder = capture.Recorder()
    try:
        recorder.on_output(model.model.multi_modal_projector, "image_features")
        recorder.attach_decoder(model.model.language_model, embed_from_inputs=True)
        with torch.no_grad():
            output = model(input_ids=torch.from_numpy(ids)[None, :], pixel_values=pixel_values,
                           output_attentions=True, use_cache=False)
    finally:
        recorder.close()
    datasets = {"input_ids": ids, "pixel_values": pixel_values.contiguous().numpy(),
                "image_features": recorder.values["image_features"][0].numpy()}
    hooks = capture.decoder_activations(recorder, len(model.model.language_model.layers), output.logits,
                                        output.attentions)
    # The residual stream after each layer and the logits pin the run; the rest would only add bytes.
    datasets.update({name: array for name, array in hooks.items()
                     if name.endswith("hook_resid_post") or name in ("hook_embed", "logits")})
    return datasets


def generate(root: str) -> list[str]:
    """Writes every fixture file under `root`; returns their relative paths."""
    golden.configure_torch()
    torch.manual_seed(SEED)
    model = build_model()
    models.init_parameters(model, SEED)
    model.eval()
    model_dir = os.path.join(root, MODEL_ID)
    os.makedirs(model_dir, exist_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    build_tokenizer().save(os.path.join(model_dir, "tokenizer.json"), pretty=True)
    with open(os.path.join(model_dir, "preprocessor_config.json"), "w") as f:
        json.dump(llava.processor_config(), f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(root, "layout.json"), "w") as f:
        json.dump(LAYOUT, f, indent=2)
        f.write("\n")
    image_path = os.path.join(root, "reference.png")
    draw_reference_image().save(image_path, format="PNG", optimize=False, compress_level=9)

    loaded = type(model).from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)
    loaded.eval()
    for name, param in model.state_dict().items():
        if not torch.equal(param, loaded.state_dict()[name]):
            raise RuntimeError(f"{name} changed when saved and loaded back")
    num_patches = (VISION["image_size"] // VISION["patch_size"]) ** 2
    prompt = assemble(LAYOUT, REFERENCE_FIELDS, num_patches)
    datasets = reference_run(loaded, model_dir, image_path, prompt)
    attributes = capture.file_attributes(MODEL_ID, loaded.config.model_type, SEED, "reference", prompt)
    capture.write_h5(os.path.join(root, "reference.h5"), attributes, datasets)
    files = []
    for folder, _, names in os.walk(root):
        files += [os.path.relpath(os.path.join(folder, n), root) for n in names]
    return sorted(files)


def manifest_for(root: str, files: list[str]) -> dict:
    return {
        "generator": "Tools/make_own_model.py",
        "seed": SEED,
        "init_recipe": models.INIT_RECIPE,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "files": {path: {"sha256": sha256(os.path.join(root, path)), "bytes": os.path.getsize(os.path.join(root, path))}
                  for path in files},
    }


def command_write(out: str, force: bool) -> int:
    old = golden.load_manifest(out)
    if old is not None and not force:
        recorded = old["files"]
        edited = [p for p, entry in recorded.items()
                  if os.path.exists(os.path.join(out, p)) and sha256(os.path.join(out, p)) != entry["sha256"]]
        if edited:
            log("refusing to write: these files differ from manifest.json (edited by hand?); rerun with --force:")
            for path in edited:
                log(f"  {path}")
            return 1
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".own-model-staging-")
    try:
        files = generate(staging)
        manifest = manifest_for(staging, files)
        golden.write_json_atomic(os.path.join(staging, "manifest.json"), manifest)
        os.chmod(staging, 0o755)
        for path in files + ["manifest.json"]:
            os.chmod(os.path.join(staging, path), 0o644)
        previous = out + ".old"
        if os.path.exists(out):
            os.replace(out, previous)
        os.replace(staging, out)
        shutil.rmtree(previous, ignore_errors=True)
        total = sum(entry["bytes"] for entry in manifest["files"].values())
        log(f"wrote {len(files)} files ({total} bytes) and manifest.json to {out}")
        return 0
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def command_check(out: str) -> int:
    def same(fresh: str, committed: str) -> tuple[list[str], str]:
        if sha256(fresh) == sha256(committed):
            return [], "identical bytes"
        # The model's inputs (weights from the seeded generator, tokenizer, layout, picture) are the same bytes on
        # every machine; transformers' activations in reference.h5 may differ in the last bits on another CPU,
        # so they are held, like GoldenData's, to the golden comparison's tolerance.
        if fresh.endswith(".h5"):
            return compare.compare_files(fresh, committed)
        return ["regenerated bytes differ"], "different bytes"
    return golden.check_generated(out, generate, same, "own-model check", "the fixture",
                                  "Tools/make_own_model.py write",
                                  "rebuild with `Tools/make_own_model.py write --force` and commit it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="(re)build the fixture")
    write.add_argument("--force", action="store_true", help="overwrite files changed since the manifest")
    write.add_argument("--out", default=DEFAULT_OUT)
    check = sub.add_parser("check", help="rebuild into a temp folder and compare bytes")
    check.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    return command_write(out, args.force) if args.command == "write" else command_check(out)


if __name__ == "__main__":
    sys.exit(main())
