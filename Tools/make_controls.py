#!/usr/bin/env python3
"""The planted-mechanism controls of issue #19: LLaVA checkpoints whose arbitration mechanism is known by
construction, with a ground truth verified in PyTorch (transformers) and no Arbiter code involved.

    make_controls.py write [--force] [--out DIR] [--only NAME]   build every control (or one) into DIR
    make_controls.py check [--out DIR]                            rebuild into a temp folder, require identical bytes
    make_controls.py verify [--out DIR] [--only NAME]             re-run the PyTorch ground-truth checks only

DIR (default GoldenData/controls) receives:
  data/               the controls' conflict set (dataset.json + 8 colour swatches), shared by every control
  <name>/             one standard `llava` folder per control: config.json, model.safetensors, tokenizer.json,
                      preprocessor_config.json, prompt_layout.json, MODEL_CARD.md, expected_verdicts.json
                      (the verdict of every claim, derived from the design before Arbiter ran),
                      ground_truth.json (the PyTorch checks' figures)
  manifest.json       SHA-256 of every file, the seed and the library versions

How the weights are made: by hand (Tracr-style: "compiled", not trained). Every weight is set from the design
below, so a control is built in seconds, byte-identically, from this file alone. The residual stream has named
one-dimensional features (a constant, token-type flags, the instruction's vote) and eight-dimensional colour
codes; every attention head is a small bilinear rule over those features plus an attention sink on the first
token ("begin"); the MLPs are SwiGLU gates used as products of features. Rotary embeddings are made inert
(rope_theta 1e20 and no feature in the fast pair of any head), so attention depends on token content only.
Design and per-control differences: each control's MODEL_CARD.md (written from CONTROLS below).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402

from golden import sha256  # noqa: E402
from make_own_model import build_tokenizer  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "GoldenData", "controls")
SEED = 1919
CLAIMS = ["anchors", "shallow-nonselective", "deep-selective", "mlp-inertia", "heads-blocking",
          "heads-amplification", "specificity"]

# ---------------------------------------------------------------------------------------------------------
# Vocabulary and prompts. Every word belongs to one segment of the prompt, so a token's type is in its
# embedding: the context's colour word, the instruction's words (its first word names the modality), the
# question's words, and the final "answer" (the last position).
COLOURS = {  # name: RGB of the swatch
    "red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (235, 215, 20),
    "purple": (140, 40, 170), "orange": (245, 140, 20), "pink": (245, 120, 190), "brown": (120, 75, 30),
}
COLOUR_NAMES = list(COLOURS)
# Modality words: their vote (+ image, − text). The weak words make the arbitration fail on some items.
MODALITY = {"image": 1.0, "picture": 1.0, "photo": 0.6, "visual": 0.35,
            "text": -1.0, "caption": -1.0, "description": -0.6, "words": -0.35}
# How often each modality word is drawn for its target (the weak one rarely).
MODALITY_WEIGHTS = {"image": 0.365, "picture": 0.32, "photo": 0.23, "visual": 0.085,
                    "text": 0.365, "caption": 0.32, "description": 0.23, "words": 0.085}
FILLERS = ["first", "decides", "only", "wins", "counts", "rules"]
INSTRUCTION_TEMPLATES = ["{m} first", "{m} decides", "{m} only", "{m} wins", "{m} counts", "{m} rules",
                         "{m} only wins", "{m} first counts"]
HELDOUT_TEMPLATES = {"{m} rules", "{m} first counts"}  # instruction_split "heldout"
QUESTIONS = ["what colour", "which colour", "what shade"]
CONTEXT = "the object is {c}"
IMAGE_TOKEN = "<image>"
VOCABULARY = (["<unk>", "begin", IMAGE_TOKEN, "context", "answer", "the", "object", "is"] + COLOUR_NAMES
              + list(MODALITY) + FILLERS + ["what", "which", "colour", "shade"])
LAYOUT = {
    "name": "controls",
    "description": "The planted-mechanism controls' prompt (Tools/make_controls.py): 'begin' (the attention "
                   "sink), the image tokens, 'context' and the context, the instruction (its first word names "
                   "the modality), the question, and 'answer' (the last position).",
    "add_special_tokens": False,
    "image_token": IMAGE_TOKEN,
    "image_separator": " ",
    "answer_prefix": " ",
    "pieces": [
        {"text": "begin"},
        {"slot": "image", "prefix": " "},
        {"text": " context", "with": "context"},
        {"slot": "context", "prefix": " "},
        {"slot": "instruction", "prefix": " "},
        {"slot": "question", "prefix": " "},
        {"slot": "constraint", "prefix": " "},
        {"text": " answer"},
    ],
}

# ---------------------------------------------------------------------------------------------------------
# Sizes. 8 layers × 12 heads = 96 heads: the top 5% is 5 heads, the size of the planted circuit. Images are
# 16×16 swatches in 4 patches of 8×8: a short prompt (15 tokens), so `verify`'s ~10⁵ intervened passes are cheap.
IMAGE_TOKENS = 4
LAYERS, HEADS, HEAD_DIM, HIDDEN, MLP = 8, 12, 16, 96, 32
VISION = dict(image_size=16, patch_size=8, hidden_size=16, intermediate_size=16, num_hidden_layers=2,
              num_attention_heads=2, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=16)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
ROPE_THETA = 1e20
# Usable query/key dimensions of a head: every rotary pair but the fastest (dims 0 and HEAD_DIM/2), which
# turns by 1 radian per token whatever rope_theta is; the others turn by < 1e-4 radians over the prompt.
QK_DIMS = [d for d in range(HEAD_DIM) if d not in (0, HEAD_DIM // 2)]

# The residual stream's features.
C = 100.0  # the constant feature: large, so RMSNorm divides every position by nearly the same number
F = {"const": 0, "bos": 1, "img": 2, "ctxcol": 3, "instr": 4, "mod": 5, "end": 6, "vote": 7, "V": 8, "VL": 9}
K = len(COLOURS)
CODE = {"imgc": 10, "txtc": 10 + K, "CI": 10 + 2 * K, "CT": 10 + 3 * K, "LOGIT": 10 + 4 * K}
F["Vc"] = 10 + 5 * K  # the confident vote: sign(V)·max(|V| − 0.45, 0) (selective-transfer only)
NORM_GAIN = C / math.sqrt(HIDDEN)  # RMSNorm weight: x / rms(x) · NORM_GAIN ≈ x

# Strengths (logit units unless said): chosen with the numbers in each card so that the task is done, the
# weak modality words fail, and every planted route is far from the others in size.
SINK = 10.0       # score of the attention sink for every query
MATCH = 30.0      # score of a planted key match (≫ SINK: the match takes the whole mass)
SELECT = 16.0     # selector score per unit of vote: mass on the anchors = σ(SELECT·|v| + ln n − SINK_SEL)
SINK_SEL = 9.0
G_SELECT = 6.0    # selector value gain (cue code → LOGIT)
G_READOUT = 2.0   # readout value gain (anchors' LOGIT → last LOGIT)
DEFAULT = 1.0     # default route: each cue's code at the last position (read by the unembedding and the MLP)
INERTIA = 2.5     # MLP push of the non-named cue per unit of |vote| (× the cue's code size), where the
                  # competition is resolved (the anchors; the last position in direct)
INERTIA_LAST = 0.3  # the same push at the last position when the anchors resolve it: small, so a failure is
                    # decided at the anchors (their logit lens agrees with the final answer)
KAPPA = 10.0      # MLP gate sharpness
HELPFUL = 1.5     # helpful MLP: LOGIT → (1 + HELPFUL) · LOGIT at the last position

# Layers of each planted part.
L_VOTE, L_TRANSFER, L_LAST, L_MLP_SHALLOW, L_MLP_DEEP, L_SELECT, L_READOUT = 0, 1, 2, 3, 4, 5, 6

CONTROLS = {
    "anchored": dict(
        title="the paper's mechanism",
        design="Shallow attention (layer 1, one head) moves both cues — the image's colour code and the context's "
               "colour word — into every instruction token, whatever the instruction says (non-selective: 1:1 "
               "attention mass). Layer 0 (one head) copies the modality word's vote into the instruction tokens. "
               "Deep attention (layer 5, two heads) resolves the competition at the instruction tokens: each head "
               "attends to the anchors only when the vote names its modality and writes that cue's colour into the "
               "logit directions. Layer 6 (one head) reads the anchors' decision into the last position. The deep "
               "MLP (layer 4) pushes the cue the instruction did not name, at the anchors and at the last position "
               "(semantic inertia); the attention path overrides it except for the weak modality words. A weak "
               "default route (layer 2: the last position reads both cues and the vote) answers unimodal items.",
        expected={c: "holds" for c in CLAIMS},
        why={"anchors": "cues reach the answer only through the instruction tokens; the direct cue→last route is "
                        "the weak, balanced default",
             "shallow-nonselective": "layer 1 moves both cues into the instruction tokens for either target "
                                     "(attention mass 1:1); removing that transfer leaves no decision for either",
             "deep-selective": "the anchors carry no decision until layer 5, then the instructed cue (≥ 0.95 "
                               "agreement with the final answer)",
             "mlp-inertia": "the layer-4 MLP pushes the non-named cue at the last position",
             "heads-blocking": "the 5 planted heads (5.2% of 96) are the only route of the instruction",
             "heads-amplification": "failures come from weak votes; scaling the planted heads strengthens the "
                                    "selection",
             "specificity": "consistent and unimodal items are answered by the default route, which no planted "
                            "head carries"}),
    "direct": dict(
        title="no anchors: the last position arbitrates",
        design="As anchored, but nothing is moved into the instruction tokens: layer 0 (one head) copies the vote "
               "into the last position and the layer-5 selectors attend from the last position straight to the "
               "image tokens or the context's colour word, by the vote. The instruction tokens carry nothing.",
        expected={**{c: "holds" for c in CLAIMS}, "anchors": "fails", "shallow-nonselective": "fails",
                  "deep-selective": "fails"},
        why={"anchors": "knocking cues→instruction changes nothing; the cue→last edges carry the decision",
             "shallow-nonselective": "there is no transfer into the instruction tokens",
             "deep-selective": "the instruction tokens never hold a decision"}),
    "helpful-mlp": dict(
        title="MLPs help the instructed answer",
        design="As anchored, but the competing-cue push is a shallow MLP (layer 3) and the deep MLP (layer 6) "
               "amplifies the logit directions at the last position, i.e. writes the instructed answer.",
        expected={**{c: "holds" for c in CLAIMS}, "mlp-inertia": "fails"},
        why={"mlp-inertia": "the deep MLPs' direct logit attribution to the following score is positive"}),
    "dense": dict(
        title="the arbitration spread over most heads",
        design="As anchored, but every planted function is spread evenly over all the heads of one layer, each "
               "carrying 1/12: the vote over layer 0, the transfer over layer 1, the text selector over layer 4, "
               "the image selector over layer 5, the readout over layer 6 (60 of 96 heads, none decisive alone; "
               "every head of a layer does the same).",
        expected={**{c: "holds" for c in CLAIMS}, "heads-blocking": "fails", "heads-amplification": "fails"},
        why={"heads-blocking": "5 heads carry at most 5/12 of one function (MFR barely moves), and random heads "
                               "of the same layers do exactly as much",
             "heads-amplification": "random heads of the same layers amplify the same functions as much"}),
    "selective-transfer": dict(
        title="shallow transfer already selective",
        design="As anchored, but the layer-1 transfer head moves only the instructed cue into the instruction "
               "tokens: its attention is steered by the confident vote (layer 0's MLP: the vote less 0.45 in "
               "size, zero for the weak modality words, whose items are transferred both cues as in anchored and "
               "fail there).",
        expected={**{c: "holds" for c in CLAIMS}, "shallow-nonselective": "fails"},
        why={"shallow-nonselective": "the instruction tokens' attention goes to the image for follow-image items "
                                     "and to the context for follow-text items (selectivity index ≈ 1)"}),
    "shared-route": dict(
        title="the planted heads also carry general ability",
        design="As anchored, but there is no separate default route: the layer-1 transfer head, which moves both "
               "cues into every instruction token, also moves them into the last position (1:1 attention mass, so "
               "each cue arrives there at anchored's default strength), and layer 2 keeps only the vote into the "
               "last position. Consistent, image-only and text-only items are answered through that planted head "
               "alone: blocking the 5 planted heads leaves no cue at the last position (every colour's logit 0).",
        expected={**{c: "holds" for c in CLAIMS}, "specificity": "fails"},
        why={"anchors": "cues reach the answer only through the instruction tokens; the direct cue→last route (the "
                        "same layer-1 head) is balanced between the cues",
             "specificity": "the planted layer-1 head is the only route of the default answer: blocking the planted "
                            "heads takes consistent, image-only and text-only accuracy from 1 to 0"}),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Dataset
def build_dataset(rng: np.random.Generator, counts: dict[str, int]) -> list[dict]:
    items = []

    def instruction(target: str) -> tuple[str, str, str]:
        words = [w for w in MODALITY if (MODALITY[w] > 0) == (target == "image")]
        weights = np.array([MODALITY_WEIGHTS[w] for w in words])
        word = words[rng.choice(len(words), p=weights / weights.sum())]
        template = INSTRUCTION_TEMPLATES[rng.integers(len(INSTRUCTION_TEMPLATES))]
        ident = f"{word}-{INSTRUCTION_TEMPLATES.index(template)}"
        return template.format(m=word), ident, "heldout" if template in HELDOUT_TEMPLATES else "train"

    for kind, count in counts.items():
        for n in range(count):
            image, text = (COLOUR_NAMES[i] for i in rng.choice(K, size=2, replace=False))
            if kind == "consistent":
                text = image
            target = ("image" if n % 2 == 0 else "text") if kind in ("conflict", "consistent") else None
            instr, ident, split = instruction(target) if target else (None, None, None)
            expected = {"conflict": image if target == "image" else text, "consistent": image,
                        "image_only": image, "text_only": text}[kind]
            items.append({
                "id": "", "image": None if kind == "text_only" else f"images/{image}.png", "task": "color",
                "kind": kind, "target": target,
                "context": None if kind == "image_only" else CONTEXT.format(c=text),
                "instruction": instr, "instruction_id": ident, "instruction_split": split,
                "question": QUESTIONS[rng.integers(len(QUESTIONS))], "constraint": None,
                "answer_img": image, "answer_text": text, "answer_img_candidate_list": [image],
                "answer_text_candidate_list": [text], "expected": expected, "scene": None})
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    for i, item in enumerate(items):
        item["id"] = f"control-{i:04d}"
    return items


DATASET_COUNTS = {"conflict": 1000, "consistent": 48, "image_only": 40, "text_only": 40}


def write_dataset(folder: str) -> list[dict]:
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    for name, rgb in COLOURS.items():
        Image.new("RGB", (VISION["image_size"], VISION["image_size"]), rgb).save(os.path.join(folder, "images", f"{name}.png"), format="PNG",
                                              optimize=False, compress_level=9)
    items = build_dataset(np.random.default_rng(SEED), DATASET_COUNTS)
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump({"format": "arbiter-conflict", "version": 1, "generator": None, "items": items}, f, indent=1)
        f.write("\n")
    return items


# ---------------------------------------------------------------------------------------------------------
# Weights
class Builder:
    """Sets a LLaVA state dict feature by feature."""

    def __init__(self, model: torch.nn.Module):
        self.sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
        self.qk_used: dict[tuple[int, int], int] = {}
        self.v_used: dict[tuple[int, int], int] = {}
        self.mlp_used: dict[int, int] = {}

    def w(self, name: str) -> torch.Tensor:
        return self.sd[name]

    def attn(self, layer: int, part: str) -> torch.Tensor:
        return self.sd[f"model.language_model.layers.{layer}.self_attn.{part}.weight"]

    def score(self, layer: int, head: int, q_feature: int, k_feature: int, value: float) -> None:
        """score(q, k) += value · x_q[q_feature] · x_k[k_feature] / (x_const / C)²  (features read after RMSNorm)."""
        slot = self.qk_used.get((layer, head), 0)
        if slot >= len(QK_DIMS):
            raise RuntimeError(f"layer {layer} head {head}: out of query/key dimensions")
        self.qk_used[(layer, head)] = slot + 1
        row = head * HEAD_DIM + QK_DIMS[slot]
        q_scale = C if q_feature == F["const"] else 1.0
        k_scale = C if k_feature == F["const"] else 1.0
        # softmax(q·k · HEAD_DIM^-½): put the whole factor on the query side.
        self.attn(layer, "q_proj")[row, q_feature] = value * math.sqrt(HEAD_DIM) / q_scale
        self.attn(layer, "k_proj")[row, k_feature] = 1.0 / k_scale

    def sink(self, layer: int, head: int, value: float = SINK) -> None:
        self.score(layer, head, F["const"], F["bos"], value)

    def move(self, layer: int, head: int, source: int, target: int, size: int, gain: float) -> None:
        """The head's value reads `size` features from `source` and its output writes them × gain at `target`."""
        start = self.v_used.get((layer, head), 0)
        if start + size > HEAD_DIM:
            raise RuntimeError(f"layer {layer} head {head}: out of value dimensions")
        self.v_used[(layer, head)] = start + size
        for i in range(size):
            self.attn(layer, "v_proj")[head * HEAD_DIM + start + i, source + i] = 1.0
            self.attn(layer, "o_proj")[target + i, head * HEAD_DIM + start + i] = gain

    def neuron(self, layer: int, gate: dict[int, float], up: dict[int, float], down: dict[int, float]) -> None:
        """One SwiGLU neuron: down · silu(gate·x) · (up·x)."""
        n = self.mlp_used.get(layer, 0)
        if n >= MLP:
            raise RuntimeError(f"layer {layer}: out of MLP neurons")
        self.mlp_used[layer] = n + 1
        p = f"model.language_model.layers.{layer}.mlp."
        for feature, value in gate.items():
            self.sd[p + "gate_proj.weight"][n, feature] = value
        for feature, value in up.items():
            self.sd[p + "up_proj.weight"][n, feature] = value
        for feature, value in down.items():
            self.sd[p + "down_proj.weight"][feature, n] = value


def dot(a: list[float], b: list[float]) -> float:
    """An exactly rounded dot product (math.fsum): the same bits on every CPU, unlike BLAS or numpy's SIMD sums,
    so the weights are byte-identical wherever they are rebuilt."""
    return math.fsum(x * y for x, y in zip(a, b))


def clip_features(rgb: tuple[int, int, int]) -> list[float]:
    """The vision tower's output for a swatch of this colour: pre_layrnorm of the patch embedding."""
    x = [(v / 255 - m) / s for v, m, s in zip(rgb, CLIP_MEAN, CLIP_STD)]
    f = x + [-v for v in x] + [1.0, -1.0] + [0.0] * (VISION["hidden_size"] - 8)
    mean = math.fsum(f) / len(f)
    var = math.fsum((v - mean) ** 2 for v in f) / len(f)
    return [(v - mean) / math.sqrt(var + VISION["layer_norm_eps"]) for v in f]


def set_vision(b: Builder) -> None:
    v = "model.vision_tower."
    h = VISION["hidden_size"]
    patch = b.w(v + "embeddings.patch_embedding.weight")  # [h, 3, p, p]
    p2 = VISION["patch_size"] ** 2
    for c in range(3):
        patch[c, c] = 1.0 / p2
        patch[3 + c, c] = -1.0 / p2
    b.w(v + "embeddings.position_embedding.weight")[:, 6] = 1.0
    b.w(v + "embeddings.position_embedding.weight")[:, 7] = -1.0
    for name in ("pre_layrnorm", "post_layernorm") + tuple(
            f"encoder.layers.{i}.layer_norm{j}" for i in range(VISION["num_hidden_layers"]) for j in (1, 2)):
        b.w(v + name + ".weight")[:] = 1.0
    # Encoder layers stay the identity (zero out_proj and fc2): LLaVA reads layer -2, i.e. the embeddings.
    # Projector: one prototype detector per colour, then its code, the image flag and the constant.
    feats = [clip_features(COLOURS[c]) for c in COLOUR_NAMES]
    unit = [[v / math.sqrt(dot(f, f)) for v in f] for f in feats]
    sims = [[dot(feats[j], unit[k]) for k in range(K)] for j in range(K)]  # colour j along colour k's direction
    l1w, l1b = b.w("model.multi_modal_projector.linear_1.weight"), b.w("model.multi_modal_projector.linear_1.bias")
    l2w, l2b = b.w("model.multi_modal_projector.linear_2.weight"), b.w("model.multi_modal_projector.linear_2.bias")
    for k in range(K):
        own = sims[k][k]
        other = max(sims[j][k] for j in range(K) if j != k)
        threshold = (own + other) / 2
        kappa = 12.0 / (own - threshold)  # own colour: +12, every other colour ≤ −12
        weights = [float(np.float32(kappa * u)) for u in unit[k]]
        bias = float(np.float32(-kappa * threshold))
        l1w[k, :h] = torch.tensor(weights, dtype=torch.float32)
        l1b[k] = bias
        own_z = dot(weights, [float(np.float32(v)) for v in feats[k]]) + bias
        l2w[CODE["imgc"] + k, k] = 1.0 / own_z  # gelu(z) = z for z ≥ 12 (to float32 precision)
    l2b[F["const"]] = C
    l2b[F["img"]] = 1.0


def set_embeddings(b: Builder) -> None:
    emb = b.w("model.language_model.embed_tokens.weight")
    for i, word in enumerate(VOCABULARY):
        emb[i, F["const"]] = C
        if word == "begin":
            emb[i, F["bos"]] = 1.0
        elif word == "answer":
            emb[i, F["end"]] = 1.0
        elif word in COLOURS:
            emb[i, F["ctxcol"]] = 1.0
            emb[i, CODE["txtc"] + COLOUR_NAMES.index(word)] = 1.0
        elif word in MODALITY:
            emb[i, F["instr"]] = 1.0
            emb[i, F["mod"]] = 1.0
            emb[i, F["vote"]] = MODALITY[word]
        elif word in FILLERS:
            emb[i, F["instr"]] = 1.0
    unemb = b.w("lm_head.weight")
    for k, name in enumerate(COLOUR_NAMES):
        i = VOCABULARY.index(name)
        for code in ("LOGIT", "CI", "CT"):
            unemb[i, CODE[code] + k] = 1.0  # the final norm (weight NORM_GAIN) gives back ≈ x
    for name, value in b.sd.items():
        if name.endswith("layernorm.weight") and "language_model" in name or name == "model.language_model.norm.weight":
            value[:] = NORM_GAIN


def set_decoder(b: Builder, control: str) -> list[tuple[int, int]]:
    """Plants `control`'s mechanism; returns the planted arbitration heads (layer, head)."""
    planted: list[tuple[int, int]] = []
    dense = control == "dense"

    def heads(layer: int, n: int, first: int = 0) -> list[int]:
        group = list(range(first, first + n))
        planted.extend((layer, h) for h in group)
        return group

    # Every head of every layer has the sink, so unused heads attend to "begin" (whose value is zero).
    # Dense puts its text selectors in layer 4 (one function per layer: every head of a layer is alike).
    text_select_layer = L_MLP_DEEP if dense else L_SELECT
    for layer in range(LAYERS):
        for head in range(HEADS):
            b.sink(layer, head, SINK_SEL if layer in (L_SELECT, text_select_layer) else SINK)

    # Layer 2: the default route and the vote at the last position (not planted arbitration heads). In
    # shared-route the default route is the planted transfer head's instead (below).
    b.score(L_LAST, 0, F["end"], F["mod"], MATCH)
    b.move(L_LAST, 0, F["vote"], F["VL"], 1, 1.0)
    if control != "shared-route":
        b.score(L_LAST, 1, F["end"], F["img"], MATCH)
        b.move(L_LAST, 1, CODE["imgc"], CODE["CI"], K, DEFAULT)
        b.score(L_LAST, 2, F["end"], F["ctxcol"], MATCH)
        b.move(L_LAST, 2, CODE["txtc"], CODE["CT"], K, DEFAULT)

    if control == "direct":
        # Layer 0: the vote straight into the last position (for the selectors).
        (h,) = heads(L_VOTE, 1)
        b.score(L_VOTE, h, F["end"], F["mod"], MATCH)
        b.move(L_VOTE, h, F["vote"], F["V"], 1, 1.0)
        # Layer 5: the last position reads the named cue straight from its tokens.
        hi, ht = heads(L_SELECT, 2)
        b.score(L_SELECT, hi, F["V"], F["img"], SELECT)
        b.score(L_SELECT, hi, F["const"], F["img"], math.log(1 / IMAGE_TOKENS) + math.log(2.5))  # as if 2.5 anchors
        b.move(L_SELECT, hi, CODE["imgc"], CODE["LOGIT"], K, G_SELECT * G_READOUT)
        b.score(L_SELECT, ht, F["V"], F["ctxcol"], -SELECT)
        b.score(L_SELECT, ht, F["const"], F["ctxcol"], math.log(2.5))
        b.move(L_SELECT, ht, CODE["txtc"], CODE["LOGIT"], K, G_SELECT * G_READOUT)
    else:
        n_vote = 12 if dense else 1
        for h in heads(L_VOTE, n_vote):
            b.score(L_VOTE, h, F["instr"], F["mod"], MATCH)
            b.move(L_VOTE, h, F["vote"], F["V"], 1, 1.0 / n_vote)
        n_transfer = 12 if dense else 1
        for h in heads(L_TRANSFER, n_transfer):
            b.score(L_TRANSFER, h, F["instr"], F["img"], MATCH)
            b.score(L_TRANSFER, h, F["instr"], F["ctxcol"], MATCH + math.log(IMAGE_TOKENS))  # 1:1 mass
            if control == "selective-transfer":
                # Steered by the confident vote: the named cue only (weak words: both, as anchored).
                b.score(L_TRANSFER, h, F["Vc"], F["img"], 40.0)
                b.score(L_TRANSFER, h, F["Vc"], F["ctxcol"], -40.0)
            gain = 2.0
            if control == "shared-route":
                # The default route through the same head: the last position reads both cues too, 1:1, so each
                # arrives at gain / 2 = DEFAULT (alone, as in a unimodal item, at 2 · DEFAULT).
                assert gain / 2 == DEFAULT
                b.score(L_TRANSFER, h, F["end"], F["img"], MATCH)
                b.score(L_TRANSFER, h, F["end"], F["ctxcol"], MATCH + math.log(IMAGE_TOKENS))
            b.move(L_TRANSFER, h, CODE["imgc"], CODE["CI"], K, gain / n_transfer)
            b.move(L_TRANSFER, h, CODE["txtc"], CODE["CT"], K, gain / n_transfer)
        n_select = 12 if dense else 1
        for h in heads(L_SELECT, n_select):
            b.score(L_SELECT, h, F["V"], F["instr"], SELECT)
            b.move(L_SELECT, h, CODE["CI"], CODE["LOGIT"], K, G_SELECT / n_select)
        for h in heads(text_select_layer, n_select, first=0 if dense else n_select):
            b.score(text_select_layer, h, F["V"], F["instr"], -SELECT)
            b.move(text_select_layer, h, CODE["CT"], CODE["LOGIT"], K, G_SELECT / n_select)
        n_readout = 12 if dense else 1
        for h in heads(L_READOUT, n_readout):
            b.score(L_READOUT, h, F["end"], F["instr"], MATCH)
            b.move(L_READOUT, h, CODE["LOGIT"], CODE["LOGIT"], K, G_READOUT / n_readout)

    # MLPs: the push of the non-named cue ("inertia"), deep in all but helpful-mlp. The anchors' vote (V)
    # gates the push there, the last position's (VL) gates it at the last position.
    push_layer = L_MLP_SHALLOW if control == "helpful-mlp" else L_MLP_DEEP
    strengths = {"V": INERTIA, "VL": INERTIA if control == "direct" else INERTIA_LAST}
    for vote, strength in strengths.items():
        for k in range(K):
            # Text named (vote < 0): push the image cue; image named: push the text cue.
            b.neuron(push_layer, gate={F[vote]: -KAPPA}, up={CODE["CI"] + k: 1.0},
                     down={CODE["LOGIT"] + k: strength / KAPPA})
            b.neuron(push_layer, gate={F[vote]: KAPPA}, up={CODE["CT"] + k: 1.0},
                     down={CODE["LOGIT"] + k: strength / KAPPA})
    if control == "selective-transfer":
        # Layer 0's MLP: the confident vote Vc = relu(V − 0.45) − relu(−V − 0.45), weak words give 0.
        for sign in (1.0, -1.0):
            b.neuron(L_VOTE, gate={F["V"]: sign * 20.0, F["const"]: -0.45 * 20.0 / C}, up={F["const"]: 1.0 / C},
                     down={F["Vc"]: sign / 20.0})
    if control == "helpful-mlp":
        for k in range(K):
            b.neuron(L_READOUT, gate={F["const"]: 0.1}, up={CODE["LOGIT"] + k: 1.0},
                     down={CODE["LOGIT"] + k: HELPFUL / 10.0})
    return planted


def build_model(control: str) -> tuple[torch.nn.Module, list[tuple[int, int]]]:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    text = LlamaConfig(
        vocab_size=len(VOCABULARY), hidden_size=HIDDEN, intermediate_size=MLP, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=HEADS, head_dim=HEAD_DIM, hidden_act="silu",
        max_position_embeddings=128, rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA}, bos_token_id=None,
        eos_token_id=None, pad_token_id=None)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**VISION), text_config=text, image_token_id=VOCABULARY.index(IMAGE_TOKEN),
        image_seq_length=IMAGE_TOKENS, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default", multimodal_projector_bias=True, tie_word_embeddings=False)
    model = LlavaForConditionalGeneration(config)
    b = Builder(model)
    set_vision(b)
    set_embeddings(b)
    planted = set_decoder(b, control)
    model.load_state_dict(b.sd)
    model.eval()
    return model, planted


# ---------------------------------------------------------------------------------------------------------
# Prompts and runs (PyTorch only)
def tokens_and_spans(item: dict) -> tuple[list[int], dict[str, list[int]]]:
    """Token ids of the item's prompt by LAYOUT, and the positions of each slot (as Arbiter's spans)."""
    ids: list[int] = []
    spans: dict[str, list[int]] = {}
    fields = {"context": item["context"], "instruction": item["instruction"], "question": item["question"],
              "constraint": item["constraint"]}
    for piece in LAYOUT["pieces"]:
        if "slot" in piece:
            slot = piece["slot"]
            if slot == "image":
                words = [IMAGE_TOKEN] * IMAGE_TOKENS if item["image"] else []
            else:
                words = (fields[slot] or "").split()
            start = len(ids)
            ids += [VOCABULARY.index(w) for w in words]
            if words:
                spans[slot] = list(range(start, len(ids)))
        elif "with" not in piece or (item["image"] if piece["with"] == "image" else fields[piece["with"]]):
            ids += [VOCABULARY.index(w) for w in piece["text"].split()]
    spans["last"] = [len(ids) - 1]
    return ids, spans


class Runner:
    """transformers' LlavaForConditionalGeneration with attention knockouts, head scaling and MLP scaling."""

    def __init__(self, model: torch.nn.Module, folder: str, data: str, items: list[dict]):
        from transformers.models.llama import modeling_llama

        self.model = model
        self.knockouts: list[tuple[set[int], list[int], list[int]]] = []  # (layers, queries, keys)
        self.head_scale: dict[tuple[int, int], float] = {}
        self.mlp_scale: dict[int, float] = {}
        self.keep_attention = False
        self.patterns: dict[int, torch.Tensor] = {}
        runner = self
        original = modeling_llama.eager_attention_forward

        def attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
            scores = torch.matmul(query, key.transpose(2, 3)) * scaling
            if attention_mask is not None:
                scores = scores + attention_mask
            for layers, queries, keys in runner.knockouts:
                if module.layer_idx in layers:
                    q = torch.tensor(queries)[:, None]
                    k = torch.tensor(keys)[None, :]
                    scores[:, :, q, k] = float("-inf")
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
            if runner.keep_attention:
                runner.patterns[module.layer_idx] = weights[0].detach()
            return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights

        self.original = original
        modeling_llama.eager_attention_forward = attention
        layers = model.model.language_model.layers
        for i, layer in enumerate(layers):
            def pre(module, args, layer_index=i):
                if not any(l == layer_index for l, _ in runner.head_scale):
                    return None
                x = args[0].clone()
                for (l, h), s in runner.head_scale.items():
                    if l == layer_index:
                        x[..., h * HEAD_DIM:(h + 1) * HEAD_DIM] *= s
                return (x,)

            def post(module, args, output, layer_index=i):
                s = runner.mlp_scale.get(layer_index)
                return output * s if s is not None else None

            layer.self_attn.o_proj.register_forward_pre_hook(pre)
            layer.mlp.register_forward_hook(post)
        from golden_llava import load_image_processor
        processor = load_image_processor(folder)
        self.pixels = {}
        for name in COLOURS:
            image = Image.open(os.path.join(data, "images", f"{name}.png"))
            self.pixels[name] = processor(images=image, return_tensors="pt")["pixel_values"].to(torch.float32)
        self.items = items
        self.prepared = [tokens_and_spans(item) for item in items]

    def run(self, index: int, lens: bool = False) -> dict:
        item = self.items[index]
        ids, spans = self.prepared[index]
        kwargs = {"input_ids": torch.tensor([ids])}
        if item["image"]:
            kwargs["pixel_values"] = self.pixels[item["answer_img"]]
        with torch.no_grad():
            out = self.model(**kwargs, output_hidden_states=lens, use_cache=False)
        logits = out.logits[0, -1]
        instructed = VOCABULARY.index(item["expected"]) if item["expected"] else None
        other = item["answer_text"] if item["expected"] == item["answer_img"] else item["answer_img"]
        result = {"top": VOCABULARY[int(logits.argmax())], "logits": logits}
        if item["kind"] == "conflict":
            result["s"] = float(logits[instructed] - logits[VOCABULARY.index(other)])
        if lens:
            lm = self.model.model.language_model
            # Logit lens at the instruction tokens after each layer: mean s over them.
            anchors = spans.get("instruction", [])
            per_layer = []
            for hidden in out.hidden_states[1:]:
                if not anchors or item["kind"] != "conflict":
                    per_layer.append(float("nan"))
                    continue
                with torch.no_grad():
                    z = self.model.lm_head(lm.norm(hidden[0, anchors]))
                per_layer.append(float((z[:, instructed] - z[:, VOCABULARY.index(other)]).mean()))
            result["lens"] = per_layer
        return result

    def conflict(self) -> list[int]:
        return [i for i, item in enumerate(self.items) if item["kind"] == "conflict"]

    def mfr(self, indices: list[int] | None = None) -> float:
        indices = self.conflict() if indices is None else indices
        return sum(self.run(i)["s"] > 0 for i in indices) / max(len(indices), 1)

    def accuracy(self, kind: str) -> float:
        indices = [i for i, item in enumerate(self.items) if item["kind"] == kind]
        return sum(self.run(i)["top"] == self.items[i]["expected"] for i in indices) / max(len(indices), 1)

    def close(self) -> None:
        from transformers.models.llama import modeling_llama
        modeling_llama.eager_attention_forward = self.original


def with_knockout(runner: Runner, keys: list[str], queries: str, layers: set[int], indices: list[int]) -> list[float]:
    """s of each item with the edges keys → queries blocked in `layers`."""
    scores = []
    for i in indices:
        _, spans = runner.prepared[i]
        k = [p for name in keys for p in spans.get(name, [])]
        q = spans.get(queries, [])
        runner.knockouts = [(layers, q, k)] if k and q else []
        scores.append(runner.run(i)["s"])
    runner.knockouts = []
    return scores


def ground_truth(runner: Runner, planted: list[tuple[int, int]], control: str) -> dict:
    """The PyTorch checks of a control's design (no Arbiter code): figures for its card."""
    conflict = runner.conflict()
    items = runner.items
    base = [runner.run(i)["s"] for i in conflict]
    follows = [s > 0 for s in base]

    def mfr(scores: list[float]) -> float:
        return sum(s > 0 for s in scores) / len(scores)

    def by(predicate) -> list[int]:
        return [k for k, i in enumerate(conflict) if predicate(items[i])]

    heldout = by(lambda it: it["instruction_split"] == "heldout")
    image_t, text_t = by(lambda it: it["target"] == "image"), by(lambda it: it["target"] == "text")
    out: dict = {"conflict_items": len(conflict)}
    out["mfr"] = mfr(base)
    out["mfr_follow_image"] = mfr([base[k] for k in image_t])
    out["mfr_follow_text"] = mfr([base[k] for k in text_t])
    out["mfr_heldout_wording"] = mfr([base[k] for k in heldout])
    out["failed_items"] = len(base) - sum(follows)
    for kind in ("consistent", "image_only", "text_only"):
        out[f"accuracy_{kind}"] = runner.accuracy(kind)
    all_layers = set(range(LAYERS))
    ko = {
        "cues->instruction (all layers)": (["image", "context"], "instruction", all_layers),
        "cues->instruction (layer 1)": (["image", "context"], "instruction", {L_TRANSFER}),
        "image->instruction (layer 1)": (["image"], "instruction", {L_TRANSFER}),
        "context->instruction (layer 1)": (["context"], "instruction", {L_TRANSFER}),
        "cues->last (all layers)": (["image", "context"], "last", all_layers),
        "image->last (all layers)": (["image"], "last", all_layers),
        "context->last (all layers)": (["context"], "last", all_layers),
        "instruction->last (all layers)": (["instruction"], "last", all_layers),
    }
    out["knockouts"] = {}
    for name, (keys, queries, layers) in ko.items():
        s = with_knockout(runner, keys, queries, layers, conflict)
        out["knockouts"][name] = {"mfr": mfr(s), "mfr_follow_image": mfr([s[k] for k in image_t]),
                                  "mfr_follow_text": mfr([s[k] for k in text_t])}
    if control == "shared-route":
        # Its direct cue→last route is a planted head's, so a single cue's knockout there doubles the other cue
        # (1:1 attention): the anchors' margin, as Arbiter's normalised shift mean(s_ko − s)/mean|s| per target.
        out["layer1_shift"] = {}
        for name, keys, queries in (("cues->instruction", ["image", "context"], "instruction"),
                                    ("image->last", ["image"], "last"), ("context->last", ["context"], "last")):
            s = with_knockout(runner, keys, queries, {L_TRANSFER}, conflict)
            out["layer1_shift"][name] = {
                t: math.fsum(s[k] - base[k] for k in group) / math.fsum(abs(base[k]) for k in group)
                for t, group in (("image", image_t), ("text", text_t))}
    # Heads: block the planted ones; block random unplanted sets of the same size; amplify on failures.
    def scaled(heads: list[tuple[int, int]], factor: float, indices: list[int]) -> list[float]:
        runner.head_scale = {h: factor for h in heads}
        try:
            return [runner.run(conflict[k])["s"] for k in indices]
        finally:
            runner.head_scale = {}

    every = list(range(len(conflict)))
    out["planted_heads"] = [list(h) for h in planted]
    if control == "dense":
        # Per planted layer: one head blocked, the first 5 and the last 5 blocked (all the layer's heads alike).
        out["dense_layers"] = {
            str(layer): {"one": mfr(scaled([(layer, 0)], 0.0, every)),
                         "first5": mfr(scaled([(layer, h) for h in range(5)], 0.0, every)),
                         "last5": mfr(scaled([(layer, h) for h in range(HEADS - 5, HEADS)], 0.0, every))}
            for layer in sorted({l for l, _ in planted})}
    blocked = scaled(planted, 0.0, every)
    out["mfr_planted_blocked"] = mfr(blocked)
    runner.head_scale = {h: 0.0 for h in planted}
    out["accuracy_consistent_planted_blocked"] = runner.accuracy("consistent")
    out["accuracy_image_only_planted_blocked"] = runner.accuracy("image_only")
    out["accuracy_text_only_planted_blocked"] = runner.accuracy("text_only")
    runner.head_scale = {}
    rng = np.random.default_rng(SEED + 1)
    others = [(l, h) for l in range(LAYERS) for h in range(HEADS) if (l, h) not in planted]
    random_mfr = []
    random_accuracy: dict[str, list[float]] = {"consistent": [], "image_only": [], "text_only": []}
    size = max(1, math.ceil(0.05 * LAYERS * HEADS))
    subset = every[::4]
    for _ in range(10):
        pick = [others[j] for j in rng.choice(len(others), size=size, replace=False)]
        random_mfr.append(mfr(scaled(pick, 0.0, subset)))
        if control == "shared-route":  # the contrast of its lost ability: random heads leave it
            runner.head_scale = {h: 0.0 for h in pick}
            for kind, values in random_accuracy.items():
                values.append(runner.accuracy(kind))
            runner.head_scale = {}
    out["mfr_random_unplanted_blocked_mean"] = float(np.mean(random_mfr))
    if control == "shared-route":
        out["accuracy_random_unplanted_blocked_min"] = {kind: min(v) for kind, v in random_accuracy.items()}
        # The default route is the planted transfer head itself: blocking it alone takes the ability.
        runner.head_scale = {h: 0.0 for h in planted if h[0] == L_TRANSFER}
        out["accuracy_transfer_head_blocked"] = {kind: runner.accuracy(kind) for kind in random_accuracy}
        runner.head_scale = {}
    failed = [k for k in every if not follows[k]]
    out["amplification"] = {}
    for alpha in (1.5, 2.0, 3.0, 4.0, 6.0):
        fixed = scaled(planted, alpha, failed) if failed else []
        out["amplification"][str(alpha)] = (sum(s > 0 for s in fixed) / len(failed)) if failed else None
    # MLPs: without the deep MLPs (layers ≥ LAYERS/2) — inertia removed ⇒ following rises.
    runner.mlp_scale = {l: 0.0 for l in range(LAYERS // 2, LAYERS)}
    out["mfr_deep_mlps_zeroed"] = runner.mfr()
    out["mean_s_deep_mlps_zeroed"] = float(np.mean([runner.run(i)["s"] for i in conflict]))
    runner.mlp_scale = {}
    out["mean_s"] = float(np.mean(base))
    # The deep MLPs' direct effect on s at the last position: s with and without their output there is what
    # the zeroing above measures end to end; here the sign of the push on the final logits.
    # Logit lens at the instruction tokens: agreement of their decision with the final one, per layer.
    lens = [runner.run(i, lens=True)["lens"] for i in conflict]
    out["anchor_lens_agreement"] = [
        sum((lens[k][l] > 0) == follows[k] for k in every) / len(every) for l in range(LAYERS)]
    out["anchor_lens_mean_abs_s"] = [float(np.mean([abs(lens[k][l]) for k in every])) for l in range(LAYERS)]
    # Instruction tokens' attention to image vs context in the transfer layer, by target.
    runner.keep_attention = True
    shares = {"image": [], "text": []}
    for k in every[::8]:
        i = conflict[k]
        runner.run(i)
        _, spans = runner.prepared[i]
        p = runner.patterns[L_TRANSFER]  # [heads, T, T]
        q = spans["instruction"]
        m_img = float(p[:, q][:, :, spans["image"]].sum())
        m_ctx = float(p[:, q][:, :, spans["context"]].sum())
        shares[items[i]["target"]].append(m_img / (m_img + m_ctx) if m_img + m_ctx > 1e-6 else float("nan"))
    runner.keep_attention = False
    out["instruction_image_share_layer1"] = {t: float(np.nanmean(v)) if v else None for t, v in shares.items()}
    return out


# ---------------------------------------------------------------------------------------------------------
# Files
def write_json(path: str, value) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def write_control(folder: str, control: str) -> tuple[torch.nn.Module, list[tuple[int, int]]]:
    import golden_llava as llava

    torch.manual_seed(SEED)
    model, planted = build_model(control)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    build_tokenizer(VOCABULARY).save(os.path.join(folder, "tokenizer.json"), pretty=True)
    config = llava.processor_config()
    config["image_mean"], config["image_std"] = CLIP_MEAN, CLIP_STD
    config["size"] = {"shortest_edge": VISION["image_size"]}
    config["crop_size"] = {"height": VISION["image_size"], "width": VISION["image_size"]}
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_json(os.path.join(folder, "prompt_layout.json"), LAYOUT)
    write_json(os.path.join(folder, "expected_verdicts.json"), {
        "control": control, "design": "Tools/make_controls.py (CONTROLS) and MODEL_CARD.md",
        "expected": {claim: CONTROLS[control]["expected"][claim] for claim in CLAIMS},
        "why": CONTROLS[control].get("why", {})})
    generation = os.path.join(folder, "generation_config.json")
    if os.path.exists(generation):
        os.remove(generation)
    return model, planted


def load(folder: str) -> torch.nn.Module:
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------------------
# The design's checks on the PyTorch figures: what each control must show for its ground truth to hold.
def design_checks(control: str, g: dict) -> list[tuple[str, bool]]:
    ko = g["knockouts"]
    base = g["mfr"]
    drop = (base - g["mfr_planted_blocked"]) / base
    best_fix = max((v for v in g["amplification"].values() if v is not None), default=0.0)
    deep_lens = min(g["anchor_lens_agreement"][-2:])
    blocked_accuracy = [g[f"accuracy_{kind}_planted_blocked"] for kind in ("consistent", "image_only", "text_only")]
    if control == "shared-route":
        ability = [
            ("general ability lost with the planted heads blocked (consistent, image-only, text-only each ≤ 0.5)",
             max(blocked_accuracy) <= 0.5),
            ("the planted layer-1 transfer head alone carries it: blocking only that head gives each ≤ 0.5",
             max(g["accuracy_transfer_head_blocked"].values()) <= 0.5),
            ("general ability kept with 5 random unplanted heads blocked (each kind ≥ 0.9 for every one of 10 sets)",
             min(g["accuracy_random_unplanted_blocked_min"].values()) >= 0.9),
        ]
    else:
        ability = [("general ability kept with the planted heads blocked (consistent, image-only, text-only ≥ 0.9)",
                    min(blocked_accuracy) >= 0.9)]
    checks = [
        ("does the task: MFR ≥ 0.9", base >= 0.9),
        ("image-only, text-only and consistent accuracy ≥ 0.9",
         min(g["accuracy_image_only"], g["accuracy_text_only"], g["accuracy_consistent"]) >= 0.9),
        ("≥ 60 failed conflict items (weak modality words), so both splits have ≥ 30", g["failed_items"] >= 60),
        *ability,
        ("blocking 5 random unplanted heads leaves MFR within 0.05 (mean of 10 sets)",
         abs(g["mfr_random_unplanted_blocked_mean"] - base) <= 0.05),
    ]
    if control == "direct":
        checks += [
            ("cues→instruction knockout (all layers) changes MFR by < 0.02",
             abs(ko["cues->instruction (all layers)"]["mfr"] - base) < 0.02),
            ("cues→last knockout (all layers) takes MFR to ≤ 0.1", ko["cues->last (all layers)"]["mfr"] <= 0.1),
            ("the instruction tokens' logit lens never tells the answers apart (mean |s| ≤ 0.01 at every layer)",
             max(g["anchor_lens_mean_abs_s"]) <= 0.01),
        ]
    else:
        checks += [
            ("cues→instruction knockout in layer 1 takes MFR to ≤ 0.1 for both targets",
             max(ko["cues->instruction (layer 1)"]["mfr_follow_image"],
                 ko["cues->instruction (layer 1)"]["mfr_follow_text"]) <= 0.1),
            ("cues→last knockout (all layers) changes MFR by < 0.02",
             abs(ko["cues->last (all layers)"]["mfr"] - base) < 0.02),
            ("the anchors' logit lens agrees with the final answer in the deepest two layers (≥ 0.95)", deep_lens >= 0.95),
        ]
    if control == "shared-route":
        shift = g["layer1_shift"]
        anchor = min(abs(v) for v in shift["cues->instruction"].values())
        direct = max(abs(v) for name in ("image->last", "context->last") for v in shift[name].values())
        checks.append(("anchors with k = 2: the cues→instruction shift (layer 1, each target) exceeds twice the "
                       "largest single cue→last shift", anchor > 2 * direct))
    share = g["instruction_image_share_layer1"]
    if control == "selective-transfer":
        checks.append(("layer-1 transfer is selective: image share differs by ≥ 0.5 between targets",
                       share["image"] - share["text"] >= 0.5))
    elif control != "direct":
        checks.append(("layer-1 transfer is non-selective: image share within 0.01 between targets",
                       abs(share["image"] - share["text"]) <= 0.01))
    if control == "dense":
        checks += [("blocking all 60 planted heads takes MFR to ≤ 0.1", g["mfr_planted_blocked"] <= 0.1),
                   ("no head is decisive alone: blocking one head of any planted layer keeps MFR within 0.05",
                    all(abs(v["one"] - base) <= 0.05 for v in g["dense_layers"].values())),
                   ("the heads of a layer are interchangeable: blocking its first 5 or its last 5 gives the same MFR "
                    "(within 0.01)", all(abs(v["first5"] - v["last5"]) <= 0.01 for v in g["dense_layers"].values()))]
    else:
        checks += [("blocking the ≤ 5 planted heads cuts MFR by ≥ 60%", drop >= 0.6),
                   ("amplifying them fixes ≥ 60% of the failures at some α of the grid", best_fix >= 0.6)]
    if control == "helpful-mlp":
        checks.append(("zeroing the deep MLPs lowers the mean following score s (they push the instructed answer)",
                       g["mean_s_deep_mlps_zeroed"] < g["mean_s"]))
    else:
        checks.append(("zeroing the deep MLPs raises MFR (inertia)", g["mfr_deep_mlps_zeroed"] > base))
    return checks


def card(control: str, g: dict, checks: list[tuple[str, bool]], planted: list[tuple[int, int]]) -> str:
    spec = CONTROLS[control]
    ko = g["knockouts"]
    lines = [
        f"# control: {control} — {spec['title']}", "",
        "A planted-mechanism control of Arbiter (issue #19), built by `Tools/make_controls.py write --only "
        f"{control}`: every weight is set by hand from the design below (nothing is trained), so the mechanism is "
        "known by construction and the folder is rebuilt byte-identically from that file. A test model for "
        "Arbiter's claim checks, not a useful MLLM.", "",
        "## Design", spec["design"], "",
        "Shared by every control: a LLaVA folder (`LlavaForConditionalGeneration`: CLIP vision tower 16×16, patch 8 "
        f"({IMAGE_TOKENS} image tokens), "
        f"hidden {VISION['hidden_size']}, {VISION['num_hidden_layers']} identity layers; gelu projector; Llama decoder "
        f"{LAYERS} layers × {HEADS} heads = {LAYERS * HEADS} heads, hidden {HIDDEN}, head dim {HEAD_DIM}, MLP {MLP}, "
        f"rope_theta {ROPE_THETA:g}), a {len(VOCABULARY)}-word WordLevel tokenizer and the `controls` prompt layout "
        "(`prompt_layout.json`). The vision tower's patch embedding takes each patch's mean colour; the projector "
        "has one prototype detector per colour and writes that colour's code (exact on the 8 swatches). The "
        "residual stream has named features: a constant (100, so RMSNorm divides every position by nearly the "
        "same number), token-type flags, the modality word's vote (image +, text −; weak words ±0.35, strong "
        "±1.0, middling ±0.6) and 8-dimensional colour codes. Unused heads attend to the first token, whose "
        "value is zero. Strengths: `Tools/make_controls.py` (SINK, MATCH, SELECT, G_SELECT, G_READOUT, DEFAULT, "
        "INERTIA, INERTIA_LAST).", "",
        f"Planted arbitration heads (layer.head): {', '.join(f'{l}.{h}' for l, h in planted)} "
        f"({len(planted)} of {LAYERS * HEADS}, {100 * len(planted) / (LAYERS * HEADS):.1f}%). "
        + (f"Not counted as arbitration: layer {L_LAST}'s head 0 (the vote into the last position, for its MLP "
           f"push), the only head of layer {L_LAST} that writes anything here. The default route is planted head "
           f"{L_TRANSFER}.0."
           if control == "shared-route" else
           f"Not counted as arbitration: layer {L_LAST}'s default route (head 1 reads the image, head 2 the "
           "context's colour word into the last position) and head 0 (the vote into the last position, for its "
           "MLP push)."), "",
        "## Expected verdicts (from the design, before Arbiter ran)", "",
        "| claim | expected | why |", "|---|---|---|"]
    for claim in CLAIMS:
        lines.append(f"| {claim} | {spec['expected'][claim]} | {spec.get('why', {}).get(claim, 'as the paper: the design plants it')} |")
    lines += ["", "Machine-readable: `expected_verdicts.json` (the claims × controls matrix test reads it).", "",
              "## Ground truth, verified in PyTorch (transformers, no Arbiter code)",
              f"`Tools/make_controls.py` runs these on the control set (`GoldenData/controls/data`, {g['conflict_items']} "
              "conflict items) with transformers' eager attention: knockouts set attention scores of the named "
              "edges to −∞, head blocking and amplification scale a head's slice of `o_proj`'s input, MLP zeroing "
              "scales `mlp`'s output.", "",
              "| measure | value |", "|---|---|",
              f"| MFR (conflict items) | {g['mfr']:.3f} (follow-image {g['mfr_follow_image']:.3f}, follow-text {g['mfr_follow_text']:.3f}; held-out wordings {g['mfr_heldout_wording']:.3f}) |",
              f"| failed conflict items | {g['failed_items']} |",
              f"| accuracy: consistent / image-only / text-only | {g['accuracy_consistent']:.3f} / {g['accuracy_image_only']:.3f} / {g['accuracy_text_only']:.3f} |"]
    for name, v in ko.items():
        lines.append(f"| MFR, knockout {name} | {v['mfr']:.3f} (follow-image {v['mfr_follow_image']:.3f}, follow-text {v['mfr_follow_text']:.3f}) |")
    lines += [
        *([f"| layer-{L_TRANSFER} knockout {name}: mean shift of s / mean \\|s\\|, follow-image / follow-text | "
           f"{v['image']:.3f} / {v['text']:.3f} |" for name, v in g["layer1_shift"].items()]
          if "layer1_shift" in g else []),
        f"| MFR, planted heads blocked | {g['mfr_planted_blocked']:.3f} |",
        f"| accuracy with planted heads blocked: consistent / image-only / text-only | {g['accuracy_consistent_planted_blocked']:.3f} / {g['accuracy_image_only_planted_blocked']:.3f} / {g['accuracy_text_only_planted_blocked']:.3f} |",
        *([f"| accuracy with only the layer-{L_TRANSFER} transfer head blocked: consistent / image-only / text-only | "
           + " / ".join(f"{v:.3f}" for v in g["accuracy_transfer_head_blocked"].values()) + " |",
           "| accuracy with 5 random unplanted heads blocked, lowest of 10 sets: consistent / image-only / text-only | "
           + " / ".join(f"{v:.3f}" for v in g["accuracy_random_unplanted_blocked_min"].values()) + " |"]
          if "accuracy_transfer_head_blocked" in g else []),
        *([f"| MFR, one / first 5 / last 5 heads of layer {l} blocked | {v['one']:.3f} / {v['first5']:.3f} / {v['last5']:.3f} |"
           for l, v in g["dense_layers"].items()] if "dense_layers" in g else []),
        f"| MFR, 5 random unplanted heads blocked (mean of 10 sets, every 4th item) | {g['mfr_random_unplanted_blocked_mean']:.3f} |",
        "| failures fixed by amplifying the planted heads, α = " + " / ".join(g["amplification"]) + " | "
        + " / ".join("-" if v is None else f"{v:.3f}" for v in g["amplification"].values()) + " |",
        f"| MFR, deep MLPs (layers {LAYERS // 2}–{LAYERS - 1}) zeroed | {g['mfr_deep_mlps_zeroed']:.3f} |",
        f"| mean following score s (logit difference), as built / deep MLPs zeroed | {g['mean_s']:.3f} / {g['mean_s_deep_mlps_zeroed']:.3f} |",
        "| anchors' logit-lens agreement with the final answer, layers 0–7 | "
        + " ".join(f"{a:.2f}" for a in g["anchor_lens_agreement"]) + " |",
        "| anchors' logit lens, mean \\|s\\|, layers 0–7 | " + " ".join(f"{a:.3g}" for a in g["anchor_lens_mean_abs_s"]) + " |",
        f"| layer-1 instruction-token attention: image share, follow-image / follow-text items | {g['instruction_image_share_layer1']['image']:.3f} / {g['instruction_image_share_layer1']['text']:.3f} |",
        "", "The design's checks on these figures (the build refuses to write a control that misses one):", ""]
    lines += [f"- {'✓' if ok else '✗'} {name}" for name, ok in checks]
    lines += ["", "## Rebuild", "`make controls` (every control, with these checks) or "
              f"`.venv/bin/python Tools/make_controls.py write --only {control}`; `make tools-check` rebuilds them "
              "into a temporary folder and requires identical bytes.", ""]
    return "\n".join(lines)


REFERENCE_ITEMS = 2  # the first conflict item of each target


def reference_run(model: torch.nn.Module, folder: str, data: str, items: list[dict]) -> None:
    """transformers' eager run of the first follow-image and of the first follow-text conflict item (ids,
    pixels, residual stream after each layer, logits): `reference-image.h5` and `reference-text.h5`, Arbiter's
    parity check on this control (ControlParityTests). The case name is the item's id."""
    import golden_capture as capture
    from golden_llava import load_image_processor

    processor = load_image_processor(folder)
    for target in ("image", "text"):
        item = next(i for i in items if i["kind"] == "conflict" and i["target"] == target)
        ids, _ = tokens_and_spans(item)
        pixels = processor(images=Image.open(os.path.join(data, item["image"])), return_tensors="pt")["pixel_values"]
        recorder = capture.Recorder()
        try:
            recorder.attach_decoder(model.model.language_model, embed_from_inputs=True)
            with torch.no_grad():
                output = model(input_ids=torch.tensor([ids]), pixel_values=pixels.to(torch.float32),
                               output_attentions=True, use_cache=False)
        finally:
            recorder.close()
        hooks = capture.decoder_activations(recorder, LAYERS, output.logits, output.attentions)
        datasets = {"input_ids": np.asarray(ids, dtype=np.int64), "pixel_values": pixels.contiguous().numpy()}
        datasets.update({k: v for k, v in hooks.items() if k.endswith("hook_resid_post") or k in ("hook_embed", "logits")})
        prompt = " ".join(VOCABULARY[i] for i in ids)
        attributes = capture.file_attributes(os.path.basename(folder), "llava", SEED, item["id"], prompt)
        capture.write_h5(os.path.join(folder, f"reference-{target}.h5"), attributes, datasets)


def files_under(root: str) -> list[str]:
    out = []
    for folder, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(folder, n), root) for n in names]
    return sorted(f for f in out if f != "manifest.json")


def build_one(root: str, control: str, ground: bool) -> list[str]:
    """Writes one control into root/control; with `ground`, runs its PyTorch checks, writes its card and
    ground_truth.json and returns the checks it missed."""
    import golden
    golden.configure_torch()
    t = time.time()
    data = os.path.join(root, "data")
    with open(os.path.join(data, "dataset.json")) as f:
        items = json.load(f)["items"]
    folder = os.path.join(root, control)
    _, planted = write_control(folder, control)
    if not ground:
        return []
    loaded = load(folder)
    reference_run(loaded, folder, data, items)
    runner = Runner(loaded, folder, data, items)
    try:
        g = ground_truth(runner, planted, control)
    finally:
        runner.close()
    checks = design_checks(control, g)
    g["checks"] = [{"check": name, "passed": ok} for name, ok in checks]
    write_json(os.path.join(folder, "ground_truth.json"), g)
    with open(os.path.join(folder, "MODEL_CARD.md"), "w") as f:
        f.write(card(control, g, checks, planted))
    failed = [name for name, ok in checks if not ok]
    log(f"{control}: {len(checks) - len(failed)}/{len(checks)} design checks passed in {time.time() - t:.0f} s")
    return [f"{control}: {name}" for name in failed]


def generate(root: str, only: list[str], ground: bool) -> None:
    """The dataset, then the controls side by side (one process per core, one torch thread each)."""
    import multiprocessing

    write_dataset(os.path.join(root, "data"))
    workers = max(1, min(len(only), os.cpu_count() or 1))
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        failures = pool.starmap(build_one, [(root, control, ground) for control in only])
    missed = [f for group in failures for f in group]
    if missed:
        raise RuntimeError("the ground truth misses its design: " + "; ".join(missed))


def manifest(root: str) -> dict:
    import tokenizers
    return {"generator": "Tools/make_controls.py", "seed": SEED,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "tokenizers": tokenizers.__version__, "numpy": np.__version__},
            "files": {f: sha256(os.path.join(root, f)) for f in files_under(root)}}


def refuse_foreign(out: str, force: bool) -> None:
    """Never overwrite what this script did not write: `out` must be absent, or hold our manifest with every
    file as it lists it (hand edits need --force) and nothing else."""
    if not os.path.exists(out):
        return
    if os.path.islink(out) or not os.path.isdir(out):
        raise SystemExit(f"refusing to write {out}: it exists and is not a folder this script wrote")
    path = os.path.join(out, "manifest.json")
    if not os.path.isfile(path):
        raise SystemExit(f"refusing to write {out}: it has no manifest.json of Tools/make_controls.py")
    with open(path) as f:
        listed = json.load(f)
    if listed.get("generator") != "Tools/make_controls.py":
        raise SystemExit(f"refusing to write {out}: its manifest.json was not written by Tools/make_controls.py")
    extra = [f for f in files_under(out) if f not in listed["files"]]
    if extra:
        raise SystemExit(f"refusing to write {out}: it holds files this script did not write: {', '.join(extra[:5])}")
    edited = [f for f, digest in listed["files"].items()
              if os.path.exists(os.path.join(out, f)) and sha256(os.path.join(out, f)) != digest]
    if edited and not force:
        raise SystemExit(f"refusing to write {out}: edited since written ({', '.join(edited[:5])}); --force replaces them")


def command_write(out: str, only: list[str], force: bool) -> int:
    refuse_foreign(out, force)
    staging = tempfile.mkdtemp(prefix=".controls-", dir=os.path.dirname(os.path.abspath(out)))
    try:
        if os.path.isdir(out):
            shutil.copytree(out, staging, dirs_exist_ok=True)
        generate(staging, only, ground=True)
        write_json(os.path.join(staging, "manifest.json"), manifest(staging))
        old = out + ".old"
        if os.path.isdir(out):
            os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"wrote {out}")
    return 0


def command_check(out: str) -> int:
    with open(os.path.join(out, "manifest.json")) as f:
        committed = json.load(f)["files"]
    with tempfile.TemporaryDirectory() as fresh:
        generate(fresh, list(CONTROLS), ground=False)
        rebuilt = {f: sha256(os.path.join(fresh, f)) for f in files_under(fresh)}
    problems = []
    for f, digest in rebuilt.items():
        if f not in committed:
            problems.append(f"{f}: rebuilt but not in the manifest")
        elif committed[f] != digest:
            problems.append(f"{f}: rebuilt bytes differ from the committed ones")
    for f, digest in committed.items():
        path = os.path.join(out, f)
        if not os.path.exists(path):
            problems.append(f"{f}: in the manifest but missing")
        elif sha256(path) != digest:
            problems.append(f"{f}: committed file differs from its manifest entry")
    if problems:
        log("controls check FAILED:\n  " + "\n  ".join(problems))
        return 1
    log(f"controls check: {len(rebuilt)} rebuilt files identical to the committed ones "
        f"({len(committed) - len(rebuilt)} written only with the PyTorch checks: cards, ground_truth.json)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["write", "check", "verify"])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--only", action="append", choices=list(CONTROLS))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "write":
        return command_write(args.out, args.only or list(CONTROLS), args.force)
    if args.command == "check":
        return command_check(args.out)
    with tempfile.TemporaryDirectory() as scratch:
        generate(scratch, args.only or list(CONTROLS), ground=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
