"""tiny-internvl: an InternVL3-shaped checkpoint (InternViT tower with q/k norm and layer scale, pixel shuffle,
LayerNorm-MLP projector, Qwen2 text model), a byte-level BPE tokenizer.json with InternVL's image tokens, a
GotOcr2 image-processor config with dynamic tiling, a seeded test image, and a copy with OpenGVLab's original
weight names (tiny-internvl-hub).

Weight-name layouts of an InternVL checkpoint (transformers 5 in memory: model.vision_tower.…,
model.multi_modal_projector.…, model.language_model.…, lm_head.weight):
  transformers 5.24 save_pretrained / -hf hub           OpenGVLab original (InternVL3-8B …)
  vision_tower.embeddings.cls_token                     vision_model.embeddings.class_embedding
  ….embeddings.patch_embeddings.projection.{w,b}        vision_model.embeddings.patch_embedding.{w,b}
  ….embeddings.position_embeddings                      vision_model.embeddings.position_embedding
  ….encoder.layer.{i}.attention.{q,k,v}_proj.{w,b}      vision_model.encoder.layers.{i}.attn.qkv.{w,b} (fused)
  ….attention.projection_layer / q_norm / k_norm        ….attn.proj / attn.q_norm / attn.k_norm
  ….lambda_1, lambda_2, layernorm_before/after          ….ls1, ls2, norm1, norm2
  multi_modal_projector.{layer_norm,linear_1,linear_2}  mlp1.{0,1,3}
  language_model.model.<rest>, language_model.lm_head   the same
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

import golden_capture as capture
import golden_qwen_vl as qwen_vl

MODEL_ID = "tiny-internvl"
HUB_ID = "tiny-internvl-hub"
SEED = 1006
IMAGE_NAME = "images/internvl-test-45x29.png"
IMAGE_SIZE = (45, 29)  # width, height: aspect 1.55 → a 3×2 canvas of 16-pixel tiles, plus the thumbnail
EXPECTED_PROCESSOR = "GotOcr2ImageProcessorPil"
TILE = 16
PATCH = 4
MAX_PATCHES = 6

# --- tokenizer ------------------------------------------------------------------------------------------

LEARNED_VOCAB = qwen_vl.ANSWER_VOCAB
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
SPECIAL_IDS = {token: LEARNED_VOCAB + index for index, token in enumerate(SPECIAL_TOKENS)}
IMAGE_TOKEN_ID = SPECIAL_IDS["<IMG_CONTEXT>"]
VOCAB_SIZE = 640  # ids 567..639 unused, as real checkpoints pad theirs
PROMPT = "<|im_start|>user\n<IMG_CONTEXT>\nWhat is shown in this picture?<|im_end|>\n<|im_start|>assistant\n"


def build_tokenizer() -> Any:
    """Qwen's byte-level BPE over its corpus and the conflict sets' answer words, with InternVL's chat and image
    special tokens."""
    return qwen_vl.build_tokenizer(LEARNED_VOCAB, SPECIAL_TOKENS, qwen_vl.ANSWER_CORPUS)


# --- image and processor --------------------------------------------------------------------------------


def processor_config() -> dict[str, Any]:
    return {
        "image_processor_type": "GotOcr2ImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"height": TILE, "width": TILE},
        "resample": 3,  # PIL bicubic
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],  # InternVL's ImageNet constants
        "image_std": [0.229, 0.224, 0.225],
        # As the -hf hub files write it: InternVLProcessor passes crop_to_patches=True itself.
        "crop_to_patches": False,
        "min_patches": 1,
        "max_patches": MAX_PATCHES,
    }


def load_image_processor(model_dir: str) -> Any:
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(model_dir)
    if type(processor).__name__ != EXPECTED_PROCESSOR:
        raise RuntimeError(f"image processor is {type(processor).__name__}, expected {EXPECTED_PROCESSOR} "
                           "(is torchvision installed? Tools/requirements.txt does not include it)")
    return processor


# --- model ----------------------------------------------------------------------------------------------

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, attention_bias=True,
              use_qk_norm=True, hidden_act="gelu", norm_type="layer_norm", layer_norm_eps=1e-6,
              image_size=TILE, patch_size=PATCH, use_mean_pooling=True, layer_scale_init_value=0.1)
TEXT = dict(model_type="qwen2", vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=1024,
            rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=SPECIAL_IDS["<|im_end|>"], pad_token_id=None,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
IMAGE_SEQ_LENGTH = ((TILE // PATCH) // 2) ** 2  # 4×4 patches, pixel shuffle 0.5 → 2×2 tokens per tile


def build_tiny_internvl() -> nn.Module:
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    config = InternVLConfig(vision_config=dict(VISION), text_config=dict(TEXT), image_token_id=IMAGE_TOKEN_ID,
                            image_seq_length=IMAGE_SEQ_LENGTH, downsample_ratio=0.5, projector_hidden_act="gelu",
                            vision_feature_layer=-1, vision_feature_select_strategy="default",
                            tie_word_embeddings=False)
    return InternVLForConditionalGeneration(config)


# tiny-internvl-rms: the other InternViT variants' code paths — RMSNorm blocks (InternViT-6B), no q/k norm and
# no attention biases (InternViT-300M), use_mean_pooling false (the tower's LayerNorm before the features), a
# Llama-shaped text model with tied embeddings.
VARIANT_ID = "tiny-internvl-rms"
VARIANT_SEED = 1008
VARIANT_VISION = dict(VISION, norm_type="rms_norm", use_qk_norm=False, attention_bias=False, use_mean_pooling=False)
VARIANT_TEXT = dict(TEXT, model_type="llama", head_dim=16, attention_bias=False, mlp_bias=False)


def build_tiny_internvl_rms() -> nn.Module:
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    config = InternVLConfig(vision_config=dict(VARIANT_VISION), text_config=dict(VARIANT_TEXT),
                            image_token_id=IMAGE_TOKEN_ID, image_seq_length=IMAGE_SEQ_LENGTH, downsample_ratio=0.5,
                            projector_hidden_act="gelu", vision_feature_layer=-1,
                            vision_feature_select_strategy="default", tie_word_embeddings=True)
    return InternVLForConditionalGeneration(config)


def write_variant_files(model_dir: str, _root: str) -> list[str]:
    """tokenizer.json and preprocessor_config.json (the test image is tiny-internvl's)."""
    build_tokenizer().save(os.path.join(model_dir, "tokenizer.json"), pretty=True)
    with open(os.path.join(model_dir, "preprocessor_config.json"), "w") as f:
        json.dump(processor_config(), f, indent=2, sort_keys=True)
        f.write("\n")
    return []


def write_extra_files(model_dir: str, root: str) -> list[str]:
    """tokenizer.json and preprocessor_config.json in the checkpoint, the test image under images/."""
    build_tokenizer().save(os.path.join(model_dir, "tokenizer.json"), pretty=True)
    with open(os.path.join(model_dir, "preprocessor_config.json"), "w") as f:
        json.dump(processor_config(), f, indent=2, sort_keys=True)
        f.write("\n")
    image_path = os.path.join(root, IMAGE_NAME)
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    width, height = IMAGE_SIZE
    qwen_vl.draw_test_image(SEED, width, height).save(image_path, format="PNG", optimize=False, compress_level=9)
    return [IMAGE_NAME]


def processed_inputs(model_dir: str, root: str) -> tuple[np.ndarray, torch.Tensor]:
    """input_ids and pixel_values as InternVLProcessor makes them: the image tiled (crop_to_patches=True, the
    processor's own default, overriding the config's), `<IMG_CONTEXT>` expanded to `<img>` + image_seq_length ×
    tiles context tokens + `</img>` (checked against InternVLProcessor.replace_image_token)."""
    from tokenizers import Tokenizer
    from transformers import InternVLProcessor

    image = Image.open(os.path.join(root, IMAGE_NAME))
    image_processor = load_image_processor(model_dir)
    processed = image_processor(images=[image], crop_to_patches=True, return_tensors="pt")
    pixel_values = processed["pixel_values"].to(torch.float32)
    tiles = pixel_values.shape[0]
    if list(processed["num_patches"]) != [tiles]:
        raise RuntimeError(f"num_patches {processed['num_patches']} disagrees with {tiles} tiles")
    # InternVLProcessor's replacement string (its constructor wants a video processor, which needs torchvision:
    # the method is run on an instance holding only what it reads).
    processor = object.__new__(InternVLProcessor)
    processor.start_image_token, processor.end_image_token = "<img>", "</img>"
    processor.image_token, processor.image_seq_length = "<IMG_CONTEXT>", IMAGE_SEQ_LENGTH
    replacement = processor.replace_image_token({"num_patches": [tiles]}, 0)
    if replacement != "<img>" + "<IMG_CONTEXT>" * (IMAGE_SEQ_LENGTH * tiles) + "</img>":
        raise RuntimeError(f"InternVLProcessor expands the image to {replacement[:40]}…, not the documented layout")
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids = np.asarray(tok.encode(PROMPT.replace("<IMG_CONTEXT>", replacement), add_special_tokens=False).ids,
                     dtype=np.int64)
    return ids, pixel_values


def run_internvl(model: nn.Module, model_dir: str, root: str) -> dict[str, np.ndarray]:
    """One eager float32 forward of InternVLForConditionalGeneration with vision and decoder hooks recorded."""
    input_ids, pixel_values = processed_inputs(model_dir, root)
    tiles = pixel_values.shape[0]
    if int((input_ids == IMAGE_TOKEN_ID).sum()) != tiles * IMAGE_SEQ_LENGTH:
        raise RuntimeError("image token count disagrees with the tiles")
    tower = model.model.vision_tower
    use_qk_norm = model.config.vision_config.use_qk_norm
    recorder = capture.Recorder()
    try:
        recorder.on_output(tower.embeddings, "vision.hook_embed")
        post_norm = not model.config.vision_config.use_mean_pooling
        if post_norm:
            recorder.on_output(tower.layernorm, "vision.ln_post.hook_normalized")
        for index, layer in enumerate(tower.encoder.layer):
            b = f"vision.blocks.{index}"
            recorder.on_input(layer, f"{b}.hook_resid_pre", "hidden_states")
            recorder.on_output(layer.layernorm_before, f"{b}.ln1.hook_normalized")
            attention = layer.attention
            # q and k as the attention takes them (after q_norm / k_norm when the tower has them), v, z.
            recorder.on_output(attention.q_norm if use_qk_norm else attention.q_proj, f"{b}.attn.hook_q")
            recorder.on_output(attention.k_norm if use_qk_norm else attention.k_proj, f"{b}.attn.hook_k")
            recorder.on_output(attention.v_proj, f"{b}.attn.hook_v")
            recorder.on_output(attention, f"{b}.attn.hook_pattern", index=1)
            recorder.on_input(attention.projection_layer, f"{b}.attn.hook_z", "input")
            recorder.on_output(attention, f"{b}.attention_output", index=0)
            recorder.on_output(layer.layernorm_after, f"{b}.ln2.hook_normalized")
            recorder.on_output(layer.mlp.fc1, f"{b}.mlp.hook_pre")
            recorder.on_output(layer.mlp.activation_fn, f"{b}.mlp.hook_post")
            recorder.on_output(layer.mlp, f"{b}.mlp_output")
            recorder.on_output(layer, f"{b}.hook_resid_post")
        recorder.on_input(model.model.multi_modal_projector, "vision.hook_shuffled", "image_features")
        recorder.on_output(model.model.multi_modal_projector, "image_features")
        recorder.attach_decoder(model.model.language_model, embed_from_inputs=True)
        with torch.no_grad():
            output = model(input_ids=torch.from_numpy(input_ids)[None, :], pixel_values=pixel_values,
                           output_attentions=True, use_cache=False)
    finally:
        recorder.close()

    v = recorder.values
    layers = len(tower.encoder.layer)
    width = model.config.vision_config.hidden_size

    def rows(t: torch.Tensor, columns: int) -> np.ndarray:
        return t.reshape(-1, columns).contiguous().numpy()

    # vision_feature_layer -1: last_hidden_state, through the tower's LayerNorm when it has one.
    last = v["vision.ln_post.hook_normalized"] if post_norm else v[f"vision.blocks.{layers - 1}.hook_resid_post"]
    selected = last[:, 1:, :]
    # The pixel shuffle of transformers, checked against the documented index map that Arbiter implements.
    side, f = int(round(selected.shape[1] ** 0.5)), 2
    mapped = selected.reshape(tiles, side // f, f, side // f, f, width).permute(0, 1, 3, 2, 4, 5)
    if not torch.equal(mapped.reshape(tiles, -1, f * f * width), v["vision.hook_shuffled"]):
        raise RuntimeError("pixel shuffle does not follow the documented layout")
    image_rows = torch.from_numpy(input_ids == IMAGE_TOKEN_ID)
    features = v["image_features"].reshape(-1, model.config.text_config.hidden_size)
    if not torch.equal(v["hook_embed"][0, image_rows], features):
        raise RuntimeError("image features were not merged at the image token positions")

    datasets: dict[str, np.ndarray] = {"input_ids": input_ids}
    datasets["pixel_values"] = pixel_values.contiguous().numpy()
    datasets["vision.hook_embed"] = rows(v["vision.hook_embed"], width)
    heads = model.config.vision_config.num_attention_heads
    intermediate = model.config.vision_config.intermediate_size
    for index in range(layers):
        b = f"vision.blocks.{index}"
        layer = tower.encoder.layer[index]
        # What the block adds, as InternVLVisionLayer computes it: lambda_1 · attention, lambda_2 · mlp.
        attn_out = layer.lambda_1.detach() * v[f"{b}.attention_output"]
        resid_mid = attn_out + v[f"{b}.hook_resid_pre"]
        mlp_out = layer.lambda_2.detach() * v[f"{b}.mlp_output"]
        if not torch.equal(mlp_out + resid_mid, v[f"{b}.hook_resid_post"]):
            raise RuntimeError(f"{b}: resid_mid + lambda_2 · mlp differs from the layer's output")
        datasets[f"{b}.hook_resid_pre"] = rows(v[f"{b}.hook_resid_pre"], width)
        datasets[f"{b}.ln1.hook_normalized"] = rows(v[f"{b}.ln1.hook_normalized"], width)
        for name in ("q", "k", "v", "z"):
            datasets[f"{b}.attn.hook_{name}"] = v[f"{b}.attn.hook_{name}"].reshape(-1, heads, width // heads).numpy()
        datasets[f"{b}.attn.hook_pattern"] = v[f"{b}.attn.hook_pattern"].contiguous().numpy()
        datasets[f"{b}.hook_attn_out"] = rows(attn_out, width)
        datasets[f"{b}.hook_resid_mid"] = rows(resid_mid, width)
        datasets[f"{b}.ln2.hook_normalized"] = rows(v[f"{b}.ln2.hook_normalized"], width)
        datasets[f"{b}.mlp.hook_pre"] = rows(v[f"{b}.mlp.hook_pre"], intermediate)
        datasets[f"{b}.mlp.hook_post"] = rows(v[f"{b}.mlp.hook_post"], intermediate)
        datasets[f"{b}.hook_mlp_out"] = rows(mlp_out, width)
        datasets[f"{b}.hook_resid_post"] = rows(v[f"{b}.hook_resid_post"], width)
    if post_norm:
        datasets["vision.ln_post.hook_normalized"] = rows(v["vision.ln_post.hook_normalized"], width)
    datasets["vision.hook_selected"] = rows(selected, width)
    datasets["vision.hook_shuffled"] = rows(v["vision.hook_shuffled"], f * f * width)
    datasets["image_features"] = features.contiguous().numpy()
    datasets.update(capture.decoder_activations(recorder, len(model.model.language_model.layers),
                                                output.logits, output.attentions))
    return datasets


# --- OpenGVLab's original layout ------------------------------------------------------------------------

# From the names save_pretrained writes (its language model names are already OpenGVLab's).
ORIGINAL_PREFIXES = [
    ("vision_tower.", "vision_model."),
    ("multi_modal_projector.layer_norm.", "mlp1.0."),
    ("multi_modal_projector.linear_1.", "mlp1.1."),
    ("multi_modal_projector.linear_2.", "mlp1.3."),
]
ORIGINAL_VISION = [
    (".embeddings.cls_token", ".embeddings.class_embedding"),
    (".embeddings.patch_embeddings.projection.", ".embeddings.patch_embedding."),
    (".embeddings.position_embeddings", ".embeddings.position_embedding"),
    (".encoder.layer.", ".encoder.layers."),
    (".attention.projection_layer.", ".attn.proj."),
    (".attention.q_norm.", ".attn.q_norm."),
    (".attention.k_norm.", ".attn.k_norm."),
    (".lambda_1", ".ls1"), (".lambda_2", ".ls2"),
    (".layernorm_before.", ".norm1."), (".layernorm_after.", ".norm2."),
]
QKV = re.compile(r"^(.*)\.attention\.([qkv])_proj\.(weight|bias)$")


def original_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers names → OpenGVLab's (the inverse of convert_internvl_weights_to_hf.py), q/k/v fused."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        mapped = name
        for src, dst in ORIGINAL_PREFIXES:
            if name.startswith(src):
                mapped = dst + name[len(src):]
                break
        if mapped.startswith("vision_model."):
            match = QKV.match(mapped)
            if match:
                fused.setdefault((match.group(1), match.group(3)), {})[match.group(2)] = tensor
                continue
            for src, dst in ORIGINAL_VISION:
                mapped = mapped.replace(src, dst)
        out[mapped] = tensor
    for (base, leaf), parts in fused.items():
        for src, dst in ORIGINAL_VISION:
            base = base.replace(src, dst)
        out[f"{base}.attn.qkv.{leaf}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def write_original_copy(model_dir: str, root: str, goldens: dict) -> list[str]:
    """tiny-internvl-hub: the same weights under OpenGVLab's names (config.json and the rest as they are).
    transformers cannot load that layout without OpenGVLab's remote code, so the copy is checked here by
    mapping it back: every tensor must come back bit for bit."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    hub_dir = os.path.join(root, "models", HUB_ID)
    os.makedirs(hub_dir, exist_ok=True)
    with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
        metadata = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    original = original_tensors(tensors)
    back: dict[str, torch.Tensor] = {}
    for name, tensor in original.items():
        if ".attn.qkv." in name:
            d = tensor.shape[0] // 3
            for i, part in enumerate("qkv"):
                back[name.replace(".attn.qkv.", f".attention.{part}_proj.")] = tensor[i * d:(i + 1) * d]
        else:
            back[name] = tensor
    inverse = {}
    for name in back:
        forward = name
        for src, dst in ORIGINAL_PREFIXES:
            if name.startswith(dst):
                forward = src + name[len(dst):]
                break
        if forward.startswith("vision_tower."):
            for src, dst in ORIGINAL_VISION:
                forward = forward.replace(dst, src)
        inverse[forward] = back[name]
    if set(inverse) != set(tensors) or any(not torch.equal(inverse[k], tensors[k]) for k in tensors):
        raise RuntimeError(f"{HUB_ID}: the original names do not map back to the checkpoint")
    save_file(dict(sorted(original.items())), os.path.join(hub_dir, "model.safetensors"), metadata=metadata)
    for name in ("config.json", "tokenizer.json", "preprocessor_config.json"):
        with open(os.path.join(model_dir, name), "rb") as src, open(os.path.join(hub_dir, name), "wb") as dst:
            dst.write(src.read())
    return [f"models/{HUB_ID}/{name}" for name in sorted(os.listdir(hub_dir))]
