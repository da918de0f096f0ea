"""Runs a golden checkpoint with hooks and writes one activation file (GoldenData/README.md, format 2).

Capture points (batch dimension dropped everywhere):
  hook_embed                    forward hook on `embed_tokens` (text models); for LLaVA a forward pre-hook on
                                the language model reading `inputs_embeds` (image features already merged)
  blocks.{l}.hook_resid_pre     forward pre-hook on decoder layer l (its `hidden_states` input)
  blocks.{l}.hook_attn_out      forward hook on layer l's `self_attn`, output[0] (after o_proj)
  blocks.{l}.attn.hook_pattern  forward hook on layer l's `self_attn`, output[1] (eager post-softmax
                                probabilities), checked equal to `output_attentions=True`'s tensors
  blocks.{l}.hook_resid_mid     resid_pre + attn_out, computed in torch
  blocks.{l}.hook_mlp_out       forward hook on layer l's `mlp`
  blocks.{l}.hook_resid_post    forward hook on decoder layer l (its output)
  ln_final.hook_normalized      forward hook on the final `norm`
  logits                        the model output's logits
"""
from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np
import torch
import transformers

import content_digests

FORMAT_VERSION = 2
SOURCE = f"transformers {transformers.__version__}, torch {torch.__version__}, eager, float32"


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _hidden_states_input(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _drop_batch(tensor: torch.Tensor, name: str) -> np.ndarray:
    if tensor.shape[0] != 1:
        raise ValueError(f"{name}: expected batch size 1, got shape {tuple(tensor.shape)}")
    return tensor[0].detach().to(torch.float32).contiguous().numpy()


class Recorder:
    """Registers the forward hooks and pre-hooks of the decoder stack; always removed by `close`."""

    def __init__(self) -> None:
        self.values: dict[str, torch.Tensor] = {}
        self.handles: list[Any] = []

    def put(self, name: str, tensor: torch.Tensor) -> None:
        if name in self.values:
            raise RuntimeError(f"hook {name} fired twice")
        self.values[name] = tensor.detach().clone()

    def on_output(self, module: torch.nn.Module, name: str, index: int | None = None) -> None:
        def hook(_module, _args, output):
            self.put(name, _first(output) if index is None else output[index])
        self.handles.append(module.register_forward_hook(hook))

    def on_input(self, module: torch.nn.Module, name: str, key: str) -> None:
        def hook(_module, args, kwargs):
            self.put(name, args[0] if args else kwargs[key])
        self.handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def attach_decoder(self, decoder: torch.nn.Module, embed_from_inputs: bool) -> None:
        """`decoder` is the LlamaModel / Qwen2Model holding `embed_tokens`, `layers` and `norm`."""
        if embed_from_inputs:
            def embed_hook(_module, args, kwargs):
                embeds = kwargs.get("inputs_embeds")
                if embeds is None:
                    raise RuntimeError("language model was called without inputs_embeds")
                self.put("hook_embed", embeds)
            self.handles.append(decoder.register_forward_pre_hook(embed_hook, with_kwargs=True))
        else:
            self.on_output(decoder.embed_tokens, "hook_embed")
        for index, layer in enumerate(decoder.layers):
            prefix = f"blocks.{index}"
            self.on_input(layer, f"{prefix}.hook_resid_pre", "hidden_states")
            self.on_output(layer, f"{prefix}.hook_resid_post")
            self.on_output(layer.self_attn, f"{prefix}.hook_attn_out", index=0)
            self.on_output(layer.self_attn, f"{prefix}.attn.hook_pattern", index=1)
            self.on_output(layer.mlp, f"{prefix}.hook_mlp_out")
        self.on_output(decoder.norm, "ln_final.hook_normalized")

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def check_patterns(patterns: list[torch.Tensor], attentions: tuple[torch.Tensor, ...]) -> None:
    """Hooked patterns must be the `output_attentions` tensors and causal probability rows."""
    if len(patterns) != len(attentions):
        raise RuntimeError(f"{len(patterns)} hooked patterns but {len(attentions)} output attentions")
    for layer, (hooked, returned) in enumerate(zip(patterns, attentions)):
        if not torch.equal(hooked, returned):
            raise RuntimeError(f"layer {layer}: hooked pattern differs from output_attentions")
        if (hooked < 0).any():
            raise RuntimeError(f"layer {layer}: negative attention probability")
        sums = hooked.sum(dim=-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            raise RuntimeError(f"layer {layer}: attention rows do not sum to 1 (not post-softmax?)")
        t = hooked.shape[-1]
        upper = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        if hooked[..., upper].abs().max() != 0:
            raise RuntimeError(f"layer {layer}: attention to future positions is not zero")


def decoder_activations(recorder: Recorder, num_layers: int, logits: torch.Tensor,
                        attentions: tuple[torch.Tensor, ...],
                        added: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, np.ndarray]:
    """Orders the recorded decoder tensors in the file layout, deriving resid_mid and checking consistency.
    `added[l]` = (row mask, rows): what the model adds to the residual stream between layer l and l + 1
    (Qwen3-VL's DeepStack features at the image rows)."""
    v = recorder.values
    out: dict[str, np.ndarray] = {"hook_embed": _drop_batch(v["hook_embed"], "hook_embed")}
    if not torch.equal(v["hook_embed"], v["blocks.0.hook_resid_pre"]):
        raise RuntimeError("hook_embed differs from blocks.0.hook_resid_pre")
    for layer in range(num_layers):
        p = f"blocks.{layer}"
        resid_pre, attn_out = v[f"{p}.hook_resid_pre"], v[f"{p}.hook_attn_out"]
        resid_mid = resid_pre + attn_out
        mlp_out, resid_post = v[f"{p}.hook_mlp_out"], v[f"{p}.hook_resid_post"]
        if not torch.equal(resid_mid + mlp_out, resid_post):
            raise RuntimeError(f"{p}: resid_mid + mlp_out differs from resid_post")
        following = resid_post
        if added is not None and layer in added:
            mask, rows = added[layer]
            following = resid_post.clone()
            following[0, mask] = resid_post[0, mask] + rows
        if layer + 1 < num_layers and not torch.equal(following, v[f"blocks.{layer + 1}.hook_resid_pre"]):
            raise RuntimeError(f"{p}: resid_post differs from the next layer's resid_pre")
        out[f"{p}.hook_resid_pre"] = _drop_batch(resid_pre, f"{p}.hook_resid_pre")
        out[f"{p}.hook_attn_out"] = _drop_batch(attn_out, f"{p}.hook_attn_out")
        out[f"{p}.hook_resid_mid"] = _drop_batch(resid_mid, f"{p}.hook_resid_mid")
        out[f"{p}.hook_mlp_out"] = _drop_batch(mlp_out, f"{p}.hook_mlp_out")
        out[f"{p}.hook_resid_post"] = _drop_batch(resid_post, f"{p}.hook_resid_post")
        out[f"{p}.attn.hook_pattern"] = _drop_batch(v[f"{p}.attn.hook_pattern"], f"{p}.attn.hook_pattern")
    check_patterns([v[f"blocks.{l}.attn.hook_pattern"] for l in range(num_layers)], attentions)
    out["ln_final.hook_normalized"] = _drop_batch(v["ln_final.hook_normalized"], "ln_final.hook_normalized")
    out["logits"] = _drop_batch(logits, "logits")
    return out


def run_text_model(model: torch.nn.Module, input_ids: np.ndarray) -> dict[str, np.ndarray]:
    """One eager float32 forward of a *ForCausalLM with every decoder hook recorded."""
    recorder = Recorder()
    try:
        recorder.attach_decoder(model.model, embed_from_inputs=False)
        with torch.no_grad():
            output = model(input_ids=torch.from_numpy(input_ids)[None, :], output_attentions=True,
                           use_cache=False)
    finally:
        recorder.close()
    activations = {"input_ids": input_ids.astype(np.int64)}
    activations.update(decoder_activations(recorder, len(model.model.layers), output.logits,
                                           output.attentions))
    return activations


def write_h5(path: str, attributes: dict[str, Any], datasets: dict[str, np.ndarray]) -> None:
    """Writes an activation file deterministically (no timestamps, fixed format versions)."""
    with h5py.File(path, "w", libver=("earliest", "v110"), track_order=False) as f:
        for key, value in attributes.items():
            if isinstance(value, str):
                f.attrs[key] = value
            elif isinstance(value, (int, np.integer)):
                f.attrs[key] = np.int64(value)
            else:
                raise TypeError(f"attribute {key}: unsupported type {type(value).__name__}")
        for name, array in datasets.items():
            if array.dtype not in (np.float32, np.int64):
                raise TypeError(f"dataset {name}: dtype {array.dtype} is not float32 or int64")
            f.create_dataset(name, data=np.ascontiguousarray(array), track_times=False)
        content_digests.add(f)


def file_attributes(model_id: str, model_type: str, seed: int, case: str,
                    prompt: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "model_type": model_type,
        "source": SOURCE,
        "seed": seed,
        "case": case,
    }
    if prompt is not None:
        attributes["prompt"] = prompt
    return attributes


def ensure_parent(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
