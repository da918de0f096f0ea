"""Trains the two bundled LLaVA-format models (GoldenData/models/arbiter-shortcut, arbiter-main) on CPU from
the synthetic conflict data written by `arbiter data generate`. A one-time step, not part of CI.

    .venv/bin/python Tools/train_tiny.py --arbiter .build/debug/arbiter --recipe main --out DIR --seed 1
    .venv/bin/python Tools/train_tiny.py ... --recipe main --seed 1 --continue-from DIR --steps N --lr X --out DIR2
        (S3 again from DIR's weights; the same data are regenerated from the seed)

Model: transformers `LlavaForConditionalGeneration` (CLIP vision tower 32x32/patch 8 -> 16 image tokens, gelu
projector, Llama text model), saved with `save_pretrained` (float32 safetensors) plus tokenizer.json (tokenizers
BPE, Metaspace, byte fallback, `<s>` prepended, `<image>` special), preprocessor_config.json (CLIPImageProcessor,
32x32) and prompt_layout.json (a copy of the built-in `raw` layout the prompts are built with).

Recipes:
  shortcut  everything from scratch, jointly, on the conflict mix (train-split paraphrases only).
  main      staged: S0 vision tower pretrained as a scene classifier; S1 text model alone as an LM on text-only
            items, a small language-prior corpus (object colours and shapes, word meanings) and generic sentences;
            S2 tower + projector aligned with the text model frozen (image-only questions and captions);
            S3 everything on the conflict mix with the S1 LM loss mixed in, held-out validation every N steps,
            and the checkpoint chosen on the validation split (see `choose_checkpoint`).

Cost on this project's 2-core machine (AVX2, torch 2.13, float32): a training step costs ~35 ms per 100-token
sequence at hidden 128 (forward + backward + AdamW, linear in the batch from 16 to 96 sequences; matmuls ~50 %,
attention ~20 %, elementwise ~20 %), ~25 ms at hidden 96. `main` took ~90 minutes with OMP_WAIT_POLICY=PASSIVE
(S1 1.18 s/step, S3 2.55 s/step); with spinning threads (the default now) and no padding mask, S1 takes
0.93 s/step and S3 2.0 s/step, ~75 minutes in all (projected); on another day the same host ran them at 1.40
and 2.35 s/step (its speed varies by day; torch's f32 matmul reaches ~122 GFLOP/s here). OpenMP threads spin
while idle: OMP_WAIT_POLICY=PASSIVE made a step ~1.45x slower on the idle machine (48 x 101 tokens: 1.3 -> 1.9 s),
but set it in the environment on a shared, oversubscribed CPU, where spinning made steps ~20x slower.

Data: every conflict/consistent/no-instruction/unimodal item comes from `arbiter data generate` (train, S1, S2,
validation and test sets are separate generator runs with their own seeds). Training sets use only the `train`
instruction paraphrases (main: half of them composed from templates, `--composed-instructions`, so the target
cannot be read off one word); validation and test sets use all fixed paraphrases, and the reported numbers are
on the held-out paraphrases of the test set.

Scoring (what the Swift analyses do): the first answer token after the prompt and a space; an item follows the
instruction when the probability mass on the first tokens of the instructed modality's candidate list exceeds
the mass on the competitor's. Accuracy (consistent, unimodal) = the top-1 token of the whole vocabulary is a
first token of the expected answer's candidates.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from llama2_tokenizer import build_llama2_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LAYOUT_PATH = os.path.join(ROOT, "Sources", "ArbiterModels", "Prompt", "Layouts", "raw.json")
IMAGE_SIZE = 32
PATCH = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH) ** 2
IMAGE_TOKEN = "<image>"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
FIELDS = ("context", "instruction", "question", "constraint")

# Targets for arbiter-main on its validation split (the brief's realism targets, not paper claims).
MFR_RANGE = (0.80, 0.97)
MIN_WRONG_MODALITY = 0.03
MIN_IMAGE_ONLY = 0.95
MIN_CONSISTENT = 0.95


def log(*args: Any) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# --- recipes ----------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    name: str
    text_layers: int
    text_heads: int
    hidden: int
    mlp: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_mlp: int
    train_count: int
    batch: int
    lr: float
    s3_steps: int
    eval_every: int
    staged: bool
    s0_steps: int = 0
    s1_steps: int = 0
    s2_steps: int = 0
    lm_mix: int = 0  # S1 sequences added to each S3 batch (LM loss)
    lm_weight: float = 0.0
    alt_positions: float = 0.0  # share of training prompts with the instruction in another place
    composed_instructions: bool = False  # half of the training instructions composed from templates
    s3_mix: dict[str, float] = field(default_factory=dict)


RECIPES = {
    "shortcut": Recipe(
        name="shortcut", text_layers=8, text_heads=8, hidden=48, mlp=128, vision_hidden=48, vision_layers=3,
        vision_heads=4, vision_mlp=96, train_count=6000, batch=16, lr=2e-3, s3_steps=2400, eval_every=0,
        staged=False, s3_mix={"conflict": 0.65, "consistent": 0.15, "no_instruction": 0.10, "image_only": 0.10}),
    "main": Recipe(
        name="main", text_layers=12, text_heads=8, hidden=128, mlp=512, vision_hidden=64, vision_layers=4,
        vision_heads=4, vision_mlp=128, train_count=6000, batch=48, lr=5e-4, s3_steps=1500, eval_every=75,
        staged=True, s0_steps=2500, s1_steps=1000, s2_steps=400, lm_mix=8, lm_weight=0.5, alt_positions=0.25,
        composed_instructions=True,
        s3_mix={"conflict": 0.65, "consistent": 0.15, "no_instruction": 0.10, "image_only": 0.10}),
}

# Auxiliary language-model text for S1 (main only): a language prior the MLPs can hold (typical colours and
# shapes of everyday objects) and word meanings (so unseen instruction wording is not entirely unknown). The
# conflict items themselves all come from the generator.
OBJECT_COLORS = [("banana", "yellow"), ("lemon", "yellow"), ("sun", "yellow"), ("tomato", "red"),
                 ("strawberry", "red"), ("cherry", "red"), ("grass", "green"), ("leaf", "green"),
                 ("frog", "green"), ("sky", "blue"), ("ocean", "blue"), ("carrot", "orange"),
                 ("pumpkin", "orange"), ("plum", "purple"), ("grape", "purple"), ("flamingo", "pink"),
                 ("chocolate bar", "brown"), ("bear", "brown"), ("coal", "black"), ("crow", "black")]
OBJECT_SHAPES = [("ball", "circle"), ("coin", "circle"), ("wheel", "circle"), ("dice", "square"),
                 ("window", "square"), ("tile", "square"), ("pyramid", "triangle"), ("slice of pizza", "triangle"),
                 ("kite", "diamond"), ("gem", "diamond"), ("plus sign", "cross"), ("crossroad", "cross")]
WORD_MEANINGS = [
    ("disregard", "ignore"), ("contradict", "disagree with"), ("rely on", "trust"), ("override", "overrule"),
    ("authoritative", "the one to believe"), ("reflect", "follow"), ("claims", "says"), ("states", "says"),
    ("visual evidence", "the image"), ("written description", "the text context"), ("picture", "image"),
    ("description", "text context"), ("mismatch", "conflict"), ("misleading", "wrong"), ("priority", "precedence"),
    ("whatever", "no matter what"), ("appears to show", "shows"), ("alone", "only"), ("base", "ground"),
    ("should", "if"), ("go with", "choose"), ("never", "not ever"), ("instead", "in place of that"),
]
GENERIC = [
    "The cat sleeps on the warm window sill in the afternoon.",
    "A careful reader checks every claim against the evidence.",
    "When two reports disagree, people decide which one to believe.",
    "The teacher asked the students to look at the picture and describe it.",
    "A short answer is often the clearest answer.",
    "The map shows the river on the left side and the hills at the top.",
    "Some descriptions are wrong, and some pictures are misleading.",
    "She read the note twice before she answered the question.",
]


def aux_sentences(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.4:
            obj, color = rng.choice(OBJECT_COLORS)
            out.append(rng.choice([f"A {obj} is {color}.", f"The {obj} is usually {color}.",
                                   f"What color is a {obj}? {color}", f"Most people know that a {obj} is {color}."]))
        elif kind < 0.6:
            obj, shape = rng.choice(OBJECT_SHAPES)
            out.append(rng.choice([f"A {obj} is shaped like a {shape}.", f"What shape is a {obj}? {shape}",
                                   f"The outline of a {obj} is a {shape}."]))
        elif kind < 0.85:
            word, meaning = rng.choice(WORD_MEANINGS)
            out.append(rng.choice([f"To {word} means to {meaning}.", f"The word {word} means {meaning}.",
                                   f"{word.capitalize()} is another way to say {meaning}."]))
        else:
            out.append(rng.choice(GENERIC))
    return out


# --- data from the generator ------------------------------------------------------------------------------


@dataclass
class DataSet:
    name: str
    items: list[dict[str, Any]]
    images: dict[str, np.ndarray]  # item id -> uint8 [H, W, 3]
    folder: str


def generate(arbiter: str, folder: str, name: str, count: int, seed: int, mix: str | None,
             train_only: bool, composed: bool = False) -> DataSet:
    out = os.path.join(folder, name)
    cmd = [arbiter, "data", "generate", "--count", str(count), "--seed", str(seed), "--out", out,
           "--image-size", str(IMAGE_SIZE)]
    if mix:
        cmd += ["--mix", mix]
    if train_only:
        cmd.append("--train-instructions-only")
    if composed:
        cmd.append("--composed-instructions")
    marker = os.path.join(out, "generated-by.txt")
    if os.path.exists(marker) and open(marker).read() == " ".join(cmd[1:]):
        log("reusing:", " ".join(cmd[1:]))
    else:
        log("generate:", " ".join(cmd[1:]))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(marker, "w") as f:
            f.write(" ".join(cmd[1:]))
    with open(os.path.join(out, "dataset.json")) as f:
        data = json.load(f)
    items = data["items"]
    images = {}
    for item in items:
        if item.get("image"):
            with Image.open(os.path.join(out, item["image"])) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if arr.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
                raise RuntimeError(f"{item['id']}: image shape {arr.shape}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
            images[item["id"]] = arr
    return DataSet(name=name, items=items, images=images, folder=out)


def pixel_values(arrays: list[np.ndarray]) -> torch.Tensor:
    x = np.stack(arrays).astype(np.float32) / 255.0
    x = (x - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


# --- prompts and tokenizer --------------------------------------------------------------------------------


def load_layout() -> dict[str, Any]:
    with open(LAYOUT_PATH) as f:
        return json.load(f)


def alternative_layout(layout: dict[str, Any]) -> dict[str, Any]:
    """Training-only variant: the instruction after the question (before the output-format sentence)."""
    return {**layout, "pieces": [
        {"slot": "image"}, {"text": "\n", "with": "image"},
        {"text": "text context:", "with": "context"}, {"slot": "context", "prefix": " "},
        {"text": "\n"}, {"slot": "question"},
        {"text": "\n", "with": "instruction"}, {"slot": "instruction"},
        {"text": "\n", "with": "constraint"}, {"slot": "constraint"},
    ]}


def prompt_pieces(layout: dict[str, Any], fields: dict[str, str | None], has_image: bool) -> list[str]:
    """The layout's pieces as PromptBuilder assembles them (absent slots drop themselves and their `with`s)."""
    def present(slot: str) -> bool:
        return has_image if slot == "image" else bool(fields.get(slot))

    texts = []
    for piece in layout["pieces"]:
        if "slot" in piece:
            slot = piece["slot"]
            if not present(slot):
                continue
            value = IMAGE_TOKEN * IMAGE_TOKENS if slot == "image" else fields[slot]
            texts.append(piece.get("prefix", "") + value)
        else:
            if "with" in piece and not present(piece["with"]):
                continue
            texts.append(piece["text"])
    return texts


def item_fields(item: dict[str, Any]) -> dict[str, str | None]:
    return {k: item.get(k) for k in FIELDS}


def build_tokenizer(texts: list[str]) -> Any:
    """Llama-2 style BPE (as Tools/golden_llava.py), trained until every word of the corpus is one token."""
    return build_llama2_tokenizer(texts, 6000, "always", IMAGE_TOKEN)


def tokenizer_corpus(sets: list[DataSet], aux: list[str]) -> list[str]:
    texts: list[str] = []
    for ds in sets:
        for item in ds.items:
            for k in FIELDS:
                if item.get(k):
                    texts.append(item[k])
            for c in item["answer_img_candidate_list"] + item["answer_text_candidate_list"]:
                texts.append(c)
    texts += ["text context:"] + aux + [caption_words for caption_words in CAPTION_WORDS]
    return texts


class Encoder:
    def __init__(self, tok: Any):
        self.tok = tok
        self.image_id = tok.token_to_id(IMAGE_TOKEN)
        self.eos = tok.token_to_id("</s>")
        self.cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids = self.cache.get(text)
        if ids is None:
            ids = self.tok.encode(text).ids
            self.cache[text] = ids
        return ids

    def with_answer(self, prompt: str, answer: str) -> tuple[list[int], list[int]]:
        """(prompt ids, answer ids) with the answer after the layout's answer prefix (a space)."""
        p = self.encode(prompt)
        full = self.encode(prompt + " " + answer)
        if full[:len(p)] != p or len(full) == len(p):
            raise RuntimeError(f"answer {answer!r} does not start at a token boundary after {prompt[-40:]!r}")
        return p, full[len(p):]

    def first_tokens(self, prompt: str, candidates: list[str]) -> set[int]:
        return {self.with_answer(prompt, c)[1][0] for c in candidates}


# --- examples ---------------------------------------------------------------------------------------------


@dataclass
class Example:
    ids: list[int]
    loss_from: int  # first position whose token is predicted with loss (0: the whole sequence)
    image: np.ndarray | None


def answer_for_training(item: dict[str, Any]) -> str:
    """The answer a trained model should give: the expected one; without an instruction, the image's (a VQA
    model answers about the picture)."""
    if item["kind"] == "no_instruction":
        return item["answer_img"]
    return item["expected"]


def qa_example(enc: Encoder, layout: dict[str, Any], item: dict[str, Any], image: np.ndarray | None,
               answer: str | None = None) -> Example:
    text = "".join(prompt_pieces(layout, item_fields(item), image is not None))
    p, a = enc.with_answer(text, answer if answer is not None else answer_for_training(item))
    return Example(ids=p + a + [enc.eos], loss_from=len(p), image=image)


CAPTION_WORDS = ["The picture shows", "Describe the picture.", "on a", "background", "near the", "center", "and"]


def caption(item: dict[str, Any]) -> str:
    scene = item["scene"]
    objs = scene["objects"]
    size = scene["size"]
    o = objs[0]
    n = len(objs)
    words = ["zero", "one", "two", "three", "four", "five"]
    shape = o["shape"] if n == 1 else (o["shape"] + "es" if o["shape"] == "cross" else o["shape"] + "s")
    where = []
    if n == 1:
        dx, dy = o["x"] - size / 2, o["y"] - size / 2
        if abs(dx) >= abs(dy) and abs(dx) > size / 8:
            where = [" on the left side" if dx < 0 else " on the right side"]
        elif abs(dy) > size / 8:
            where = [" at the top" if dy < 0 else " at the bottom"]
        else:
            where = [" near the center"]
    background = scene["background"].replace("-", " ")
    return f"The picture shows {words[n]} {o['color']} {shape}{where[0] if where else ''} on a {background} background."


def caption_example(enc: Encoder, item: dict[str, Any], image: np.ndarray) -> Example:
    prompt = IMAGE_TOKEN * IMAGE_TOKENS + "\nDescribe the picture."
    p, a = enc.with_answer(prompt, caption(item))
    return Example(ids=p + a + [enc.eos], loss_from=len(p), image=image)


def lm_example(enc: Encoder, text: str) -> Example:
    return Example(ids=enc.encode(text) + [enc.eos], loss_from=1, image=None)


def collate(examples: list[Example]) -> dict[str, torch.Tensor | None]:
    length = max(len(e.ids) for e in examples)
    ids = torch.zeros(len(examples), length, dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids)
        labels[i, e.loss_from:n] = ids[i, e.loss_from:n]
    images = [e.image for e in examples if e.image is not None]
    return {"input_ids": ids, "labels": labels,
            "pixel_values": pixel_values(images) if images else None}


def batch_loss(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    # No attention mask: sequences are right-padded and attention is causal, so no real position attends to a
    # pad (positions count from 0 either way) and the logits of real positions are the same with and without
    # the padding mask (checked: identical bits, and a continuation run's losses matched the masked run's to the
    # printed digits); the mask-free causal attention was ~8% faster per step in a synthetic measurement.
    out = model(input_ids=batch["input_ids"], attention_mask=None,
                pixel_values=batch["pixel_values"], use_cache=False)
    logits = out.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


# --- model ------------------------------------------------------------------------------------------------


def build_model(recipe: Recipe, vocab_size: int, image_token_id: int) -> torch.nn.Module:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH, hidden_size=recipe.vision_hidden,
                              intermediate_size=recipe.vision_mlp, num_hidden_layers=recipe.vision_layers,
                              num_attention_heads=recipe.vision_heads, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                              projection_dim=recipe.vision_hidden)
    text = LlamaConfig(
        vocab_size=vocab_size, hidden_size=recipe.hidden, intermediate_size=recipe.mlp,
        num_hidden_layers=recipe.text_layers, num_attention_heads=recipe.text_heads,
        num_key_value_heads=recipe.text_heads, head_dim=recipe.hidden // recipe.text_heads, hidden_act="silu",
        max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, bos_token_id=1, eos_token_id=2,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=image_token_id, image_seq_length=IMAGE_TOKENS,
        projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default",
        multimodal_projector_bias=True, tie_word_embeddings=False,
    )
    return LlavaForConditionalGeneration(config)


def param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- evaluation -------------------------------------------------------------------------------------------


@dataclass
class EvalItem:
    item: dict[str, Any]
    prompt: list[int]
    image: np.ndarray | None
    instructed: set[int]  # first tokens of the instructed (or expected) modality's candidates
    competitor: set[int]


def eval_items(enc: Encoder, layout: dict[str, Any], ds: DataSet, kinds: set[str]) -> list[EvalItem]:
    out = []
    for item in ds.items:
        if item["kind"] not in kinds:
            continue
        image = ds.images.get(item["id"])
        text = "".join(prompt_pieces(layout, item_fields(item), image is not None))
        img = enc.first_tokens(text, item["answer_img_candidate_list"])
        txt = enc.first_tokens(text, item["answer_text_candidate_list"])
        follows_text = item["kind"] == "text_only" or (item["kind"] == "conflict" and item["target"] == "text")
        inst, comp = (txt, img) if follows_text else (img, txt)
        out.append(EvalItem(item=item, prompt=enc.encode(text), image=image, instructed=inst, competitor=comp))
    return out


@torch.no_grad()
def score(model: torch.nn.Module, items: list[EvalItem], batch: int = 64) -> list[dict[str, Any]]:
    model.eval()
    results = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        b = collate([Example(ids=e.prompt, loss_from=len(e.prompt), image=e.image) for e in chunk])
        logits = model(input_ids=b["input_ids"], attention_mask=None,  # right-padded, causal: see batch_loss
                       pixel_values=b["pixel_values"], use_cache=False).logits
        for i, e in enumerate(chunk):
            probs = torch.softmax(logits[i, len(e.prompt) - 1].double(), dim=-1)
            results.append({
                "inst": float(sum(probs[t] for t in e.instructed)),
                "comp": float(sum(probs[t] for t in e.competitor)),
                "top": int(torch.argmax(probs)),
            })
    model.train()
    return results


def metrics(items: list[EvalItem], results: list[dict[str, Any]]) -> dict[str, Any]:
    m: dict[str, Any] = {}

    def rate(sel: list[int], pred) -> dict[str, Any]:
        hits = sum(1 for i in sel if pred(items[i], results[i]))
        return {"n": len(sel), "hits": hits, "rate": hits / len(sel) if sel else float("nan")}

    def follows(e, r):
        return r["inst"] > r["comp"]

    def correct(e, r):
        return r["top"] in e.instructed

    idx = range(len(items))
    for split in ("heldout", "train"):
        for target in ("image", "text"):
            sel = [i for i in idx if items[i].item["kind"] == "conflict" and items[i].item["target"] == target
                   and items[i].item["instruction_split"] == split]
            m[f"mfr_{split}_{target}"] = rate(sel, follows)
            m[f"top1_{split}_{target}"] = rate(sel, correct)
        sel = [i for i in idx if items[i].item["kind"] == "conflict" and items[i].item["instruction_split"] == split]
        m[f"wrong_modality_{split}"] = rate(sel, lambda e, r: r["comp"] > r["inst"])
        m[f"wrong_modality_top1_{split}"] = rate(sel, lambda e, r: r["top"] in e.competitor)
        m[f"other_failure_top1_{split}"] = rate(
            sel, lambda e, r: r["top"] not in e.competitor and r["top"] not in e.instructed)
    for kind in ("consistent", "image_only", "text_only"):
        m[f"acc_{kind}"] = rate([i for i in idx if items[i].item["kind"] == kind], correct)
    m["no_instruction_image_pref"] = rate([i for i in idx if items[i].item["kind"] == "no_instruction"], follows)
    return m


def in_range(m: dict[str, Any]) -> bool:
    lo, hi = MFR_RANGE
    return (lo <= m["mfr_heldout_image"]["rate"] <= hi and lo <= m["mfr_heldout_text"]["rate"] <= hi
            and m["wrong_modality_heldout"]["rate"] >= MIN_WRONG_MODALITY
            and m["acc_image_only"]["rate"] >= MIN_IMAGE_ONLY and m["acc_consistent"]["rate"] >= MIN_CONSISTENT)


def summary(m: dict[str, Any]) -> str:
    def f(k):
        return f"{m[k]['rate']:.3f}({m[k]['hits']}/{m[k]['n']})"
    return (f"heldout MFR img {f('mfr_heldout_image')} txt {f('mfr_heldout_text')} | train MFR img "
            f"{f('mfr_train_image')} txt {f('mfr_train_text')} | wrong-mod {f('wrong_modality_heldout')} | "
            f"consistent {f('acc_consistent')} image-only {f('acc_image_only')} text-only {f('acc_text_only')}")


# --- training ---------------------------------------------------------------------------------------------


def run_steps(model: torch.nn.Module, params: list[torch.nn.Parameter], steps: int, lr: float, make_batch,
              label: str, on_eval=None, eval_every: int = 0, minutes: float | None = None) -> int:
    """Runs up to `steps` optimiser steps (fewer when `minutes` run out); returns the steps done."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    start = time.time()
    for step in range(1, steps + 1):
        scale = step / warmup if step <= warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr * max(scale, 0.05)
        loss = make_batch(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 25 == 0 or step == 1:
            rate = (time.time() - start) / step
            log(f"{label} step {step}/{steps} loss {loss.item():.4f} ({rate:.2f} s/step, "
                f"~{rate * (steps - step) / 60:.1f} min left)")
        if on_eval and eval_every and step % eval_every == 0:
            on_eval(step)
        if minutes is not None and time.time() - start > minutes * 60:
            log(f"{label}: time limit of {minutes} min reached after {step} steps")
            if on_eval and eval_every and step % eval_every != 0:
                on_eval(step)
            return step
    return steps


def sample_kinds(rng: random.Random, mix: dict[str, float], n: int) -> list[str]:
    kinds = list(mix)
    return rng.choices(kinds, weights=[mix[k] for k in kinds], k=n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arbiter", required=True, help="path of the arbiter binary (writes the data)")
    ap.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    ap.add_argument("--out", required=True, help="model folder to write")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, help="override the S3 step count")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every stage's step count and the data sizes (e.g. 0.02 for a smoke run)")
    ap.add_argument("--s3-minutes", type=float,
                    help="stop S3 after this many minutes (for a loaded machine; the card records the steps done)")
    ap.add_argument("--work", help="folder for generated data (default: a temp folder, removed)")
    ap.add_argument("--continue-from", metavar="DIR",
                    help="a folder this script wrote with the same recipe and seed: skip S0-S2 and run S3 again from "
                         "its weights (and tokenizer) for --steps steps at --lr; the card records both runs")
    ap.add_argument("--lr", type=float, help="override the S3 learning rate")
    args = ap.parse_args()

    recipe = copy.deepcopy(RECIPES[args.recipe])
    if args.scale != 1.0:
        for name in ("s0_steps", "s1_steps", "s2_steps", "s3_steps", "eval_every", "train_count"):
            setattr(recipe, name, max(1, int(getattr(recipe, name) * args.scale)) if getattr(recipe, name) else 0)
    if args.steps:
        recipe.s3_steps = args.steps
    if args.lr:
        recipe.lr = args.lr
    previous: dict[str, Any] | None = None
    if args.continue_from:
        with open(os.path.join(args.continue_from, "training_record.json")) as f:
            previous = json.load(f)
        if previous["recipe"]["name"] != recipe.name or previous["seed"] != args.seed:
            ap.error(f"--continue-from {args.continue_from} was trained with recipe {previous['recipe']['name']} "
                     f"and seed {previous['seed']}, not {recipe.name} and {args.seed}")
        if not args.steps:
            ap.error("--continue-from needs --steps (the S3 steps of the continuation)")
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = random.Random(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    t0 = time.time()
    arbiter = os.path.abspath(args.arbiter)
    work = args.work or tempfile.mkdtemp(prefix="arbiter-train-")
    os.makedirs(work, exist_ok=True)
    s = args.seed * 1000
    # Generator runs (command lines recorded in the model card).
    runs = {
        "train": dict(count=recipe.train_count, seed=s + 1, mix="conflict=0.65,consistent=0.15,no_instruction=0.1,"
                      "image_only=0.1", train_only=True, composed=recipe.composed_instructions),
        "val": dict(count=max(100, int(400 * min(1.0, args.scale))), seed=s + 2, mix="conflict=0.8,consistent=0.1,image_only=0.1",
                    train_only=False),
        "test": dict(count=max(100, int(1200 * min(1.0, args.scale))), seed=s + 3, mix=None, train_only=False),
    }
    if recipe.staged:
        runs["s1"] = dict(count=max(100, int(3000 * min(1.0, args.scale))), seed=s + 4, mix="text_only=1", train_only=True)
        runs["s2"] = dict(count=max(100, int(3000 * min(1.0, args.scale))), seed=s + 5, mix="image_only=1", train_only=True)
    sets = {name: generate(arbiter, work, name, **run) for name, run in runs.items()}
    aux = aux_sentences(rng, 3000) if recipe.staged else []

    layout = load_layout()
    alt = alternative_layout(layout)
    tok = build_tokenizer(tokenizer_corpus(list(sets.values()), aux))
    if args.continue_from:
        from tokenizers import Tokenizer
        from transformers import LlavaForConditionalGeneration

        # The regenerated data rebuild the same tokenizer; the folder's own one must agree.
        kept = Tokenizer.from_file(os.path.join(args.continue_from, "tokenizer.json"))
        if kept.get_vocab() != tok.get_vocab():
            raise RuntimeError(f"{args.continue_from}/tokenizer.json differs from the one this recipe and seed build")
        tok = kept
    enc = Encoder(tok)
    vocab = enc.image_id + 1
    vocab_size = (vocab + 7) // 8 * 8
    if args.continue_from:
        model = LlavaForConditionalGeneration.from_pretrained(args.continue_from, dtype=torch.float32)
        log(f"continuing from {args.continue_from} (its chosen S3 step {previous['chosen_s3_step']})")
    else:
        model = build_model(recipe, vocab_size, enc.image_id)
    model.train()
    lm = model.model.language_model
    tower = model.model.vision_tower
    log(f"recipe {recipe.name}: vocab {vocab} (padded {vocab_size}), params {param_count(model):,} "
        f"(text {param_count(lm):,}, vision {param_count(tower):,})")

    train = sets["train"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in train.items:
        by_kind.setdefault(item["kind"], []).append(item)
    val_items = eval_items(enc, layout, sets["val"], {"conflict", "consistent", "image_only", "text_only"})
    val_items = [e for e in val_items if e.item["kind"] != "conflict" or e.item["instruction_split"] == "heldout"
                 or rng.random() < 0.05]
    test_items = eval_items(enc, layout, sets["test"], {"conflict", "consistent", "image_only", "text_only",
                                                        "no_instruction"})
    log(f"val items {len(val_items)}, test items {len(test_items)}")
    times: dict[str, float] = {}

    def all_params():
        return [p for p in model.parameters() if p.requires_grad]

    def s1_sequences() -> list[Example]:
        """The S1 language-model sequences (the text-only items, then the auxiliary corpus), shuffled by `rng`."""
        out = []
        for it in sets["s1"].items:
            text = "".join(prompt_pieces(layout, item_fields(it), False))
            p, a = enc.with_answer(text, it["expected"])
            out.append(Example(ids=p + a + [enc.eos], loss_from=1, image=None))
        out += [lm_example(enc, text) for text in aux]
        rng.shuffle(out)
        return out

    lm_examples: list[Example] = []
    if recipe.staged and args.continue_from:
        lm_examples = s1_sequences()  # what S3 mixes in (S0-S2 are skipped)
    elif recipe.staged:
        # S0: the vision tower as a scene classifier (colour, shape, count, coarse x and y of the first object).
        t = time.time()
        imgs = [(it, train.images[it["id"]]) for it in train.items if it["id"] in train.images]
        imgs += [(it, sets["s2"].images[it["id"]]) for it in sets["s2"].items]
        colors = sorted({it["scene"]["objects"][0]["color"] for it, _ in imgs})
        shapes = sorted({it["scene"]["objects"][0]["shape"] for it, _ in imgs})
        dim = recipe.vision_hidden * IMAGE_TOKENS
        heads = torch.nn.ModuleDict({"color": torch.nn.Linear(dim, len(colors)), "shape": torch.nn.Linear(dim, len(shapes)),
                                     "count": torch.nn.Linear(dim, 5), "x": torch.nn.Linear(dim, 3),
                                     "y": torch.nn.Linear(dim, 3)})

        def labels_of(it):
            sc = it["scene"]
            o = sc["objects"][0]
            bins = lambda v: 0 if v < sc["size"] * 0.4 else (2 if v > sc["size"] * 0.6 else 1)
            return [colors.index(o["color"]), shapes.index(o["shape"]), len(sc["objects"]), bins(o["x"]), bins(o["y"])]

        def s0_batch(step):
            chosen = [imgs[rng.randrange(len(imgs))] for _ in range(64)]
            px = pixel_values([a for _, a in chosen])
            lab = torch.tensor([labels_of(it) for it, _ in chosen])
            hs = tower(px, output_hidden_states=True).hidden_states[model.config.vision_feature_layer]
            feats = hs[:, 1:].reshape(len(chosen), -1)
            return sum(F.cross_entropy(heads[k](feats), lab[:, j]) for j, k in enumerate(["color", "shape", "count", "x", "y"]))

        run_steps(model, list(tower.parameters()) + list(heads.parameters()), recipe.s0_steps, 2e-3, s0_batch, "S0")
        times["S0"] = time.time() - t

        # S1: the text model alone as a language model.
        t = time.time()
        lm_examples = s1_sequences()
        for p in tower.parameters():
            p.requires_grad_(False)
        for p in model.model.multi_modal_projector.parameters():
            p.requires_grad_(False)
        run_steps(model, all_params(), recipe.s1_steps, 1e-3,
                  lambda step: batch_loss(model, collate(rng.sample(lm_examples, recipe.batch))), "S1")
        times["S1"] = time.time() - t

        # S2: tower + projector aligned to the frozen text model (image-only questions and captions).
        t = time.time()
        for p in model.parameters():
            p.requires_grad_(False)
        for p in list(tower.parameters()) + list(model.model.multi_modal_projector.parameters()):
            p.requires_grad_(True)
        s2 = sets["s2"]

        def s2_batch(step):
            exs = []
            for _ in range(recipe.batch):
                it = s2.items[rng.randrange(len(s2.items))]
                im = s2.images[it["id"]]
                exs.append(caption_example(enc, it, im) if rng.random() < 0.3 else qa_example(enc, layout, it, im))
            return batch_loss(model, collate(exs))

        run_steps(model, all_params(), recipe.s2_steps, 1e-3, s2_batch, "S2")
        times["S2"] = time.time() - t
        for p in model.parameters():
            p.requires_grad_(True)

    # S3 (shortcut: the only stage): everything on the conflict mix.
    t = time.time()
    history: list[dict[str, Any]] = []
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def s3_batch(step):
        exs = []
        for kind in sample_kinds(rng, recipe.s3_mix, recipe.batch):
            it = by_kind[kind][rng.randrange(len(by_kind[kind]))]
            lay = alt if rng.random() < recipe.alt_positions else layout
            exs.append(qa_example(enc, lay, it, train.images.get(it["id"])))
        loss = batch_loss(model, collate(exs))
        if recipe.lm_mix:
            loss = loss + recipe.lm_weight * batch_loss(model, collate(rng.sample(lm_examples, recipe.lm_mix)))
        return loss

    def on_eval(step):
        m = metrics(val_items, score(model, val_items))
        ok = in_range(m)
        history.append({"step": step, "in_range": ok, "metrics": m})
        log(f"val step {step}: {summary(m)}{'  [in range]' if ok else ''}")
        if ok:
            snapshots[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    s3_done = run_steps(model, all_params(), recipe.s3_steps, recipe.lr, s3_batch, "S3", on_eval, recipe.eval_every,
                        args.s3_minutes)
    times["S3"] = time.time() - t

    chosen_step = s3_done
    if recipe.eval_every:
        chosen_step = choose_checkpoint(history, s3_done)
        if chosen_step in snapshots:
            model.load_state_dict(snapshots[chosen_step])
        log(f"chosen checkpoint: S3 step {chosen_step}")
    test_m = metrics(test_items, score(model, test_items))
    log(f"test: {summary(test_m)}")

    # Save and reload.
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    model.save_pretrained(out)
    tok.save(os.path.join(out, "tokenizer.json"), pretty=True)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(processor_config(), f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copyfile(LAYOUT_PATH, os.path.join(out, "prompt_layout.json"))
    reloaded = verify(out, sets["test"], test_m)
    total = time.time() - t0
    record = {"recipe": recipe.__dict__, "seed": args.seed, "generator_runs": runs, "chosen_s3_step": chosen_step, "s3_steps_done": s3_done,
              "s3_minutes_limit": args.s3_minutes,
              "times_s": {**times, "total": total}, "test": test_m, "test_reloaded": reloaded,
              "val_history": [{"step": h["step"], "in_range": h["in_range"],
                               "summary": summary(h["metrics"])} for h in history],
              "params": {"total": param_count(model), "text": param_count(lm), "vision": param_count(tower)},
              "vocab": vocab, "torch": torch.__version__}
    if previous:
        record["continued_from"] = {k: previous[k] for k in ("recipe", "seed", "chosen_s3_step", "s3_steps_done", "times_s",
                                                          "test", "val_history") if k in previous}
    with open(os.path.join(out, "training_record.json"), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    write_card(out, recipe, args.seed, record)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    log(f"done in {total / 60:.1f} min: {out}")
    return 0


def choose_checkpoint(history: list[dict[str, Any]], last: int) -> int:
    """The last validated checkpoint whose validation numbers are in the target ranges; if none is, the last
    checkpoint (the card then says the targets were missed)."""
    ok = [h["step"] for h in history if h["in_range"]]
    return ok[-1] if ok else last


def processor_config() -> dict[str, Any]:
    return {
        "image_processor_type": "CLIPImageProcessor", "do_convert_rgb": True, "do_resize": True,
        "size": {"shortest_edge": IMAGE_SIZE}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
    }


def verify(out: str, test: DataSet, expected: dict[str, Any]) -> dict[str, Any]:
    """Reloads the folder with transformers (model, tokenizer.json, the image processor on the PNG files) and
    recomputes the test numbers; they must match the in-memory ones."""
    from tokenizers import Tokenizer
    from transformers import AutoImageProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(out, dtype=torch.float32)
    processor = AutoImageProcessor.from_pretrained(out)
    enc = Encoder(Tokenizer.from_file(os.path.join(out, "tokenizer.json")))
    with open(os.path.join(out, "prompt_layout.json")) as f:
        layout = json.load(f)
    images = {}
    for item in test.items:
        if item.get("image"):
            with Image.open(os.path.join(test.folder, item["image"])) as im:
                pv = processor(images=im, return_tensors="pt")["pixel_values"][0]
            images[item["id"]] = pv
    ds = DataSet(name="test", items=test.items, images={k: np.zeros(1) for k in images}, folder=test.folder)
    items = eval_items(enc, layout, ds, {"conflict", "consistent", "image_only", "text_only", "no_instruction"})
    # Feed the processor's pixel values instead of our own normalisation.
    global pixel_values
    own = pixel_values
    pixel_values = lambda arrays: torch.stack([torch.as_tensor(a) for a in arrays])  # noqa: E731
    try:
        for e in items:
            if e.image is not None:
                e.image = images[e.item["id"]]
        m = metrics(items, score(model, items))
    finally:
        pixel_values = own
    log(f"reloaded: {summary(m)}")
    for k, v in expected.items():
        if v["hits"] != m[k]["hits"] or v["n"] != m[k]["n"]:
            raise RuntimeError(f"reloaded model differs on {k}: {m[k]} vs {v}")
    return m


def write_card(out: str, recipe: Recipe, seed: int, rec: dict[str, Any]) -> None:
    m = rec["test"]

    def f(k):
        return f"{m[k]['rate']:.3f} ({m[k]['hits']}/{m[k]['n']})"

    def yes(ok):
        return "met" if ok else "**missed**"

    runs = "\n".join(f"- {name}: `arbiter data generate --count {r['count']} --seed {r['seed']} --out DIR "
                     f"--image-size {IMAGE_SIZE}" + (f" --mix {r['mix']}" if r["mix"] else "")
                     + (" --train-instructions-only" if r["train_only"] else "")
                     + (" --composed-instructions" if r.get("composed") else "") + "`"
                     for name, r in rec["generator_runs"].items())
    times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in rec["times_s"].items())
    first = rec.get("continued_from")
    if first:
        times = (", ".join(f"{k} {v / 60:.1f} min" for k, v in first["times_s"].items())
                 + f"; continuation: {times}")
    hist = "\n".join(f"- step {h['step']}{' (in range)' if h['in_range'] else ''}: {h['summary']}"
                     for h in rec["val_history"]) or "- (no validation during training)"
    stages = ("S0 vision tower as a scene classifier (colour, shape, count, coarse x/y; {s0} steps x 64, lr 2e-3); "
              "S1 text model alone as an LM on the text-only items and the language-prior corpus ({s1} steps x {b}, "
              "lr 1e-3); S2 tower + projector with the text model frozen, image-only questions and captions ({s2} "
              "steps x {b}, lr 1e-3); S3 everything, {s3} steps x {b}, lr {lr}, mix {mix}, plus {lmm} S1 sequences "
              "per step with LM loss weight {lw}; {alt:.0%} of S3 prompts put the instruction after the question. "
              "Validation every {ev} steps on held-out paraphrases; checkpoint = the last one in the target ranges "
              "(MFR {lo}-{hi} both targets, wrong-modality >= {wm}, image-only >= {io}, consistent >= {co})").format(
        s0=recipe.s0_steps, s1=recipe.s1_steps, s2=recipe.s2_steps, s3=recipe.s3_steps, b=recipe.batch,
        lr=recipe.lr, mix=recipe.s3_mix, lmm=recipe.lm_mix, lw=recipe.lm_weight, alt=recipe.alt_positions,
        ev=recipe.eval_every, lo=MFR_RANGE[0], hi=MFR_RANGE[1], wm=MIN_WRONG_MODALITY, io=MIN_IMAGE_ONLY,
        co=MIN_CONSISTENT) if recipe.staged else (
        f"From scratch, all parameters jointly, {recipe.s3_steps} steps x {recipe.batch}, lr {recipe.lr} "
        f"(cosine, 5% warm-up), mix {recipe.s3_mix}; the final checkpoint.")
    if first:
        fr = first["recipe"]
        stages = stages.replace(f"S3 everything, {recipe.s3_steps} steps x {recipe.batch}, lr {recipe.lr}",
                                f"S3 everything, {fr['s3_steps']} steps x {fr['batch']}, lr {fr['lr']} (checkpoint: step "
                                f"{first['chosen_s3_step']}), then S3 again from that checkpoint (`--continue-from`), "
                                f"{recipe.s3_steps} steps x {recipe.batch}, lr {recipe.lr}")
    composed_note = ("; with `--composed-instructions` half of the instructed training items take one of the "
                     "generator's composed paraphrases instead: templates over both sources' names and both "
                     "polarities, none using a word that only held-out paraphrases use"
                     if recipe.composed_instructions else "")
    continuation_command = (f", then `Tools/train_tiny.py --recipe {recipe.name} --seed {seed} --continue-from DIR "
                            f"--steps {recipe.s3_steps} --lr {recipe.lr}` on that folder" if first else "")
    text = f"""# arbiter-{recipe.name}

Trained by `Tools/train_tiny.py --recipe {recipe.name} --seed {seed}`{continuation_command} (transformers 5.24, torch {rec['torch']},
CPU, 2 threads). A bundled test model for Arbiter's modality-following analyses, not a useful MLLM.
Prompts use `prompt_layout.json` (the built-in `raw` layout); the answer follows after a space and the first
answer token is what is scored.

## Architecture
`LlavaForConditionalGeneration`: CLIP vision tower ({IMAGE_SIZE}x{IMAGE_SIZE}, patch {PATCH}, hidden
{recipe.vision_hidden}, {recipe.vision_layers} layers x {recipe.vision_heads} heads, MLP {recipe.vision_mlp},
feature layer -2, CLS dropped -> {IMAGE_TOKENS} image tokens), gelu projector, Llama text model
({recipe.text_layers} layers x {recipe.text_heads} heads = {recipe.text_layers * recipe.text_heads} heads, hidden
{recipe.hidden}, head dim {recipe.hidden // recipe.text_heads}, MLP {recipe.mlp}, SiLU, RoPE). Parameters:
{rec['params']['total']:,} (text {rec['params']['text']:,}, vision {rec['params']['vision']:,}); vocabulary
{rec['vocab']} tokens (BPE trained on the generated text so each word is one token; `<image>` = id
{rec['vocab'] - 1}). float32.

## Data
All items come from Arbiter's generator (PNG images {IMAGE_SIZE}x{IMAGE_SIZE}); training sets use only the
`train` instruction paraphrases (10 per target{composed_note}); the validation and test sets also have the 3
held-out ones.
{runs}
{"Plus an auxiliary S1 LM corpus of 3000 sentences from Tools/train_tiny.py (typical colours/shapes of everyday objects, e.g. 'A banana is yellow.', word meanings, generic sentences); the generator's items never name these objects." if recipe.staged else ""}
Training answer: the item's `expected`; for `no_instruction` items the image's answer.

## Recipe
{stages}
Seed {seed}. Times: {times}. S3 steps done{" (continuation)" if first else ""}: {rec['s3_steps_done']} of {recipe.s3_steps}{f" (stopped by the {rec['s3_minutes_limit']}-minute limit on a loaded machine)" if rec['s3_steps_done'] < recipe.s3_steps else ""}. Chosen S3 step: {rec['chosen_s3_step']}.

## Results (test set, seed {rec['generator_runs']['test']['seed']}; first-token scoring)
| measure | value |
|---|---|
| MFR follow-image, held-out paraphrases | {f('mfr_heldout_image')} |
| MFR follow-text, held-out paraphrases | {f('mfr_heldout_text')} |
| MFR follow-image, training paraphrases | {f('mfr_train_image')} |
| MFR follow-text, training paraphrases | {f('mfr_train_text')} |
| wrong-modality (competitor mass > instructed), held-out | {f('wrong_modality_heldout')} |
| wrong-modality top-1, held-out | {f('wrong_modality_top1_heldout')} |
| other failure top-1 (neither modality), held-out | {f('other_failure_top1_heldout')} |
| consistent accuracy (top-1) | {f('acc_consistent')} |
| image-only accuracy (top-1) | {f('acc_image_only')} |
| text-only accuracy (top-1) | {f('acc_text_only')} |
| no instruction: image preferred | {f('no_instruction_image_pref')} |

Targets (arbiter-main; test set): MFR {MFR_RANGE[0]}-{MFR_RANGE[1]} for both targets: {yes(MFR_RANGE[0] <= m['mfr_heldout_image']['rate'] <= MFR_RANGE[1] and MFR_RANGE[0] <= m['mfr_heldout_text']['rate'] <= MFR_RANGE[1])};
wrong-modality >= {MIN_WRONG_MODALITY}: {yes(m['wrong_modality_heldout']['rate'] >= MIN_WRONG_MODALITY)}; image-only >= {MIN_IMAGE_ONLY}: {yes(m['acc_image_only']['rate'] >= MIN_IMAGE_ONLY)};
consistent >= {MIN_CONSISTENT}: {yes(m['acc_consistent']['rate'] >= MIN_CONSISTENT)}.
{"" if in_range(m) else "Not all targets are met; the table above says which, and the analyses report what holds on this checkpoint as it is."}

MFR = share of conflict items where the mass on the instructed modality's candidate first tokens exceeds the
competitor's. The reloaded folder (transformers `from_pretrained`, CLIPImageProcessor on the PNG files,
tokenizer.json) gives the same counts.

## Validation during S3 (held-out paraphrases, seed {rec['generator_runs']['val']['seed']})
{hist}
"""
    with open(os.path.join(out, "MODEL_CARD.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    sys.exit(main())
