"""tiny-llava: a LLaVA-1.5-shaped checkpoint (CLIP vision tower, gelu projector, Llama text model), its
tokenizer.json, CLIP image-processor config, a seeded test image, and the llava-hf hub weight-name layout.

Weight-name layouts of a LlavaForConditionalGeneration checkpoint (see `hub_name`):
  transformers 5 save_pretrained       llava-hf hub (transformers 4)
  vision_tower.<rest>                  vision_tower.vision_model.<rest>
  multi_modal_projector.<rest>         multi_modal_projector.<rest>
  language_model.model.<rest>          language_model.model.<rest>
  language_model.lm_head.weight        language_model.lm_head.weight
(transformers 5 in memory: model.vision_tower.<rest>, model.multi_modal_projector.<rest>,
 model.language_model.<rest>, lm_head.weight)
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
from llama2_tokenizer import build_llama2_tokenizer

VISION = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32)
IMAGE_NAME = "images/llava-test-47x39.png"
IMAGE_SIZE = (47, 39)  # width, height
IMAGE_TOKEN = "<image>"
EXPECTED_PROCESSOR = "CLIPImageProcessorPil"
PROMPT = "USER: <image>\nWhat is shown in this picture? ASSISTANT:"

# OpenAI CLIP normalisation constants (transformers.image_utils.OPENAI_CLIP_MEAN / _STD).
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# --- tokenizer ------------------------------------------------------------------------------------------

TOKENIZER_VOCAB = 500  # <unk> <s> </s>, 256 byte tokens, learned BPE tokens; then <image> gets id 500
CORPUS = """\
USER: What is shown in this picture? ASSISTANT: A red square and a blue circle on a green field.
USER: Describe the image in one sentence. ASSISTANT: The picture shows a small house under a bright sun.
USER: How many objects are in the image? ASSISTANT: There are three objects: a square, a circle and a line.
USER: What color is the sky? ASSISTANT: The sky is blue with a few white clouds.
USER: Is there a person in the photo? ASSISTANT: No, there is no person, only a tree and a road.
USER: Where is the cat sitting? ASSISTANT: The cat is sitting on the window next to the plant.
USER: What is the man holding? ASSISTANT: The man is holding an umbrella and a cup of coffee.
USER: Read the text on the sign. ASSISTANT: The sign says stop, in white letters on a red background.
USER: What time of day is it? ASSISTANT: It looks like the evening, because the light is warm and orange.
USER: Answer with one word: what animal is this? ASSISTANT: Dog.
Instructions tell the assistant what to do with the image, and the answer follows the instruction.
The model looks at the picture, reads the question, and writes a short answer about the shown scene.
Colors: red, green, blue, yellow, orange, purple, black, white, gray, brown and pink.
Shapes: square, circle, triangle, rectangle, line, star, and a small dot in the corner of the image.
Numbers 0 1 2 3 4 5 6 7 8 9 10 100 2024 and punctuation , . ; : ! ? ( ) - ' " are common in prompts.
"""


def build_tokenizer() -> Any:
    """A Llama-2 style BPE tokenizer: Metaspace pre-tokenizer, byte fallback, <s> prepended, <image> special."""
    return build_llama2_tokenizer(CORPUS.splitlines(), TOKENIZER_VOCAB - 3 - 256, "first", IMAGE_TOKEN,
                                  expected_size=TOKENIZER_VOCAB)


IMAGE_TOKEN_ID = TOKENIZER_VOCAB

# --- image and processor --------------------------------------------------------------------------------


def draw_test_image(seed: int) -> Image.Image:
    """A non-square RGB picture: a colour gradient, two shapes and seeded noise."""
    width, height = IMAGE_SIZE
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([255 * x / (width - 1), 255 * y / (height - 1), 255 * (1 - x / (width - 1))], axis=-1)
    pixels[5:20, 8:26] = [230, 40, 30]  # red rectangle
    disc = (x - 33) ** 2 + (y - 26) ** 2 <= 8 ** 2
    pixels[disc] = [20, 60, 220]  # blue disc
    pixels += rng.normal(0, 12, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="RGB")


def processor_config() -> dict[str, Any]:
    size = VISION["image_size"]
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": size},
        "resample": 3,  # PIL bicubic
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
    }


def load_image_processor(model_dir: str) -> Any:
    """The processor transformers picks for `CLIPImageProcessor` here (PIL backend without torchvision)."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(model_dir)
    # transformers 5.24 maps CLIPImageProcessor to its torchvision backend, and falls back to the PIL one
    # (CLIPImageProcessorPil: PIL bicubic resize of the uint8 image) when torchvision is missing, as in
    # Tools/requirements.txt. The goldens record the PIL pipeline; refuse to mix the two silently.
    if type(processor).__name__ != EXPECTED_PROCESSOR:
        raise RuntimeError(f"image processor is {type(processor).__name__}, expected {EXPECTED_PROCESSOR} "
                           "(is torchvision installed? Tools/requirements.txt does not include it)")
    return processor


# --- model ----------------------------------------------------------------------------------------------


def build_tiny_llava() -> nn.Module:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(**VISION)
    text = LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, hidden_act="silu", max_position_embeddings=256, rms_norm_eps=1e-5,
        tie_word_embeddings=False, attention_bias=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=1, eos_token_id=2,
    )
    num_patches = (VISION["image_size"] // VISION["patch_size"]) ** 2
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=IMAGE_TOKEN_ID, image_seq_length=num_patches,
        projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default",
        multimodal_projector_bias=True, tie_word_embeddings=False,
    )
    return LlavaForConditionalGeneration(config)


def write_extra_files(model_dir: str, root: str, seed: int) -> list[str]:
    """tokenizer.json and preprocessor_config.json in the checkpoint, the test image under images/."""
    build_tokenizer().save(os.path.join(model_dir, "tokenizer.json"), pretty=True)
    with open(os.path.join(model_dir, "preprocessor_config.json"), "w") as f:
        json.dump(processor_config(), f, indent=2, sort_keys=True)
        f.write("\n")
    image_path = os.path.join(root, IMAGE_NAME)
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    draw_test_image(seed).save(image_path, format="PNG", optimize=False, compress_level=9)
    return [IMAGE_NAME]


def prompt_ids(model_dir: str, num_image_tokens: int) -> np.ndarray:
    """Tokenizes PROMPT with the checkpoint's tokenizer.json and expands <image> to one id per image feature."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids = tok.encode(PROMPT).ids
    if ids.count(IMAGE_TOKEN_ID) != 1:
        raise RuntimeError(f"prompt has {ids.count(IMAGE_TOKEN_ID)} image tokens, expected 1")
    at = ids.index(IMAGE_TOKEN_ID)
    expanded = ids[:at] + [IMAGE_TOKEN_ID] * num_image_tokens + ids[at + 1:]
    return np.asarray(expanded, dtype=np.int64)


def run_llava(model: nn.Module, model_dir: str, root: str) -> dict[str, np.ndarray]:
    """One eager float32 forward of LlavaForConditionalGeneration with vision and decoder hooks recorded."""
    processor = load_image_processor(model_dir)
    image = Image.open(os.path.join(root, IMAGE_NAME))
    pixel_values = processor(images=image, return_tensors="pt")["pixel_values"].to(torch.float32)
    tower = model.model.vision_tower
    vision_model = getattr(tower, "vision_model", tower)
    num_patches = (model.config.vision_config.image_size // model.config.vision_config.patch_size) ** 2
    input_ids = prompt_ids(model_dir, num_patches)

    recorder = capture.Recorder()
    try:
        recorder.on_output(vision_model.embeddings, "vision.hook_embed")
        for index, layer in enumerate(vision_model.encoder.layers):
            recorder.on_output(layer, f"vision.blocks.{index}.hook_resid_post")
        recorder.on_input(model.model.multi_modal_projector, "vision.hook_selected", "image_features")
        recorder.on_output(model.model.multi_modal_projector, "image_features")
        recorder.attach_decoder(model.model.language_model, embed_from_inputs=True)
        with torch.no_grad():
            output = model(input_ids=torch.from_numpy(input_ids)[None, :], pixel_values=pixel_values,
                           output_attentions=True, use_cache=False)
    finally:
        recorder.close()

    v = recorder.values
    vision_layers = len(vision_model.encoder.layers)
    selected_layer = vision_layers + model.config.vision_feature_layer  # hidden_states[-2] = output of layer L-2
    if not torch.equal(v["vision.hook_selected"], v[f"vision.blocks.{selected_layer}.hook_resid_post"][:, 1:]):
        raise RuntimeError("vision.hook_selected is not the selected layer's output without CLS")
    image_rows = torch.from_numpy(input_ids == IMAGE_TOKEN_ID)
    if not torch.equal(v["hook_embed"][0, image_rows], v["image_features"][0]):
        raise RuntimeError("image features were not merged at the image token positions")

    datasets: dict[str, np.ndarray] = {"input_ids": input_ids}
    datasets["pixel_values"] = pixel_values.contiguous().numpy()
    datasets["vision.hook_embed"] = v["vision.hook_embed"][0].numpy()
    for index in range(vision_layers):
        name = f"vision.blocks.{index}.hook_resid_post"
        datasets[name] = v[name][0].numpy()
    datasets["vision.hook_selected"] = v["vision.hook_selected"][0].numpy()
    datasets["image_features"] = v["image_features"][0].numpy()
    datasets.update(capture.decoder_activations(recorder, len(model.model.language_model.layers),
                                                output.logits, output.attentions))
    return datasets


# --- hub layout -----------------------------------------------------------------------------------------


def hub_name(name: str) -> str:
    """transformers-5-saved LLaVA weight name → llava-hf hub name (the only difference is CLIP's vision_model)."""
    if name.startswith("vision_tower.") and not name.startswith("vision_tower.vision_model."):
        return "vision_tower.vision_model." + name[len("vision_tower."):]
    return name


def hub_config(config: dict[str, Any]) -> dict[str, Any]:
    """config.json in the transformers 4 style of llava-hf: `rope_theta`/`rope_scaling` instead of
    `rope_parameters`, `torch_dtype` instead of `dtype`, `image_token_index`."""
    out = json.loads(json.dumps(config))
    out["transformers_version"] = "4.45.0"
    for part in (out, out["text_config"], out["vision_config"]):
        if "dtype" in part:
            part["torch_dtype"] = part.pop("dtype")
    text = out["text_config"]
    rope = text.pop("rope_parameters", None) or {}
    text["rope_theta"] = rope.get("rope_theta", 10000.0)
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    text["rope_scaling"] = None if scaling.get("rope_type", "default") == "default" else scaling
    return out


def write_hub_layout(src_dir: str, dst_dir: str) -> list[str]:
    """Copies a transformers-5-saved LLaVA checkpoint with llava-hf hub weight names and config style."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    os.makedirs(dst_dir, exist_ok=True)
    with safe_open(os.path.join(src_dir, "model.safetensors"), "pt") as f:
        metadata = f.metadata()
        tensors = {hub_name(name): f.get_tensor(name) for name in f.keys()}
    save_file(dict(sorted(tensors.items())), os.path.join(dst_dir, "model.safetensors"), metadata=metadata)
    with open(os.path.join(src_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(dst_dir, "config.json"), "w") as f:
        json.dump(hub_config(config), f, indent=2, sort_keys=True)
        f.write("\n")
    for name in ("tokenizer.json", "preprocessor_config.json"):
        with open(os.path.join(src_dir, name), "rb") as src, open(os.path.join(dst_dir, name), "wb") as dst:
            dst.write(src.read())
    return sorted(os.listdir(dst_dir))
