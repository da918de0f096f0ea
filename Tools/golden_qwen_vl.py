"""tiny-qwen2_5-vl and tiny-qwen2-vl: Qwen2.5-VL / Qwen2-VL-shaped checkpoints (windowed or plain vision tower
with a 2x2 patch merger, Qwen2 text model with multimodal rotary), a byte-level BPE tokenizer.json with the Qwen
chat and vision special tokens, a Qwen2-VL image-processor config, seeded non-square test images, and a copy of
the Qwen2.5-VL checkpoint in the transformers-5 in-memory weight layout with a flat (transformers 4 style) config.

Weight-name layouts of a Qwen2(.5)-VL checkpoint:
  transformers 5.24 save_pretrained = Qwen hub      transformers 5 in memory (also found in the wild)
  visual.<rest>                                     model.visual.<rest>
  model.<embed_tokens|layers|norm>.<rest>           model.language_model.<rest>
  lm_head.weight                                    lm_head.weight
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

import golden_capture as capture

EXPECTED_PROCESSOR = "Qwen2VLImageProcessorPil"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

PATCH = 4
MERGE = 2
TEMPORAL = 2
FACTOR = PATCH * MERGE

# --- tokenizer ------------------------------------------------------------------------------------------

LEARNED_VOCAB = 300  # 256 byte tokens + learned merges; special tokens follow
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]
SPECIAL_IDS = {token: LEARNED_VOCAB + index for index, token in enumerate(SPECIAL_TOKENS)}
IMAGE_TOKEN_ID = SPECIAL_IDS["<|image_pad|>"]
VIDEO_TOKEN_ID = SPECIAL_IDS["<|video_pad|>"]
VISION_START_ID = SPECIAL_IDS["<|vision_start|>"]
VISION_END_ID = SPECIAL_IDS["<|vision_end|>"]
VOCAB_SIZE = 320  # model vocabulary (ids 307..319 unused, as real checkpoints pad theirs)

CORPUS = """\
You are a helpful assistant. Describe the image in one sentence.
What is shown in this picture? A red square and a blue circle on a green field.
How many objects are in the image? There are three objects: a square, a circle and a line.
What color is the sky? The sky is blue with a few white clouds.
Read the text on the sign. The sign says stop, in white letters on a red background.
Answer with one word: what animal is this? Dog.
Instructions tell the assistant what to do with the image, and the answer follows the instruction.
"""

PROMPT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
          "<|vision_start|><|image_pad|><|vision_end|>What is shown in this picture?<|im_end|>\n"
          "<|im_start|>assistant\n")


# The answer words of Arbiter's generated conflict sets (ArbiterData/Vocabulary.swift), each after a space as
# "The answer is" leaves it: with them in the corpus, `arbiter verify` on a tiny checkpoint can tell its candidates
# apart by their first token (with CORPUS alone most of them start with the same " " byte). 560 learned tokens is
# about all the merges this corpus has.
ANSWER_WORDS = ("red crimson scarlet green emerald blue navy azure yellow golden orange tangerine purple violet pink "
                "rose brown chocolate black ebony cyan turquoise teal circle disc round square box triangle triangular "
                "diamond rhombus lozenge cross plus zero one two three four five single 1 2 3 4 left leftmost right "
                "rightmost top upper above bottom lower below").split()
ANSWER_CORPUS = "\n".join(f"The answer is {word}. The {word} one." for word in ANSWER_WORDS for _ in range(3))
ANSWER_VOCAB = 560


def build_tokenizer(learned_vocab: int = LEARNED_VOCAB, special_tokens: list[str] = SPECIAL_TOKENS,
                    extra_corpus: str = "") -> Any:
    """A byte-level BPE tokenizer (GPT-2 / Qwen2 style) trained on CORPUS (and `extra_corpus`), then
    `special_tokens` from id `learned_vocab` on (Qwen's chat and vision tokens by default)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=learned_vocab, special_tokens=[], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    lines = CORPUS.splitlines() + (extra_corpus.splitlines() if extra_corpus else [])
    tok.train_from_iterator(lines, trainer=trainer)
    if tok.get_vocab_size() != learned_vocab:
        raise RuntimeError(f"tokenizer training gave {tok.get_vocab_size()} tokens, expected {learned_vocab}")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    for index, token in enumerate(special_tokens):
        if tok.token_to_id(token) != learned_vocab + index:
            raise RuntimeError(f"{token} got id {tok.token_to_id(token)}, expected {learned_vocab + index}")
    return tok


# --- images and processor -------------------------------------------------------------------------------


def draw_test_image(seed: int, width: int, height: int) -> Image.Image:
    """A non-square RGB picture: a colour gradient, two shapes and seeded noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([255 * x / (width - 1), 255 * y / (height - 1), 255 * (1 - x / (width - 1))], axis=-1)
    pixels[height // 6:height // 2, width // 6:width // 2] = [230, 40, 30]  # red rectangle
    disc = (x - 2 * width / 3) ** 2 + (y - 2 * height / 3) ** 2 <= (min(width, height) / 5) ** 2
    pixels[disc] = [20, 60, 220]  # blue disc
    pixels += rng.normal(0, 12, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="RGB")


def processor_config(min_pixels: int, max_pixels: int) -> dict[str, Any]:
    return {
        "image_processor_type": "Qwen2VLImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "resample": 3,  # PIL bicubic
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "patch_size": PATCH,
        "temporal_patch_size": TEMPORAL,
        "merge_size": MERGE,
    }


def load_image_processor(model_dir: str) -> Any:
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(model_dir)
    # Without torchvision (Tools/requirements.txt), transformers 5.24 runs the PIL backend.
    if type(processor).__name__ != EXPECTED_PROCESSOR:
        raise RuntimeError(f"image processor is {type(processor).__name__}, expected {EXPECTED_PROCESSOR} "
                           "(is torchvision installed? Tools/requirements.txt does not include it)")
    return processor


# --- models ---------------------------------------------------------------------------------------------

TEXT = dict(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=256,
            rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=SPECIAL_IDS["<|im_end|>"], pad_token_id=None,
            # head_dim 16: 8 rotary frequencies, split temporal 2 / height 3 / width 3
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
TOKEN_IDS = dict(image_token_id=IMAGE_TOKEN_ID, video_token_id=VIDEO_TOKEN_ID,
                 vision_start_token_id=VISION_START_ID, vision_end_token_id=VISION_END_ID)


QWEN25 = dict(
    model_id="tiny-qwen2_5-vl", seed=1004, image="images/qwen2_5-vl-test-45x29.png", image_size=(45, 29),
    # 45x29 → smart_resize 48x32 → 12x8 patches → 6x4 merged tokens; windows of 3x3 merged units (24 px):
    # get_window_index pads to a 2x3 window grid (a whole empty window column, since 6 % 3 == 0) holding
    # 9, 9, 0 / 3, 3, 0 merged units: full, partial and empty windows all occur.
    min_pixels=FACTOR * FACTOR * 4, max_pixels=FACTOR * FACTOR * 64,
)
QWEN2 = dict(
    model_id="tiny-qwen2-vl", seed=1005, image="images/qwen2-vl-test-70x38.png", image_size=(70, 38),
    # 70x38 → 72x40 is over max_pixels 1024 → smart_resize 40x16 → 10x4 patches → 5x2 merged tokens.
    min_pixels=FACTOR * FACTOR * 2, max_pixels=1024,
)
QWEN25_T5_ID = "tiny-qwen2_5-vl-t5"


def build_tiny_qwen2_5_vl() -> nn.Module:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        text_config=dict(TEXT),
        vision_config=dict(depth=4, hidden_size=32, intermediate_size=48, num_heads=4, out_hidden_size=64,
                           hidden_act="silu", patch_size=PATCH, spatial_merge_size=MERGE,
                           temporal_patch_size=TEMPORAL, window_size=24, fullatt_block_indexes=[1, 3],
                           tokens_per_second=2, in_channels=3),
        tie_word_embeddings=False, **TOKEN_IDS,
    )
    return Qwen2_5_VLForConditionalGeneration(config)


def build_tiny_qwen2_vl() -> nn.Module:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    config = Qwen2VLConfig(
        text_config=dict(TEXT),
        vision_config=dict(depth=4, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=4, hidden_act="quick_gelu",
                           patch_size=PATCH, spatial_merge_size=MERGE, temporal_patch_size=TEMPORAL, in_channels=3),
        tie_word_embeddings=True, **TOKEN_IDS,
    )
    return Qwen2VLForConditionalGeneration(config)


def write_extra_files(spec: dict[str, Any], model_dir: str, root: str) -> list[str]:
    """tokenizer.json and preprocessor_config.json in the checkpoint, the test image under images/."""
    build_tokenizer().save(os.path.join(model_dir, "tokenizer.json"), pretty=True)
    with open(os.path.join(model_dir, "preprocessor_config.json"), "w") as f:
        json.dump(processor_config(spec["min_pixels"], spec["max_pixels"]), f, indent=2, sort_keys=True)
        f.write("\n")
    image_path = os.path.join(root, spec["image"])
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    width, height = spec["image_size"]
    draw_test_image(spec["seed"], width, height).save(image_path, format="PNG", optimize=False, compress_level=9)
    return [spec["image"]]


def prompt_ids(model_dir: str, num_image_tokens: int, image_token_id: int = IMAGE_TOKEN_ID) -> np.ndarray:
    """Tokenizes PROMPT and expands <|image_pad|> to one id per merged image token (as Qwen2VLProcessor does)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids = tok.encode(PROMPT, add_special_tokens=False).ids
    if ids.count(image_token_id) != 1:
        raise RuntimeError(f"prompt has {ids.count(image_token_id)} image tokens, expected 1")
    at = ids.index(image_token_id)
    expanded = ids[:at] + [image_token_id] * num_image_tokens + ids[at + 1:]
    return np.asarray(expanded, dtype=np.int64)


def run_qwen_vl(model: nn.Module, spec: dict[str, Any], model_dir: str, root: str) -> dict[str, np.ndarray]:
    """One eager float32 forward of Qwen2(.5)-VL ForConditionalGeneration with vision and decoder hooks recorded."""
    processor = load_image_processor(model_dir)
    image = Image.open(os.path.join(root, spec["image"]))
    processed = processor(images=image, return_tensors="pt")
    pixel_values = processed["pixel_values"].to(torch.float32)
    grid = processed["image_grid_thw"]
    merge = model.config.vision_config.spatial_merge_size
    num_tokens = int(grid.prod(-1).item()) // (merge * merge)
    input_ids = prompt_ids(model_dir, num_tokens)
    ids = torch.from_numpy(input_ids)[None, :]
    mm_token_type_ids = (ids == model.config.image_token_id).to(torch.int32)

    visual = model.model.visual
    position_ids, _ = model.model.get_rope_index(ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=grid)

    recorder = capture.Recorder()
    try:
        recorder.on_output(visual.patch_embed, "vision.hook_embed")
        for index, block in enumerate(visual.blocks):
            recorder.on_output(block, f"vision.blocks.{index}.hook_resid_post")
        recorder.on_output(visual.merger, "vision.merger.hook_out")
        # The tower returns BaseModelOutputWithPooling; pooler_output is the merger output in processor order.
        recorder.handles.append(visual.register_forward_hook(
            lambda _m, _a, out: recorder.put("image_features", out.pooler_output)))
        recorder.attach_decoder(model.model.language_model, embed_from_inputs=True)
        with torch.no_grad():
            output = model(input_ids=ids, pixel_values=pixel_values, image_grid_thw=grid,
                           mm_token_type_ids=mm_token_type_ids, output_attentions=True, use_cache=False)
    finally:
        recorder.close()

    v = recorder.values
    datasets: dict[str, np.ndarray] = {"input_ids": input_ids}
    datasets["pixel_values"] = pixel_values.contiguous().numpy()
    datasets["image_grid_thw"] = grid.to(torch.int64).numpy()
    datasets["position_ids"] = position_ids[:, 0, :].to(torch.int64).contiguous().numpy()
    datasets["vision.hook_embed"] = v["vision.hook_embed"].numpy()
    for index in range(len(visual.blocks)):
        name = f"vision.blocks.{index}.hook_resid_post"
        datasets[name] = v[name].numpy()
    image_features = v["image_features"]
    image_rows = torch.from_numpy(input_ids == IMAGE_TOKEN_ID)
    if not torch.equal(v["hook_embed"][0, image_rows], image_features):
        raise RuntimeError("image features were not merged at the image token positions")
    if not torch.equal(image_features.sort(dim=0).values, v["vision.merger.hook_out"].sort(dim=0).values):
        raise RuntimeError("image features are not a reordering of the merger output")
    datasets["image_features"] = image_features.numpy()
    datasets.update(capture.decoder_activations(recorder, len(model.model.language_model.layers),
                                                output.logits, output.attentions))
    return datasets


# --- in-memory layout copy (Qwen2.5-VL) -----------------------------------------------------------------


def t5_name(name: str) -> str:
    """Hub / save_pretrained weight name → transformers 5 in-memory name."""
    if name.startswith("visual."):
        return "model." + name
    if name.startswith("model."):
        return "model.language_model." + name[len("model."):]
    return name


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """config.json as Qwen's hub files write it (transformers 4): text settings at the top level,
    `rope_theta` + `rope_scaling: {type: mrope, mrope_section}`, `torch_dtype`, vision `in_chans` and
    `model_type: qwen2_5_vl`."""
    out = json.loads(json.dumps(config))
    text = out.pop("text_config")
    out["transformers_version"] = "4.49.0"
    if "dtype" in out:
        out["torch_dtype"] = out.pop("dtype")
    rope = text.pop("rope_parameters")
    text["rope_theta"] = rope["rope_theta"]
    text["rope_scaling"] = {"type": "mrope", "mrope_section": rope["mrope_section"]}
    for key in ("model_type", "dtype", "layer_types"):
        text.pop(key, None)
    out.update(text)
    vision = out["vision_config"]
    vision["model_type"] = "qwen2_5_vl"
    vision["in_chans"] = vision.pop("in_channels")
    vision.pop("rope_parameters", None)
    return out


def write_t5_layout(src_dir: str, dst_dir: str) -> list[str]:
    from safetensors import safe_open
    from safetensors.torch import save_file

    os.makedirs(dst_dir, exist_ok=True)
    with safe_open(os.path.join(src_dir, "model.safetensors"), "pt") as f:
        metadata = f.metadata()
        tensors = {t5_name(name): f.get_tensor(name) for name in f.keys()}
    save_file(dict(sorted(tensors.items())), os.path.join(dst_dir, "model.safetensors"), metadata=metadata)
    with open(os.path.join(src_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(dst_dir, "config.json"), "w") as f:
        json.dump(flat_config(config), f, indent=2, sort_keys=True)
        f.write("\n")
    for name in ("tokenizer.json", "preprocessor_config.json"):
        with open(os.path.join(src_dir, name), "rb") as src, open(os.path.join(dst_dir, name), "wb") as dst:
            dst.write(src.read())
    return sorted(os.listdir(dst_dir))
