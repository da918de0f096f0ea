"""The tiny seeded checkpoints of GoldenData/ and their input cases: one entry per model in MODELS.

Each checkpoint is built from a transformers configuration, its parameters re-drawn with the recipe in
`init_parameters` (seeded, independent of transformers' own initialisation), and saved with
`save_pretrained` (safetensors, float32). Adding a model is one `ModelSpec` entry in `MODELS`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
import torch
from torch import nn

import golden_capture as capture
import golden_internvl as internvl
import golden_llava as llava
import golden_qwen3_vl as qwen3_vl
import golden_qwen_vl as qwen_vl

# Recorded in manifest.json and GoldenData/README.md; change `INIT_RECIPE` whenever `init_parameters` changes.
WEIGHT_STD = 0.2
BIAS_STD = 0.1
NORM_SPREAD = 0.2
INIT_RECIPE = (
    f"parameters in named_parameters() order from torch.Generator().manual_seed(seed): "
    f"weights of norm modules 1 + U(-{NORM_SPREAD}, {NORM_SPREAD}); every bias N(0, {BIAS_STD}^2); "
    f"every other parameter (Linear, Embedding, Conv2d weights, CLIP class embedding) N(0, {WEIGHT_STD}^2)"
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One input of a golden forward pass."""

    name: str
    length: int = 0  # number of random token ids (text cases)
    seed: int = 0  # seed of the ids (numpy default_rng)
    prompt: str | None = None  # prompt text (recorded as the file's `prompt` attribute)


Datasets = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One golden checkpoint: how to build it, and the inputs its activations are recorded for."""

    model_id: str
    seed: int
    build: Callable[[], nn.Module]  # returns the float32 model with transformers' initialisation
    cases: tuple[Case, ...]
    # Writes extra files (model_dir, root): into the checkpoint folder (tokenizer, image processor, ...),
    # and returns the paths, relative to root, of those it wrote outside it (test images).
    extra_files: Callable[[str, str], list[str]] | None = None
    # Runs one case on the loaded model (model, case, model_dir, root) → datasets of the activation file.
    runner: Callable[[nn.Module, Case, str, str], Datasets] | None = None
    # Writes files derived from the saved checkpoint (model_dir, root, datasets by case name) and returns
    # their paths relative to root (e.g. the llava-hf hub layout copy).
    derived: Callable[[str, str, dict[str, Datasets]], list[str]] | None = None

    def run_case(self, model: nn.Module, case: Case, model_dir: str, root: str) -> Datasets:
        return (self.runner or run_text_case)(model, case, model_dir, root)


def init_parameters(model: nn.Module, seed: int) -> None:
    """Re-draws every parameter of `model` (see INIT_RECIPE). Tied parameters are drawn once."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            owner_name, _, leaf = name.rpartition(".")
            owner = model.get_submodule(owner_name) if owner_name else model
            is_norm = "norm" in type(owner).__name__.lower()
            if is_norm and leaf == "weight":
                u = torch.rand(param.shape, generator=generator, dtype=torch.float32)
                value = 1.0 + NORM_SPREAD * (2.0 * u - 1.0)
            elif leaf == "bias":
                value = BIAS_STD * torch.randn(param.shape, generator=generator, dtype=torch.float32)
            else:
                value = WEIGHT_STD * torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.copy_(value)


def random_ids(case: Case, vocab_size: int, bos_token_id: int | None) -> np.ndarray:
    """Token ids of a text case: `bos` (when the model has one) then uniform ids in [3, vocab)."""
    rng = np.random.default_rng(case.seed)
    ids = rng.integers(3, vocab_size, size=case.length, dtype=np.int64)
    if bos_token_id is not None:
        ids[0] = bos_token_id
    return ids


def run_text_case(model: nn.Module, case: Case, _model_dir: str, _root: str) -> Datasets:
    ids = random_ids(case, model.config.vocab_size, model.config.bos_token_id)
    return capture.run_text_model(model, ids)


# --- tiny-llama -----------------------------------------------------------------------------------------

def build_tiny_llama() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_act="silu",
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            # Small so that llama3 scaling changes most frequencies at the test lengths.
            "original_max_position_embeddings": 16,
        },
        initializer_range=WEIGHT_STD,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config)


# --- tiny-qwen2 -----------------------------------------------------------------------------------------

def build_tiny_qwen2() -> nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        initializer_range=WEIGHT_STD,
    )
    return Qwen2ForCausalLM(config)


TEXT_CASES = (
    Case("random-24", length=24, seed=24),
    # Longer than llama3's original_max_position_embeddings (16) and than 2x it.
    Case("random-40", length=40, seed=40),
)

# --- tiny-llava (golden_llava.py) -----------------------------------------------------------------------

LLAVA_SEED = 1003
LLAVA_HUB_ID = "tiny-llava-hub"


def run_llava_case(model: nn.Module, _case: Case, model_dir: str, root: str) -> Datasets:
    return llava.run_llava(model, model_dir, root)


def write_llava_hub_copy(model_dir: str, root: str, goldens: dict[str, Datasets]) -> list[str]:
    """The llava-hf hub layout copy; transformers must load it to the very same activations."""
    from transformers import LlavaForConditionalGeneration

    hub_dir = os.path.join(root, "models", LLAVA_HUB_ID)
    names = llava.write_hub_layout(model_dir, hub_dir)
    model = LlavaForConditionalGeneration.from_pretrained(hub_dir, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    for case_name, golden in goldens.items():
        again = llava.run_llava(model, hub_dir, root)
        for key, value in golden.items():
            if not np.array_equal(value, again[key]):
                raise RuntimeError(f"{LLAVA_HUB_ID}: {key} of case {case_name} differs from tiny-llava's")
    return [f"models/{LLAVA_HUB_ID}/{name}" for name in names]


# --- tiny-qwen2_5-vl, tiny-qwen2-vl (golden_qwen_vl.py) ------------------------------------------------


def run_qwen_vl_case(spec: dict) -> Callable[[nn.Module, Case, str, str], Datasets]:
    return lambda model, _case, model_dir, root: qwen_vl.run_qwen_vl(model, spec, model_dir, root)


def write_qwen2_5_vl_t5_copy(model_dir: str, root: str, goldens: dict[str, Datasets]) -> list[str]:
    """The transformers-5 in-memory layout copy with a flat config; transformers must load it to the very same
    activations."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    copy_dir = os.path.join(root, "models", qwen_vl.QWEN25_T5_ID)
    names = qwen_vl.write_t5_layout(model_dir, copy_dir)
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        copy_dir, attn_implementation="eager", dtype=torch.float32, output_loading_info=True)
    problems = {key: sorted(value) for key, value in info.items() if value}
    if problems:
        raise RuntimeError(f"{qwen_vl.QWEN25_T5_ID}: loading reported {problems}")
    model.eval()
    for case_name, golden in goldens.items():
        again = qwen_vl.run_qwen_vl(model, qwen_vl.QWEN25, copy_dir, root)
        for key, value in golden.items():
            if not np.array_equal(value, again[key]):
                raise RuntimeError(f"{qwen_vl.QWEN25_T5_ID}: {key} of case {case_name} differs")
    return [f"models/{qwen_vl.QWEN25_T5_ID}/{name}" for name in names]


def qwen_vl_spec(spec: dict, build: Callable[[], nn.Module], derived=None) -> ModelSpec:
    return ModelSpec(spec["model_id"], seed=spec["seed"], build=build,
                     cases=(Case("image-prompt", prompt=qwen_vl.PROMPT),),
                     extra_files=lambda model_dir, root: qwen_vl.write_extra_files(spec, model_dir, root),
                     runner=run_qwen_vl_case(spec), derived=derived)


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("tiny-llama", seed=1001, build=build_tiny_llama, cases=TEXT_CASES),
    ModelSpec("tiny-qwen2", seed=1002, build=build_tiny_qwen2, cases=TEXT_CASES),
    ModelSpec("tiny-llava", seed=LLAVA_SEED, build=llava.build_tiny_llava,
              cases=(Case("image-prompt", prompt=llava.PROMPT),),
              extra_files=lambda model_dir, root: llava.write_extra_files(model_dir, root, LLAVA_SEED),
              runner=run_llava_case, derived=write_llava_hub_copy),
    qwen_vl_spec(qwen_vl.QWEN25, qwen_vl.build_tiny_qwen2_5_vl, derived=write_qwen2_5_vl_t5_copy),
    qwen_vl_spec(qwen_vl.QWEN2, qwen_vl.build_tiny_qwen2_vl),
    ModelSpec(qwen3_vl.SPEC["model_id"], seed=qwen3_vl.SPEC["seed"], build=qwen3_vl.build_tiny_qwen3_vl,
              cases=(Case("image-prompt", prompt=qwen_vl.PROMPT),), extra_files=qwen3_vl.write_extra_files,
              runner=lambda model, _case, model_dir, root: qwen3_vl.run_qwen3_vl(model, model_dir, root)),
    ModelSpec(internvl.MODEL_ID, seed=internvl.SEED, build=internvl.build_tiny_internvl,
              cases=(Case("image-prompt", prompt=internvl.PROMPT),),
              extra_files=lambda model_dir, root: internvl.write_extra_files(model_dir, root),
              runner=lambda model, _case, model_dir, root: internvl.run_internvl(model, model_dir, root),
              derived=internvl.write_original_copy),
    ModelSpec(internvl.VARIANT_ID, seed=internvl.VARIANT_SEED, build=internvl.build_tiny_internvl_rms,
              cases=(Case("image-prompt", prompt=internvl.PROMPT),), extra_files=internvl.write_variant_files,
              runner=lambda model, _case, model_dir, root: internvl.run_internvl(model, model_dir, root)),
)
