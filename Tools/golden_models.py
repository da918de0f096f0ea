"""The tiny seeded checkpoints of GoldenData/ and their input cases: one entry per model in MODELS.

Each checkpoint is built from a transformers configuration, its parameters re-drawn with the recipe in
`init_parameters` (seeded, independent of transformers' own initialisation), and saved with
`save_pretrained` (safetensors, float32). Adding a model is one `ModelSpec` entry in `MODELS`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from torch import nn

import golden_capture as capture

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
    length: int  # number of token ids (text cases)
    seed: int  # seed of the ids (numpy default_rng)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One golden checkpoint: how to build it, and the inputs its activations are recorded for."""

    model_id: str
    seed: int
    build: Callable[[], nn.Module]  # returns the float32 model with transformers' initialisation
    cases: tuple[Case, ...]
    # Writes extra files into the checkpoint folder (tokenizer, image processor, ...); None for none.
    extra_files: Callable[[str], None] | None = None
    # Runs one case on the loaded model: (datasets of the activation file, prompt text or None).
    runner: Callable[[nn.Module, Case, str], tuple[dict[str, np.ndarray], str | None]] | None = None

    def run_case(self, model: nn.Module, case: Case, model_dir: str) -> tuple[dict[str, np.ndarray], str | None]:
        return (self.runner or run_text_case)(model, case, model_dir)


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


def run_text_case(model: nn.Module, case: Case, _model_dir: str) -> tuple[dict[str, np.ndarray], None]:
    ids = random_ids(case, model.config.vocab_size, model.config.bos_token_id)
    return capture.run_text_model(model, ids), None


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

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("tiny-llama", seed=1001, build=build_tiny_llama, cases=TEXT_CASES),
    ModelSpec("tiny-qwen2", seed=1002, build=build_tiny_qwen2, cases=TEXT_CASES),
)
