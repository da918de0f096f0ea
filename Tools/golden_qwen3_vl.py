"""tiny-qwen3-vl: a Qwen3-VL-shaped checkpoint (vision tower with learned position embeddings interpolated to
the image grid, a final patch merger and DeepStack mergers, Qwen3 text model with per-head q/k RMSNorm and
interleaved multimodal rotary), golden_qwen_vl's tokenizer, a Qwen2-VL image-processor config in Qwen3-VL's
form (`size` edges, mean/std 0.5), a seeded non-square test image, and activations at every hook point
transformers exposes as a module boundary.

Weight-name layout (transformers 5.24 save_pretrained = the Qwen hub files):
  model.visual.<rest>, model.language_model.<rest>, lm_head.weight
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
import golden_qwen_vl as qwen_vl

PATCH = 4
MERGE = 2
TEMPORAL = 2
FACTOR = PATCH * MERGE
# Qwen3-VL's processor defaults: mean and std 0.5 on every channel.
MEAN = [0.5, 0.5, 0.5]
STD = [0.5, 0.5, 0.5]

SPEC = dict(
    model_id="tiny-qwen3-vl", seed=1007, image="images/qwen3-vl-test-45x29.png", image_size=(45, 29),
    # 45x29 → smart_resize 48x32 → 12x8 patches → 6x4 merged tokens; the 4x4 learned position grid
    # (num_position_embeddings 16) is interpolated bilinearly to 8x12.
    min_pixels=FACTOR * FACTOR * 4, max_pixels=FACTOR * FACTOR * 64,
)
DEEPSTACK = [0, 2]
# golden_qwen_vl's tokenizer trained on the conflict sets' answer words as well, so that `arbiter verify` can
# score tiny-qwen3-vl: Qwen's special tokens from id 560, a vocabulary of 640.
SPECIAL_IDS = {token: qwen_vl.ANSWER_VOCAB + index for index, token in enumerate(qwen_vl.SPECIAL_TOKENS)}
IMAGE_TOKEN_ID = SPECIAL_IDS["<|image_pad|>"]
VOCAB_SIZE = 640
TOKEN_IDS = dict(image_token_id=IMAGE_TOKEN_ID, video_token_id=SPECIAL_IDS["<|video_pad|>"],
                 vision_start_token_id=SPECIAL_IDS["<|vision_start|>"],
                 vision_end_token_id=SPECIAL_IDS["<|vision_end|>"])

TEXT = dict(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=160, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_act="silu",
            max_position_embeddings=1024, rms_norm_eps=1e-6, attention_bias=False,
            bos_token_id=None, eos_token_id=SPECIAL_IDS["<|im_end|>"], pad_token_id=None,
            # head_dim 16: 8 rotary frequencies; interleaved: H at 1, 4; W at 2, 5; T at 0, 3, 6, 7
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2],
                             "mrope_interleaved": True})
VISION = dict(depth=4, hidden_size=32, intermediate_size=48, num_heads=4, out_hidden_size=64,
              hidden_act="gelu_pytorch_tanh", patch_size=PATCH, spatial_merge_size=MERGE,
              temporal_patch_size=TEMPORAL, in_channels=3, num_position_embeddings=16,
              deepstack_visual_indexes=DEEPSTACK)


def build_tiny_qwen3_vl() -> nn.Module:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    config = Qwen3VLConfig(text_config=dict(TEXT), vision_config=dict(VISION), tie_word_embeddings=False,
                           **TOKEN_IDS)
    return Qwen3VLForConditionalGeneration(config)


def processor_config() -> dict[str, Any]:
    """Qwen3-VL's preprocessor_config.json form: `size` edges instead of min/max_pixels."""
    return {
        "image_processor_type": "Qwen2VLImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "resample": 3,  # PIL bicubic
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": MEAN,
        "image_std": STD,
        "size": {"shortest_edge": SPEC["min_pixels"], "longest_edge": SPEC["max_pixels"]},
        "patch_size": PATCH,
        "temporal_patch_size": TEMPORAL,
        "merge_size": MERGE,
    }


def write_extra_files(model_dir: str, root: str) -> list[str]:
    qwen_vl.build_tokenizer(qwen_vl.ANSWER_VOCAB, qwen_vl.SPECIAL_TOKENS, qwen_vl.ANSWER_CORPUS).save(os.path.join(model_dir, "tokenizer.json"), pretty=True)
    with open(os.path.join(model_dir, "preprocessor_config.json"), "w") as f:
        json.dump(processor_config(), f, indent=2, sort_keys=True)
        f.write("\n")
    image_path = os.path.join(root, SPEC["image"])
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    width, height = SPEC["image_size"]
    qwen_vl.draw_test_image(SPEC["seed"], width, height).save(image_path, format="PNG", optimize=False,
                                                              compress_level=9)
    return [SPEC["image"]]


def run_qwen3_vl(model: nn.Module, model_dir: str, root: str) -> dict[str, np.ndarray]:
    """One eager float32 forward of Qwen3VLForConditionalGeneration with vision, DeepStack and decoder hooks."""
    from transformers.vision_utils import get_vision_interpolation_indices_and_weights

    processor = qwen_vl.load_image_processor(model_dir)
    image = Image.open(os.path.join(root, SPEC["image"]))
    processed = processor(images=image, return_tensors="pt")
    pixel_values = processed["pixel_values"].to(torch.float32)
    grid = processed["image_grid_thw"]
    merge = model.config.vision_config.spatial_merge_size
    num_tokens = int(grid.prod(-1).item()) // (merge * merge)
    input_ids = qwen_vl.prompt_ids(model_dir, num_tokens, IMAGE_TOKEN_ID)
    ids = torch.from_numpy(input_ids)[None, :]
    mm_token_type_ids = (ids == model.config.image_token_id).to(torch.int32)

    visual = model.model.visual
    position_ids, _ = model.model.get_rope_index(ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=grid)
    # The interpolated learned position embeddings, computed as the tower computes them.
    indices, weights = get_vision_interpolation_indices_and_weights(
        grid, num_grid_per_side=visual.num_grid_per_side, mode=visual.interpolation_mode,
        align_corners=visual.interpolation_align_corners, spatial_merge_size=merge)
    with torch.no_grad():
        pos_embed = (visual.pos_embed(indices) * weights[:, :, None]).sum(1)

    layers = model.model.language_model.layers
    recorder = capture.Recorder()
    try:
        recorder.on_output(visual.patch_embed, "vision.hook_embed")
        recorder.on_input(visual.blocks[0], "vision.blocks.0.hook_resid_pre", "hidden_states")
        for index, block in enumerate(visual.blocks):
            recorder.on_output(block, f"vision.blocks.{index}.hook_resid_post")
            recorder.on_output(block.attn, f"vision.blocks.{index}.hook_attn_out")
            recorder.on_output(block.mlp, f"vision.blocks.{index}.hook_mlp_out")
        recorder.on_output(visual.merger, "image_features")
        for index, merger in enumerate(visual.deepstack_merger_list):
            recorder.on_output(merger, f"vision.deepstack.{index}.hook_features")
        for index, layer in enumerate(layers):
            recorder.on_output(layer.self_attn.q_norm, f"blocks.{index}.attn.hook_q")
            recorder.on_output(layer.self_attn.k_norm, f"blocks.{index}.attn.hook_k")
        recorder.attach_decoder(model.model.language_model, embed_from_inputs=True)
        with torch.no_grad():
            output = model(input_ids=ids, pixel_values=pixel_values, image_grid_thw=grid,
                           mm_token_type_ids=mm_token_type_ids, output_attentions=True, use_cache=False)
    finally:
        recorder.close()

    v = recorder.values
    if not torch.equal(v["vision.hook_embed"] + pos_embed, v["vision.blocks.0.hook_resid_pre"]):
        raise RuntimeError("patch embedding + interpolated position embedding differs from block 0's input")
    datasets: dict[str, np.ndarray] = {"input_ids": input_ids}
    datasets["pixel_values"] = pixel_values.contiguous().numpy()
    datasets["image_grid_thw"] = grid.to(torch.int64).numpy()
    datasets["position_ids"] = position_ids[:, 0, :].to(torch.int64).contiguous().numpy()
    datasets["vision.hook_embed"] = v["vision.hook_embed"].numpy()
    datasets["vision.hook_pos_embed"] = pos_embed.numpy()
    datasets["vision.blocks.0.hook_resid_pre"] = v["vision.blocks.0.hook_resid_pre"].numpy()
    for index in range(len(visual.blocks)):
        p = f"vision.blocks.{index}"
        datasets[f"{p}.hook_attn_out"] = v[f"{p}.hook_attn_out"].numpy()
        datasets[f"{p}.hook_mlp_out"] = v[f"{p}.hook_mlp_out"].numpy()
        datasets[f"{p}.hook_resid_post"] = v[f"{p}.hook_resid_post"].numpy()
    image_features = v["image_features"]
    image_rows = torch.from_numpy(input_ids == IMAGE_TOKEN_ID)
    if not torch.equal(v["hook_embed"][0, image_rows], image_features):
        raise RuntimeError("image features were not merged at the image token positions")
    datasets["image_features"] = image_features.numpy()
    for index in range(len(visual.deepstack_merger_list)):
        datasets[f"vision.deepstack.{index}.hook_features"] = v[f"vision.deepstack.{index}.hook_features"].numpy()
    # DeepStack: after decoder layer l < len(deepstack), feature l is added at the image rows.
    order = sorted(set(DEEPSTACK))
    added: dict[int, torch.Tensor] = {}
    for layer, vision_layer in enumerate(order):
        merger = DEEPSTACK.index(vision_layer)
        feature = v[f"vision.deepstack.{merger}.hook_features"]
        added[layer] = feature
        datasets[f"blocks.{layer}.hook_deepstack"] = feature.numpy()
    for index in range(len(layers)):
        datasets[f"blocks.{index}.attn.hook_q"] = capture._drop_batch(v[f"blocks.{index}.attn.hook_q"], "q")
        datasets[f"blocks.{index}.attn.hook_k"] = capture._drop_batch(v[f"blocks.{index}.attn.hook_k"], "k")
    datasets.update(capture.decoder_activations(recorder, len(layers), output.logits, output.attentions,
                                                added={l: (image_rows, f) for l, f in added.items()}))
    return datasets
