#!/usr/bin/env python3
"""The analysis set of `arbiter verify`, written the way a PyTorch user would: transformers + forward hooks.

    analysis_torch.py --model DIR --data DIR [--json FILE] [--resume] [--arbiter BIN] [--arbiter-results FILE]

The reference for issue #6 ("≥ 10× faster than PyTorch+hooks"): the same computations as
Sources/ArbiterAnalyses (AnalysisSuite and the files next to it, docs/metrics.md) on the same items:

- model: `LlavaForConditionalGeneration`, float32, eager attention, `torch.set_num_threads(2)`; tokenizer.json
  through `tokenizers`, the folder's preprocessor through `AutoImageProcessor` (CLIPImageProcessor; the PIL
  backend when torchvision is absent, as in Tools/requirements.txt); prompt spans from prompt_layout.json
  built as Sources/ArbiterModels/Prompt/PromptBuilder.swift does (pieces tokenized as one text, each span's
  boundary the token count of the prefix).
- data: a folder from `arbiter data generate --count 240 --seed 260203677 --image-size <the model's vision
  image_size> --out DIR` (the items `arbiter verify` builds in memory); items turned into probe items as
  ProbeItems.swift does (no_instruction skipped, non-conflict items scored against another answer of the task).
- hooks, one set installed once on the model and switched per run:
    * `self_attn` forward-pre-hook (with kwargs): adds the knockout mask (−inf on blocked query/key pairs,
      never the diagonal) to the 4-D causal mask for the layers of the window;
    * `o_proj` forward-pre-hook: zeroes (block) or scales (amplify) heads in its input, i.e. per-head z
      before the output projection; in the baseline it records z at the last position (per-head results);
    * `self_attn` / `mlp` / decoder-layer forward hooks record attention patterns (eager attention returns
      them), attention and MLP outputs at the last position, and the residual stream.
- every intervened setting is its own forward pass with batch size 1. By default that is the whole model
  (vision tower, projector, every decoder layer: what `model(**inputs)` does). `--resume` instead runs the
  decoder layers from the first touched layer on the residual cached by the baseline pass (what Arbiter does).
- splits, bootstrap CIs and random head sets use Arbiter's SplitMix64 streams and Swift's shuffle, so the
  calibration/held-out split and the CIs are the same as Arbiter's (up to float summation order).

Prints progress, headline numbers and the total wall time (last line: `{"seconds": ..., ...}` JSON), and
with `--arbiter BIN` cross-checks every item's baseline following score s against `arbiter run --dump`
(max |Δs|); with `--arbiter-results results.json` (from `arbiter verify --out`) it also compares the split and
the headline statistics.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
EDGES = [("image", "text"), ("image", "last"), ("context", "last"), ("context", "instruction"),
         ("image", "instruction"), ("image", "context"), ("instruction", "last")]
TARGETS = ["image", "text"]


def log(message: str) -> None:
    print(message, flush=True)


# --- Arbiter's seeded randomness (Sources/ArbiterData/Random.swift, Statistics.swift) -------------------


class SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + GAMMA) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        """Swift's `RandomNumberGenerator.next(upperBound:)` (Lemire's nearly divisionless method)."""
        m = self.next() * bound
        if (m & MASK64) < bound:
            t = ((1 << 64) - bound) % bound
            while (m & MASK64) < t:
                m = self.next() * bound
        return m >> 64


def swift_shuffled(values: list, rng: SplitMix64) -> list:
    """`Array.shuffled(using:)` of the Swift standard library."""
    out = list(values)
    amount, current = len(out), 0
    while amount > 1:
        r = rng.below(amount)
        amount -= 1
        out[current], out[current + r] = out[current + r], out[current]
        current += 1
    return out


def splitmix_stream(seed: int, count: int) -> np.ndarray:
    """The first `count` outputs of SplitMix64(seed), vectorised (the generator is counter based)."""
    with np.errstate(over="ignore"):
        k = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(seed & MASK64) + k * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def estimate(value: float, stats: np.ndarray, count: int) -> dict:
    stats = np.sort(stats)
    r = len(stats)
    return {"value": float(value), "low": float(stats[int(0.025 * (r - 1))]), "high": float(stats[int(0.975 * (r - 1))]),
            "count": count}


def nan_estimate(count: int = 0) -> dict:
    return {"value": math.nan, "low": math.nan, "high": math.nan, "count": count}


def bootstrap(values, seed: int, resamples: int = 1000) -> dict:
    """Estimate.bootstrap with the mean."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return nan_estimate()
    idx = (splitmix_stream(seed, resamples * len(v)) % np.uint64(len(v))).astype(np.int64).reshape(resamples, len(v))
    return estimate(v.mean(), v[idx].mean(axis=1), len(v))


def bootstrap_ratio(a, b, seed: int, resamples: int = 1000) -> dict:
    """Estimate.bootstrapRatio: Σa / Σ|b| over the same resampled indices."""
    a, b = np.asarray(a, dtype=np.float64), np.abs(np.asarray(b, dtype=np.float64))
    if len(a) == 0:
        return nan_estimate()
    idx = (splitmix_stream(seed, resamples * len(a)) % np.uint64(len(a))).astype(np.int64).reshape(resamples, len(a))
    num, den = a[idx].sum(axis=1), b[idx].sum(axis=1)
    stats = np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den))
    return estimate(0.0 if b.sum() == 0 else a.sum() / b.sum(), stats, len(a))


def two_sample_difference(a, b, seed: int, resamples: int = 500) -> dict:
    """AttentionRouting.twoSampleDifference: mean(a) − mean(b), each group resampled on its own."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return nan_estimate(len(a) + len(b))
    draws = splitmix_stream(seed, resamples * (len(a) + len(b))).reshape(resamples, len(a) + len(b))
    ia = (draws[:, :len(a)] % np.uint64(len(a))).astype(np.int64)
    ib = (draws[:, len(a):] % np.uint64(len(b))).astype(np.int64)
    return estimate(a.mean() - b.mean(), a[ia].mean(axis=1) - b[ib].mean(axis=1), len(a) + len(b))


def u64(x: int) -> int:
    return x & MASK64


# --- items and prompts (ProbeItems.swift, PromptBuilder.swift, ModelSession.swift) ----------------------


def stable_hash(text: str) -> int:
    h = 1469598103934665603
    for byte in text.encode():
        h = ((h ^ byte) * 1099511628211) & MASK64
    return h >> 1


def probe_items(data_dir: str) -> list[dict]:
    with open(os.path.join(data_dir, "dataset.json")) as f:
        items = json.load(f)["items"]
    answers: dict[str, dict[str, list[str]]] = {}
    for it in items:
        answers.setdefault(it["task"], {})[it["answer_img"]] = it["answer_img_candidate_list"]
        answers.setdefault(it["task"], {})[it["answer_text"]] = it["answer_text_candidate_list"]
    out = []
    for it in items:
        kind = it["kind"]
        if kind == "no_instruction":
            continue
        target = None
        if kind == "conflict":
            if it.get("target") not in ("image", "text"):
                continue
            target = it["target"]
            img, txt = it["answer_img_candidate_list"], it["answer_text_candidate_list"]
            instructed, competitor = (img, txt) if target == "image" else (txt, img)
        else:
            expected = it["answer_text"] if kind == "text_only" else it["answer_img"]
            instructed = it["answer_text_candidate_list"] if kind == "text_only" else it["answer_img_candidate_list"]
            task_answers = answers.get(it["task"], {})
            others = sorted(k for k in task_answers if k != expected and k != it["answer_text"])
            if kind == "image_only" and it["answer_text"] != expected:
                other = it["answer_text"]
            else:
                other = others[stable_hash(it["id"]) % len(others)] if others else None
            if other is None or other not in task_answers:
                continue
            competitor = task_answers[other]
        out.append({"id": it["id"], "kind": kind, "target": target,
                     "fields": {k: it.get(k) for k in ("context", "instruction", "question", "constraint")},
                     "image": os.path.join(data_dir, it["image"]) if it.get("image") else None,
                     "instructed": instructed, "competitor": competitor})
    return out


class Prompter:
    """PromptBuilder + ModelSession.prepare/firstTokens with the `tokenizers` library."""

    def __init__(self, model_dir: str, image_tokens: int) -> None:
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        layout_path = os.path.join(model_dir, "prompt_layout.json")
        if not os.path.exists(layout_path):
            raise SystemExit(f"{model_dir} has no prompt_layout.json (the built-in llava-1.5 layout is not reproduced here)")
        with open(layout_path) as f:
            self.layout = json.load(f)
        self.image_token = self.layout.get("image_token", "<image>")
        self.add_special = self.layout.get("add_special_tokens", True)
        self.answer_prefix = self.layout.get("answer_prefix", " ")
        self.image_tokens = image_tokens

    def raw(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def with_special(self, raw_text: str, raw: list[int]) -> tuple[list[int], int]:
        if not self.add_special:
            return raw, 0
        full = self.tok.encode(raw_text, add_special_tokens=True).ids
        for off in range(len(full) - len(raw) + 1):
            if full[off:off + len(raw)] == raw:
                return full, off
        raise ValueError("post-processor output does not contain the raw encoding")

    def build(self, fields: dict, has_image: bool) -> tuple[list[int], dict[str, list[int]], str]:
        def present(slot: str) -> bool:
            return has_image if slot == "image" else bool(fields.get(slot))
        texts, names = [], []
        for piece in self.layout["pieces"]:
            slot = piece.get("slot")
            if slot is not None:
                if not present(slot):
                    continue
                value = self.image_token * self.image_tokens if slot == "image" else fields[slot]
                texts.append((piece.get("prefix") or "") + value)
                names.append(slot)
            else:
                if piece.get("with") and not present(piece["with"]):
                    continue
                texts.append(piece["text"])
                names.append(piece.get("span"))
        text = "".join(texts)
        raw = self.raw(text)
        ids, offset = self.with_special(text, raw)
        bounds, prefix = [0], ""
        for i, piece in enumerate(texts):
            prefix += piece
            pre = raw if i == len(texts) - 1 else self.raw(prefix)
            if len(pre) > len(raw) or raw[:len(pre)] != pre or len(pre) < bounds[-1]:
                raise ValueError(f"piece {i} ends inside a token")
            bounds.append(len(pre))
        spans: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            if name:
                spans.setdefault(name, []).extend(range(offset + bounds[i], offset + bounds[i + 1]))
        spans = {k: sorted(set(v)) for k, v in spans.items()}
        spans.setdefault("last", [len(ids) - 1])
        image = set(spans.get("image", []))
        spans["text"] = [p for p in range(len(ids)) if p not in image]
        return ids, spans, text

    def first_tokens(self, answers: list[str], text: str, n_ids: int) -> list[int]:
        out = []
        prompt_raw = self.raw(text)
        for answer in answers:
            if not answer:
                continue
            raw = self.raw(text + self.answer_prefix + answer)
            full, _ = self.with_special(text + self.answer_prefix + answer, raw)
            if raw[:len(prompt_raw)] == prompt_raw and len(raw) > len(prompt_raw) and len(full) > n_ids:
                tid = raw[len(prompt_raw)]
            else:
                alone = self.raw(self.answer_prefix + answer)
                if not alone:
                    continue
                tid = alone[0]
            if tid not in out:
                out.append(tid)
        return out


# --- scoring (Scoring.swift) ----------------------------------------------------------------------------


def following_score(logits: np.ndarray, instructed: list[int], competitor: list[int]) -> float:
    """s = log p_I − log p_C in float64 (the softmax normaliser cancels)."""
    x = logits.astype(np.float64)

    def logmass(ids):
        v = x[ids]
        m = v.max()
        return m + math.log(np.exp(v - m).sum())
    return logmass(instructed) - logmass(competitor)


def ds_dlogits(logits: np.ndarray, instructed: list[int], competitor: list[int]) -> list[tuple[int, float]]:
    x = logits.astype(np.float64)
    out = []
    for ids, sign in ((instructed, 1.0), (competitor, -1.0)):
        e = np.exp(x[ids] - x[ids].max())
        out += [(k, sign * w) for k, w in zip(ids, e / e.sum())]
    return out


# --- the model with hooks -------------------------------------------------------------------------------


class HookedLlava:
    """LlavaForConditionalGeneration with forward hooks that record (baseline) or edit (interventions)."""

    def __init__(self, model_dir: str) -> None:
        from transformers import AutoImageProcessor, LlavaForConditionalGeneration
        self.model = LlavaForConditionalGeneration.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="eager").eval()
        self.processor = AutoImageProcessor.from_pretrained(model_dir)
        self.lm = self.model.model.language_model
        self.layers = list(self.lm.layers)
        tc = self.model.config.text_config
        self.n_layers, self.n_heads = len(self.layers), tc.num_attention_heads
        self.head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
        vc = self.model.config.vision_config
        grid = vc.image_size // vc.patch_size
        self.image_size = vc.image_size
        self.image_tokens = grid * grid + (1 if self.model.config.vision_feature_select_strategy == "full" else 0)
        self.record: dict | None = None      # baseline recording
        self.knockout: dict[int, torch.Tensor] = {}   # layer → additive [1, 1, T, T] mask
        self.heads: dict[int, tuple[list[int], float]] = {}  # layer → (heads, factor); factor 0 blocks
        for l, layer in enumerate(self.layers):
            layer.self_attn.register_forward_pre_hook(self._attn_pre(l), with_kwargs=True)
            layer.self_attn.register_forward_hook(self._attn_post(l))
            layer.self_attn.o_proj.register_forward_pre_hook(self._o_proj_pre(l))
            layer.mlp.register_forward_hook(self._mlp_post(l))
            layer.register_forward_hook(self._layer_post(l), with_kwargs=True)

    # hooks
    def _attn_pre(self, l):
        def hook(module, args, kwargs):
            if l in self.knockout:
                mask = kwargs.get("attention_mask")
                if mask is None or mask.dtype == torch.bool:
                    t = self.knockout[l].shape[-1]
                    causal = torch.full((t, t), float("-inf")).triu(1)[None, None]
                    mask = causal if mask is None else causal.masked_fill(~mask, float("-inf"))
                kwargs["attention_mask"] = mask + self.knockout[l]
                return args, kwargs
        return hook

    def _attn_post(self, l):
        def hook(module, args, output):
            if self.record is not None:
                self.record["attn_out"][l] = output[0][0, -1].detach().clone()
                self.record["pattern"][l] = output[1][0].detach()
        return hook

    def _o_proj_pre(self, l):
        def hook(module, args):
            z = args[0]
            if l in self.heads:
                heads, factor = self.heads[l]
                z = z.view(*z.shape[:-1], self.n_heads, self.head_dim).clone()
                z[..., heads, :] *= factor
                z = z.view(*z.shape[:-2], -1)
            if self.record is not None:
                self.record["z_last"][l] = z[0, -1].detach().clone()
            if l in self.heads:
                return (z,)
        return hook

    def _mlp_post(self, l):
        def hook(module, args, output):
            if self.record is not None:
                self.record["mlp_out"][l] = output[0, -1].detach().clone()
        return hook

    def _layer_post(self, l):
        def hook(module, args, kwargs, output):
            if self.record is not None:
                hidden = args[0] if args else kwargs["hidden_states"]
                self.record["resid_pre"][l] = hidden[0].detach().clone()
                self.record["resid_post"][l] = output[0].detach().clone()
        return hook

    # inputs
    def pixel_values(self, path: str | None):
        if path is None:
            return None
        from PIL import Image
        with Image.open(path) as image:
            return self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"].to(torch.float32)

    def clear(self) -> None:
        self.knockout, self.heads = {}, {}

    @torch.inference_mode()
    def forward_logits(self, sample: dict, resume_from: int | None = None, resid: torch.Tensor | None = None) -> np.ndarray:
        """Last-position logits: the whole model, or the decoder layers from `resume_from` on `resid`."""
        if resume_from is None:
            out = self.model(input_ids=sample["input_ids"], pixel_values=sample["pixel_values"], logits_to_keep=1,
                             use_cache=False)
            return out.logits[0, -1].numpy()
        t = resid.shape[0]
        hidden = resid[None]
        position_ids = torch.arange(t)[None]
        pos = self.lm.rotary_emb(hidden, position_ids=position_ids)
        mask = torch.full((t, t), torch.finfo(torch.float32).min).triu(1)[None, None]
        for layer in self.layers[resume_from:]:
            hidden = layer(hidden, attention_mask=mask, position_embeddings=pos, position_ids=position_ids)
        return self.model.lm_head(self.lm.norm(hidden[:, -1])).numpy()[0]

    @torch.inference_mode()
    def baseline(self, sample: dict) -> dict:
        L = self.n_layers
        self.record = {k: [None] * L for k in ("attn_out", "pattern", "z_last", "mlp_out", "resid_pre", "resid_post")}
        try:
            logits = self.forward_logits(sample)
        finally:
            rec, self.record = self.record, None
        return {"logits": logits, **rec}


# --- the analyses ---------------------------------------------------------------------------------------


def default_window(layers: int) -> int:
    w = max(1, min(7, int(math.floor(layers / 4 + 0.5))))
    return w if w % 2 == 1 else w - 1


def window(layer: int, width: int, layers: int) -> list[int]:
    half = width // 2
    return list(range(max(0, layer - half), min(layers - 1, layer + half) + 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="LLaVA-format model folder")
    parser.add_argument("--data", required=True, help="dataset folder from `arbiter data generate`")
    parser.add_argument("--seed", type=int, default=260203677)
    parser.add_argument("--random-sets", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true",
                        help="resume intervened runs from the cached residual at the first touched layer "
                             "(default: a whole forward per setting)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--arbiter", metavar="BIN", help="cross-check each item's baseline s against `BIN run --dump`")
    parser.add_argument("--arbiter-results", metavar="FILE", help="results.json of `arbiter verify --out` to compare with")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    started = time.time()
    seed = args.seed
    hm = HookedLlava(args.model)
    L, H = hm.n_layers, hm.n_heads
    log(f"model {args.model}: {L} layers x {H} heads, {hm.image_tokens} image tokens, processor "
        f"{type(hm.processor).__name__}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{'resume from the first touched layer' if args.resume else 'whole forward per setting'}")
    prompter = Prompter(args.model, hm.image_tokens)

    # samples (AnalysisSample; bad ones skipped as verify does)
    samples, skipped = [], []
    for item in probe_items(args.data):
        ids, spans, text = prompter.build(item["fields"], item["image"] is not None)
        a = prompter.first_tokens(item["instructed"], text, len(ids))
        b = prompter.first_tokens(item["competitor"], text, len(ids))
        shared = set(a) & set(b)
        a, b = [x for x in a if x not in shared], [x for x in b if x not in shared]
        if not a or not b:
            skipped.append(item["id"])
            continue
        samples.append({**item, "ids": ids, "spans": spans, "text": text, "instructed_ids": a, "competitor_ids": b,
                        "input_ids": torch.tensor([ids]), "pixel_values": hm.pixel_values(item["image"])})
    log(f"{len(samples)} samples ({len(skipped)} skipped) from {args.data}")

    def is_conflict(i):
        return samples[i]["kind"] == "conflict" and samples[i]["target"] is not None

    # split (AnalysisSuite.run)
    rng = SplitMix64(seed)
    calibration, held_out = [], []
    for target in TARGETS:
        members = swift_shuffled([i for i in range(len(samples)) if is_conflict(i) and samples[i]["target"] == target], rng)
        k = int(math.floor(len(members) * 0.5 + 0.5))
        calibration += members[:k]
        held_out += members[k:]
    held_out += [i for i in range(len(samples)) if samples[i]["kind"] != "conflict"]
    calibration.sort()
    held_out.sort()

    # baseline passes: score, lens readouts, routing masses, DLA inputs (the patterns are reduced at once)
    W_U = hm.model.lm_head.weight.detach()
    gamma = hm.lm.norm.weight.detach().double()
    eps = hm.lm.norm.variance_epsilon
    W_O = [layer.self_attn.o_proj.weight.detach() for layer in hm.layers]
    base = []
    log(f"baseline passes over {len(samples)} samples")
    t0 = time.time()
    for n, smp in enumerate(samples):
        rec = hm.baseline(smp)
        s = following_score(rec["logits"], smp["instructed_ids"], smp["competitor_ids"])
        b = {"s": s, "logits": rec["logits"], "resid_pre": rec["resid_pre"] if args.resume else None}
        last = len(smp["ids"]) - 1
        instr = smp["spans"].get("instruction", [])
        readout = instr + [last]
        with torch.inference_mode():
            lens = []
            for l in range(L):
                logits = hm.model.lm_head(hm.lm.norm(rec["resid_post"][l][readout])).numpy()
                lens.append([following_score(row, smp["instructed_ids"], smp["competitor_ids"]) for row in logits])
        b["lens"], b["n_instr"] = lens, len(instr)
        # routing: attention mass on image / context keys (k ≤ q), averaged over heads and query positions
        image, context = smp["spans"].get("image", []), smp["spans"].get("context", [])
        b["routing"] = {}
        for span in ("instruction", "last"):
            q = smp["spans"].get(span, [])
            if not q or not image or not context:
                continue
            qt = torch.tensor(q)
            vals = []
            for l in range(L):
                p = rec["pattern"][l][:, qt].double()  # [H, Q, T]
                mi = (p[:, :, image] * (torch.tensor(image)[None, :] <= qt[:, None])).sum().item() / (H * len(q))
                mc = (p[:, :, context] * (torch.tensor(context)[None, :] <= qt[:, None])).sum().item() / (H * len(q))
                vals.append((mi / (mi + mc) if mi + mc > 0 else 0.5, mi + mc))
            b["routing"][span] = vals
        # DLA components at the last position
        b["attn_out"] = torch.stack(rec["attn_out"]).double()
        b["mlp_out"] = torch.stack(rec["mlp_out"]).double()
        b["head_results"] = torch.stack([
            torch.einsum("hd,ohd->ho", rec["z_last"][l].view(H, hm.head_dim),
                         W_O[l].view(-1, H, hm.head_dim)) for l in range(L)]).double()  # [L, H, d]
        b["final_resid"] = rec["resid_post"][L - 1][last].double()
        base.append(b)
        if (n + 1) % 50 == 0:
            log(f"  baseline {n + 1}/{len(samples)} ({time.time() - t0:.1f} s)")

    def follows(s):
        return s > 0

    # 1. modality following (ModalityFollowing.measure, seed + 1)
    conflict = [i for i in range(len(samples)) if is_conflict(i)]
    following = {"ratio": {}, "counts": {}, "meanScore": {}, "accuracy": {}}
    for off, (name, group) in enumerate([("image", [i for i in conflict if samples[i]["target"] == "image"]),
                                         ("text", [i for i in conflict if samples[i]["target"] == "text"]),
                                         ("overall", conflict)]):
        f = [1.0 if follows(base[i]["s"]) else 0.0 for i in group]
        following["ratio"][name] = bootstrap(f, u64(seed + 1 + off))
        following["counts"][name] = [int(sum(f)), len(f)]
        following["meanScore"][name] = bootstrap([base[i]["s"] for i in group], u64(seed + 1 + 10 + off))
    for off, kind in enumerate(["consistent", "image_only", "text_only"]):
        group = [i for i in range(len(samples)) if samples[i]["kind"] == kind]
        if group:
            following["accuracy"][kind] = bootstrap([1.0 if follows(base[i]["s"]) else 0.0 for i in group],
                                                    u64(seed + 1 + 20 + off))

    # intervened runs
    runs = 0

    def score(i: int, start: int) -> float:
        nonlocal runs
        runs += 1
        smp = samples[i]
        if args.resume:
            logits = hm.forward_logits(smp, resume_from=start, resid=base[i]["resid_pre"][start])
        else:
            logits = hm.forward_logits(smp)
        return following_score(logits, smp["instructed_ids"], smp["competitor_ids"])

    # 2. information flow by attention knockout (InformationFlow.measure, seed + 2)
    width = default_window(L)
    flow_idx = held_out + calibration
    flow = {"window": width, "shift": {}}
    for e, (keys, queries) in enumerate(EDGES):
        name = f"{keys}->{queries}"
        log(f"knockout {name} ({e + 1}/{len(EDGES)})  [{time.time() - started:.0f} s]")
        usable = [i for i in flow_idx if is_conflict(i) and samples[i]["spans"].get(keys) and samples[i]["spans"].get(queries)]
        delta = np.zeros((L, len(usable)))
        for k, i in enumerate(usable):
            t = len(samples[i]["ids"])
            qs, ks = samples[i]["spans"][queries], samples[i]["spans"][keys]
            ko = torch.zeros(1, 1, t, t)
            ko[0, 0, torch.tensor(qs)[:, None], torch.tensor(ks)[None, :]] = float("-inf")
            ko[0, 0, torch.arange(t), torch.arange(t)] = 0.0  # the self edge is never blocked
            for layer in range(L):
                w = window(layer, width, L)
                hm.knockout = {x: ko for x in w}
                delta[layer, k] = score(i, w[0]) - base[i]["s"]
            hm.clear()
        by_target = {}
        for target in TARGETS:
            members = [k for k, i in enumerate(usable) if samples[i]["target"] == target]
            bs = [base[usable[k]]["s"] for k in members]
            by_target[target] = [bootstrap_ratio(delta[layer, members], bs, u64(seed + 2 + e * 1000 + layer), 500)
                                 for layer in range(L)]
        flow["shift"][name] = by_target

    # 3. attention routing (AttentionRouting.measure, seed + 3)
    log("attention routing")
    rseed = u64(seed + 3)
    routing = {"imageShare": {}, "cueMass": {}, "selectivity": {}}
    for qi, span in enumerate(["instruction", "last"]):
        members = [i for i in conflict if span in base[i]["routing"]]
        share = {t: [[base[i]["routing"][span][l][0] for i in members if samples[i]["target"] == t] for l in range(L)] for t in TARGETS}
        mass = {t: [[base[i]["routing"][span][l][1] for i in members if samples[i]["target"] == t] for l in range(L)] for t in TARGETS}
        routing["imageShare"][span] = {t: [bootstrap(share[t][l], u64(rseed + qi * 10000 + l), 500) for l in range(L)] for t in TARGETS}
        routing["cueMass"][span] = {t: [bootstrap(mass[t][l], u64(rseed + qi * 10000 + 500 + l), 500) for l in range(L)] for t in TARGETS}
        routing["selectivity"][span] = [two_sample_difference(share["image"][l], share["text"][l], u64(rseed + qi * 10000 + 900 + l))
                                        for l in range(L)]

    # 4. logit lens (LogitLens.measure, seed + 4)
    log("logit lens")
    lseed = u64(seed + 4)
    lens = {"agreement": {}, "meanScore": {}}
    for r, readout in enumerate(["instruction", "last"]):
        members = [i for i in conflict if readout == "last" or base[i]["n_instr"] > 0]
        per = []
        for i in members:
            b = base[i]
            per.append([float(np.mean(b["lens"][l][:b["n_instr"]])) if readout == "instruction" else b["lens"][l][-1]
                        for l in range(L)])
        per = np.array(per).reshape(len(members), L)
        final = np.array([follows(base[i]["s"]) for i in members])
        lens["agreement"][readout] = [bootstrap(((per[:, l] > 0) == final).astype(float), u64(lseed + r * 1000 + l), 500)
                                      for l in range(L)]
        lens["meanScore"][readout] = {t: [bootstrap(per[[k for k, i in enumerate(members) if samples[i]["target"] == t], l],
                                                    u64(lseed + r * 1000 + 500 + l), 500) for l in range(L)] for t in TARGETS}

    # 5. direct logit attribution (Attribution.measure, seed + 5 on all, seed + 6 on the calibration split)
    log("direct logit attribution")

    def attribution(indices: list[int], aseed: int) -> dict:
        conf = [i for i in indices if is_conflict(i)]
        attn, mlp, heads = np.zeros((len(conf), L)), np.zeros((len(conf), L)), np.zeros((L, H))
        for n, i in enumerate(conf):
            b = base[i]
            x = b["final_resid"]
            rms = math.sqrt(float((x * x).sum()) / x.shape[0] + eps)
            g = torch.zeros_like(x)
            for k, wgt in ds_dlogits(b["logits"], samples[i]["instructed_ids"], samples[i]["competitor_ids"]):
                g += wgt * W_U[k].double()
            g = g * gamma / rms
            attn[n] = (b["attn_out"] @ g).numpy()
            mlp[n] = (b["mlp_out"] @ g).numpy()
            heads += (b["head_results"] @ g).numpy()
        deep = L // 2
        out = {"attention": {}, "mlp": {}, "deepMLPTotal": {}, "deepAttentionTotal": {}, "deepStart": deep,
               "heads": (heads / len(conf)).tolist()}
        for gi, group in enumerate(["image", "text", "overall"]):
            m = [n for n, i in enumerate(conf) if group == "overall" or samples[i]["target"] == group]
            out["attention"][group] = [bootstrap(attn[m, l], u64(aseed + gi * 1000 + l), 500) for l in range(L)]
            out["mlp"][group] = [bootstrap(mlp[m, l], u64(aseed + gi * 1000 + 500 + l), 500) for l in range(L)]
            out["deepMLPTotal"][group] = bootstrap(mlp[m, deep:].sum(axis=1), u64(aseed + gi * 1000 + 999))
            out["deepAttentionTotal"][group] = bootstrap(attn[m, deep:].sum(axis=1), u64(aseed + gi * 1000 + 998))
        return out

    attr = attribution(list(range(len(samples))), u64(seed + 5))
    cal_attr = attribution(calibration, u64(seed + 6))

    # 6. heads: causal single-head ablation ranking on the calibration split (Heads.rank)
    cal_conflict = [i for i in calibration if is_conflict(i)]
    causal = np.zeros((L, H))
    for l in range(L):
        log(f"single-head ablation, layer {l + 1}/{L}  [{time.time() - started:.0f} s]")
        for h in range(H):
            hm.heads = {l: ([h], 0.0)}
            causal[l, h] = float(np.mean([base[i]["s"] - score(i, l) for i in cal_conflict]))
    hm.clear()
    all_heads = [(l, h) for l in range(L) for h in range(H)]
    causal_order = sorted(all_heads, key=lambda x: (-causal[x], x))
    cal_heads = np.array(cal_attr["heads"])
    attribution_order = sorted(all_heads, key=lambda x: (-cal_heads[x], x))
    k_top = max(1, math.ceil(0.05 * len(all_heads)))
    top = causal_order[:k_top]
    overlap = len(set(top) & set(attribution_order[:k_top])) / k_top

    # 7. blocking and amplification (Heads.intervene, seed + 7)
    def set_heads(heads, factor):
        hm.heads = {}
        for l, h in heads:
            hm.heads.setdefault(l, ([], factor))[0].append(h)

    def mfr_under(indices, heads, factor):
        if not indices:
            return 0.0
        set_heads(heads, factor)
        start = min(l for l, _ in heads)
        f = [follows(score(i, start)) for i in indices]
        hm.clear()
        return sum(f) / len(f)

    ho_conflict = [i for i in held_out if is_conflict(i)]
    ho_consistent = [i for i in held_out if samples[i]["kind"] == "consistent"]
    base_mfr = sum(follows(base[i]["s"]) for i in ho_conflict) / max(len(ho_conflict), 1)
    log(f"blocking the top {k_top} heads  [{time.time() - started:.0f} s]")
    blocked_mfr = mfr_under(ho_conflict, top, 0.0)
    rng = SplitMix64(u64(seed + 7))
    random_sets = [swift_shuffled(causal_order, rng)[:k_top] for _ in range(args.random_sets)]
    random_drops = []
    for k, hs in enumerate(random_sets):
        log(f"blocking random head set {k + 1}/{len(random_sets)}")
        m = mfr_under(ho_conflict, hs, 0.0)
        random_drops.append((base_mfr - m) / base_mfr if base_mfr > 0 else 0.0)
    before = after = None
    if ho_consistent:
        before = sum(follows(base[i]["s"]) for i in ho_consistent) / len(ho_consistent)
        after = mfr_under(ho_consistent, top, 0.0)
    grid = [1.5, 2, 3, 4, 6]
    cal_failed = [i for i in cal_conflict if not follows(base[i]["s"])]
    alpha, best = grid[0], -1.0
    if cal_failed:
        for a in grid:
            log(f"amplification alpha={a} on {len(cal_failed)} calibration failures")
            fixed = mfr_under(cal_failed, top, float(np.float32(a)))
            if fixed > best:
                best, alpha = fixed, a
    failed = [i for i in ho_conflict if not follows(base[i]["s"])]
    fix = mfr_under(failed, top, float(np.float32(alpha))) if failed else math.nan
    random_fix = []
    for k, hs in enumerate(random_sets):
        log(f"amplifying random head set {k + 1}/{len(random_sets)}")
        random_fix.append(mfr_under(failed, hs, float(np.float32(alpha))) if failed else math.nan)
    interventions = {"heads": [f"{l}.{h}" for l, h in top], "baselineMFR": base_mfr, "blockedMFR": blocked_mfr,
                     "relativeDrop": (base_mfr - blocked_mfr) / base_mfr if base_mfr > 0 else 0.0,
                     "randomRelativeDrops": random_drops, "consistentAccuracyBefore": before,
                     "consistentAccuracyAfter": after, "alpha": alpha, "alphaGrid": grid, "failedCount": len(failed),
                     "amplifiedFixRate": fix, "randomFixRates": random_fix, "heldOutCount": len(ho_conflict)}
    seconds = time.time() - started

    # headline numbers
    log("")
    log(f"== PyTorch+hooks analysis of {os.path.basename(os.path.normpath(args.model))}: {seconds:.1f} s wall, "
        f"{runs} intervened forward passes ({'resumed' if args.resume else 'whole model each'})")
    for t in ("image", "text", "overall"):
        e, c = following["ratio"][t], following["counts"][t]
        log(f"  MFR follow-{t}: {e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}] ({c[0]}/{c[1]})")
    for name, by_target in flow["shift"].items():
        parts = []
        for t in TARGETS:
            v = [e["value"] for e in by_target[t]]
            lo = int(np.argmin(v))
            parts.append(f"{t}: min {v[lo]:+.3f} @ layer {lo}")
        log(f"  knockout {name:<22} " + ", ".join(parts))
    log(f"  top heads (causal): {', '.join(f'{l}.{h} ({causal[l, h]:+.3f})' for l, h in top)}; "
        f"overlap with DLA top: {overlap:.2f}")
    log(f"  blocking: MFR {base_mfr:.3f} -> {blocked_mfr:.3f}; random drops mean {np.mean(random_drops):+.3f}")
    log(f"  amplification: alpha {alpha}, fix rate {fix:.3f} on {len(failed)} failed (random mean {np.nanmean(random_fix) if random_fix else math.nan:.3f})")

    results = {"model": os.path.basename(os.path.normpath(args.model)), "dataset": args.data, "seed": seed,
               "resume": args.resume, "layers": L, "headsPerLayer": H,
               "calibrationIDs": [samples[i]["id"] for i in calibration],
               "heldOutIDs": [samples[i]["id"] for i in held_out], "skipped": skipped,
               "scores": {samples[i]["id"]: base[i]["s"] for i in range(len(samples))},
               "following": following, "flow": flow, "routing": routing, "lens": lens,
               "attribution": {k: v for k, v in attr.items()},
               "ranking": {"causal": causal.tolist(), "attribution": cal_attr["heads"],
                           "causalOrder": [f"{l}.{h}" for l, h in causal_order],
                           "attributionOrder": [f"{l}.{h}" for l, h in attribution_order], "overlap": overlap,
                           "calibrationCount": len(cal_conflict)},
               "interventions": interventions, "forwardPasses": runs, "seconds": seconds}

    checks = {}
    if args.arbiter_results:
        checks.update(compare_results(results, args.arbiter_results))
    if args.arbiter:
        checks.update(cross_check_scores(args.arbiter, args.model, samples, base))
    results["checks"] = checks
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)
    print(json.dumps({"seconds": seconds, "forward_passes": runs, "resume": args.resume, **checks}), flush=True)
    return 0


# --- cross-checks against Arbiter -----------------------------------------------------------------------


def compare_results(ours: dict, path: str) -> dict:
    with open(path) as f:
        theirs = json.load(f)
    if isinstance(theirs, dict) and "models" in theirs:  # arbiter verify's results.json: {"models": [{"results": ...}]}
        theirs = theirs["models"][0]
    theirs = theirs.get("results", theirs)
    out = {}
    same_split = ours["calibrationIDs"] == theirs.get("calibrationIDs") and ours["heldOutIDs"] == theirs.get("heldOutIDs")
    out["same_split_as_arbiter"] = same_split
    log(f"  split vs Arbiter: {'identical' if same_split else 'DIFFERENT'} "
        f"({len(ours['calibrationIDs'])}/{len(ours['heldOutIDs'])} vs {len(theirs.get('calibrationIDs', []))}/{len(theirs.get('heldOutIDs', []))})")
    f = theirs.get("following", {})
    diffs = []
    for t in ("image", "text", "overall"):
        a, b = ours["following"]["meanScore"][t]["value"], float(f.get("meanScore", {}).get(t, {}).get("value", "nan"))
        diffs.append(abs(a - b))
        log(f"  mean s follow-{t}: ours {a:.6f}, Arbiter {b:.6f}; counts ours {ours['following']['counts'][t]}, "
            f"Arbiter {f.get('counts', {}).get(t)}")
    out["max_abs_mean_s_diff"] = max(diffs)
    # knockout curves: max |ΔI| over edges, targets and layers
    worst = 0.0
    for name, by_target in ours["flow"]["shift"].items():
        for t, curve in by_target.items():
            ref = theirs.get("flow", {}).get("shift", {}).get(name, {}).get(t)
            if ref:
                worst = max(worst, max(abs(a["value"] - float(b["value"])) for a, b in zip(curve, ref)))
    out["max_abs_knockout_I_diff"] = worst
    ref_top = [f"{h['layer']}.{h['head']}" for h in theirs.get("interventions", {}).get("heads", [])]
    out["same_top_heads"] = ref_top == ours["interventions"]["heads"]
    log(f"  knockout I(l): max |diff| {worst:.2e}; top heads Arbiter {ref_top}, ours {ours['interventions']['heads']}")
    return out


def cross_check_scores(arbiter: str, model_dir: str, samples: list[dict], base: list[dict]) -> dict:
    """Each item through `arbiter run --dump`: same input ids, and s from Arbiter's last-position logits."""
    import h5py
    worst, id_mismatch = 0.0, 0
    with tempfile.TemporaryDirectory(prefix="analysis-torch-") as tmp:
        dump = os.path.join(tmp, "run.h5")
        for n, smp in enumerate(samples):
            cmd = [arbiter, "run", "--model", model_dir, "--dump", dump, "--top", "1"]
            for k in ("context", "instruction", "question", "constraint"):
                if smp["fields"].get(k):
                    cmd += [f"--{k}", smp["fields"][k]]
            if smp["image"]:
                cmd += ["--image", smp["image"]]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"arbiter run failed on {smp['id']}: {done.stderr.strip()[-300:]}")
            with h5py.File(dump, "r") as f:
                ids = np.asarray(f["input_ids"]).reshape(-1).tolist()
                logits = np.asarray(f["logits"])
            logits = logits.reshape(-1, logits.shape[-1])[-1]
            id_mismatch += ids != smp["ids"]
            s = following_score(logits, smp["instructed_ids"], smp["competitor_ids"])
            worst = max(worst, abs(s - base[n]["s"]))
    log(f"  cross-check vs `arbiter run`: {len(samples)} items, max |delta s| = {worst:.2e}, "
        f"{id_mismatch} with different input ids")
    return {"max_abs_s_diff": worst, "input_id_mismatches": id_mismatch, "items_checked": len(samples)}


if __name__ == "__main__":
    sys.exit(main())
