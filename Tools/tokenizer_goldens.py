#!/usr/bin/env python3
"""Golden fixtures for ArbiterTokenizers: small tokenizer.json files and the ids/decodings of `tokenizers`.

Each family mirrors the tokenizer.json layout of a real model family, trained on a small built-in corpus so
the files stay small (vocabularies of a few hundred to ~1000 entries):

  qwen2       byte-level BPE: NFC, Split(Qwen2 regex, \\p{N}) + ByteLevel(use_regex=false), ByteLevel decoder
  llama3      byte-level BPE: Split(\\p{N}{1,3} regex) + ByteLevel, ignore_merges, Sequence[ByteLevel, Template]
  gpt2        byte-level BPE: ByteLevel(add_prefix_space, use_regex), a non-special lstrip/single_word added token
              and a special rstrip one
  llama2      SentencePiece BPE (Llama-2 / Vicuna = LLaVA-1.5): Prepend+Replace normalizers, byte_fallback,
              merges as "a b" strings, decoders Replace/ByteFallback/Fuse/Strip, Template "<s> $A"
  metaspace   SentencePiece BPE: Metaspace(prepend_scheme=first, split=false) pre-tokenizer, byte_fallback,
              decoders Metaspace/ByteFallback/Fuse
  metaspace-always  Metaspace(always, split=true), unk_token with fuse_unk, no byte fallback
  wordlevel   WordLevel: NFKC+Lowercase+Strip, Whitespace, Template "[CLS] $A [SEP]", normalized added token
  bert        WordLevel: NFD+StripAccents+Lowercase, BertPreTokenizer, Bert post-processor

plus stages.goldens.json: every pre-tokenizer, normalizer and decoder configuration on its own, with the
outputs of `pre_tokenize_str`, `normalize_str` and `decode`.

Usage (from the repository root):
  .venv/bin/python Tools/tokenizer_goldens.py write    # (re)write Tests/ArbiterTokenizersTests/Fixtures
  .venv/bin/python Tools/tokenizer_goldens.py check    # regenerate in a temp folder and compare
"""

import json
import random
import re
import sys
import tempfile
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from llama2_tokenizer import llama2_vocab

FIXTURES = Path(__file__).resolve().parent.parent / "Tests" / "ArbiterTokenizersTests" / "Fixtures"
FORMAT_VERSION = 1

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = """\
A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful,
detailed, and polite answers to the human's questions.
USER: What is shown in this image? Describe the colors, the shapes and the objects you can see.
ASSISTANT: The image shows a red bicycle leaning against a blue wall, with a small dog sitting next to it.
Answer the question using a single word or phrase. Is there a cat in the picture? No.
Instruction anchors: the model attends to the instruction tokens while it reads the context and the question.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs!
She said: "I'll be there at 10:30, won't you?" He replied, "We're late; they've gone, it's done."
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 123 2024 31415926 1,000,000 3.14159 -17 +8 50% $19.99 #hashtag @user
def encode(self, text: str) -> list[int]:
    return [self.vocab[t] for t in text.split()]  # comment
for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }
Le café est très bon, n'est-ce pas ? Où est la bibliothèque ? Ça va très bien, merci.
Über den Wolken muss die Freiheit wohl grenzenlos sein. Grüße aus München, schöne Straße.
El niño comió manzanas en la mañana. ¿Dónde está el baño? ¡Qué día tan bonito!
Москва — столица России. Привет, как дела? Спасибо, хорошо.
東京は日本の首都です。私は猫が好きです。今日は天気がいいですね。
北京是中国的首都。我喜欢学习机器学习和自然语言处理。你好，世界！
서울은 한국의 수도입니다. 안녕하세요, 만나서 반갑습니다.
مرحبا بالعالم. اللغة العربية جميلة جدا. كيف حالك اليوم؟
नमस्ते दुनिया। मैं हिंदी बोलता हूँ।
Emoji: 😀 😂 👍 ❤️ 🎉 🐱 🚀 👨‍👩‍👧‍👦 🏳️‍🌈 👩🏽‍💻 — and symbols: © ® ™ € £ ¥ ° ± × ÷ → ← ∑ ∞ ≈ ≠ ≤ ≥
Tabs\tand\tnewlines\nare whitespace too.   Multiple   spaces   here.
Combining marks: e\u0301 a\u0300 n\u0303 o\u0308 and precomposed é à ñ ö.
The image token <image> marks where the vision features go. <|im_start|>user\nHello!<|im_end|>
The paper tests whether instruction tokens act as anchors for the information flow in multimodal models.
Attention heads in the middle layers move information from the image tokens to the last token position.
We measure the effect of ablating the attention edges from the context to the question and to the answer.
Yesterday I read a book about language models, and today I will write some code to test the claims.
"""

SPECIAL_CHAT = ["<image>", "<|im_start|>", "<|im_end|>"]


def base_cases():
    """Hand-written test strings: each one exercises something tokenizers get wrong."""
    cases = [
        "", " ", "  ", "\t", "\n", "\n\n", " \n ", "\r\n", "a", "A", "Hello", "Hello world", " Hello world",
        "Hello world ", "  leading two", "trailing two  ", "Hello  world", "Hello   world", "Hello\tworld",
        "Hello\nworld", "Hello\n\nworld", "line one\r\nline two", "tabs\t\t\tand spaces   \t mixed",
        "ends with newline\n", "\n starts with newline", "   ", "a b c d e f g", "abcdefghijklmnopqrstuvwxyz",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "The Quick Brown Fox", "THE QUICK BROWN FOX",
        "I'm", "I'M", "you're", "YOU'RE", "we've", "they'll", "she'd", "it's", "IT'S", "don't", "can't stop",
        "1", "12", "123", "1234", "12345", "123456789", "3.14159", "1,000,000", "2024-06-01", "-17 + 8 = -9",
        "$19.99", "50%", "v1.2.3", "a1b2c3", "0x1F", "007", "   42   ",
        "!", "?!", "...", "!!!???", "(parenthesis)", "[brackets]", "{braces}", "<angle>", "\"quoted\"",
        "'single'", "a-b_c.d", "user@example.com", "https://example.com/path?q=1&r=2", "#hashtag", "@mention",
        "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { }", "if a == b and c != d:",
        "café", "cafe\u0301", "naïve résumé", "Über", "Straße", "ñandú", "e\u0301\u0301", "\u0301",
        "a\u0308\u0304", "Å Å Å", "ﬁ ligature", "Ⅻ roman", "①②③", "ｆｕｌｌｗｉｄｔｈ", "x²+y³", "½ ¼",
        "Москва", "Привет, мир!", "東京", "東京は日本の首都です。", "我喜欢学习。", "你好，世界！",
        "안녕하세요", "مرحبا بالعالم", "اللغة العربية", "नमस्ते दुनिया", "ภาษาไทย", "Ελληνικά", "עברית",
        "😀", "😀😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "👩🏽‍💻", "❤️", "🇯🇵🇫🇷", "emoji 🎉 in text 🚀!",
        "©®™", "€£¥", "→←↑↓", "∑∞≈≠", "\u200b", "zero\u200bwidth", "\u00a0nbsp\u00a0", "\u3000ideographic space",
        "\u2028line separator", "\ufeffbom", "\u0000nul", "\u007fdel", "tab\tend\t", "\x0b\x0c",
        "<image>", "<image>\n", "\n<image>", "<image><image>", "<image> <image>", "USER: <image>\nWhat is this?",
        "<image>What is shown?", "a<image>b", " <image> ", "<image", "image>", "<imag e>", "<<image>>",
        "<|im_start|>user\nHello<|im_end|>", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n",
        "<|im_end|><|im_start|>", "<|im_start|>assistant\n", "text <|im_end|> more", "<|im_start|><image><|im_end|>",
        "yesterday", "Yesterday", "yesterday's", "the day before yesterday", "yesterdays",
        "<mask>", "a <mask> b", "a<mask>b", "  <mask>  ", "<mask>,<mask>",
        "<sep>", "a <sep> b", "a<sep>\n\tb", "<sep>   ", "  <sep><sep>  x", "<mask> <sep> <mask>",
        "<s>", "</s>", "<unk>", "[CLS]", "[SEP]", "<s> literal special text </s>",
        "USER: <image>\nWhat is shown in this image? ASSISTANT:",
        "A chat between a curious human and an artificial intelligence assistant. USER: <image>\nDescribe it. "
        "ASSISTANT:",
        "Answer the question using a single word or phrase.",
        "Context: the red bicycle.\nInstruction: answer briefly.\nQuestion: what color?\nAnswer:",
        "\u2581already meta\u2581space", "\u2581", "\u2581\u2581", "▁Hello", "Ġ", "Ċ", "ĠHello",
        "Ĳ ĳ", "\u0100\u0143", "<0x41>", "<0xE6>", "bytes <0x0A> literal",
    ]
    return cases


def random_cases(count, seed=1234):
    """Deterministic pseudo-random strings: corpus slices, shuffled words, and mixed scripts."""
    rng = random.Random(seed)
    lines = [line for line in CORPUS.splitlines() if line.strip()]
    words = CORPUS.split()
    extras = ["<image>", "<|im_start|>", "<|im_end|>", "\n", "\t", "  ", "😀", "👨‍👩‍👧", "e\u0301", "١٢٣",
              "１２３", "\u00a0", "<mask>", "yesterday", "<sep>"]
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            line = rng.choice(lines)
            a = rng.randrange(0, len(line))
            b = rng.randrange(a, min(len(line), a + 60) + 1)
            out.append(line[a:b])
        elif kind == 1:
            out.append(" ".join(rng.choice(words) for _ in range(rng.randrange(1, 12))))
        elif kind == 2:
            parts = [rng.choice(words) if rng.random() < 0.6 else rng.choice(extras)
                     for _ in range(rng.randrange(1, 10))]
            out.append(rng.choice(["", " ", "\n"]).join(parts))
        else:
            out.append("".join(rng.choice(CORPUS) for _ in range(rng.randrange(1, 40))))
    return out


def corpus_iterator(ascii_heavy=False):
    """The training lines; `ascii_heavy` drops the CJK/Hangul/Devanagari/Arabic lines so that those scripts
    are out of the vocabulary (byte fallback or unk). Deterministic, unlike the trainer's `limit_alphabet`."""
    lines = CORPUS.splitlines()
    if ascii_heavy:
        other_scripts = r"[\u0600-\u06ff\u0900-\u097f\u3000-\u9fff\uac00-\ud7af]"
        lines = [line for line in lines if not re.search(other_scripts, line)]
    return lines * 3


def train_bpe(tok, vocab_size, special, ascii_heavy=False, **trainer_args):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  **trainer_args)
    tok.train_from_iterator(corpus_iterator(ascii_heavy), trainer=trainer)
    return json.loads(tok.to_str())


def chat_tokens():
    return [AddedToken(t, special=True, normalized=False) for t in SPECIAL_CHAT]


def family_qwen2():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train_bpe(tok, 700, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens(chat_tokens())
    return tok


def family_llama3():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=True),
    ])
    tok.decoder = decoders.ByteLevel()
    train_bpe(tok, 900, ["<|begin_of_text|>", "<|end_of_text|>"],
              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    tok.add_special_tokens(chat_tokens())
    return tok


def family_gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    train_bpe(tok, 600, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens(chat_tokens())
    tok.add_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, single_word=True, normalized=False,
                               special=False)])
    tok.add_special_tokens([AddedToken("<sep>", rstrip=True, normalized=False, special=True)])
    return tok


def sentencepiece_json(trained, merges_as_strings):
    """Llama-2 layout: <unk> <s> </s>, then <0x00>..<0xFF>, then the trained pieces; special chat tokens last."""
    model = trained["model"]
    vocab = llama2_vocab(model["vocab"])
    model["vocab"] = vocab
    if merges_as_strings:
        model["merges"] = [f"{a} {b}" for a, b in model["merges"]]
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in ["<unk>", "<s>", "</s>"]]
    for t in SPECIAL_CHAT:
        added.append({"id": len(vocab) + len(added) - 3, "content": t, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    trained["added_tokens"] = added
    return trained


def trained_sentencepiece(vocab_size, **bpe_args):
    tok = Tokenizer(models.BPE(**bpe_args))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    return train_bpe(tok, vocab_size, [], ascii_heavy=True)


def family_llama2():
    data = sentencepiece_json(trained_sentencepiece(700, byte_fallback=True, unk_token="<unk>", fuse_unk=True),
                              merges_as_strings=True)
    data["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    ]}
    data["pre_tokenizer"] = None
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ]}
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def family_metaspace():
    data = sentencepiece_json(trained_sentencepiece(600, byte_fallback=True, unk_token="<unk>", fuse_unk=True),
                              merges_as_strings=False)
    data["normalizer"] = None
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                             "split": False}
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
    ]}
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                           "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}},
    }
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def family_metaspace_always():
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    train_bpe(tok, 400, ["<unk>", "<s>", "</s>"], ascii_heavy=True)
    tok.add_special_tokens(chat_tokens())
    return tok


def family_wordlevel():
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=500, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]"],
                                        show_progress=False)
    tok.train_from_iterator(corpus_iterator(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.add_special_tokens(chat_tokens())
    tok.add_tokens([AddedToken("yesterday", single_word=True, normalized=True, special=False)])
    return tok


def family_bert():
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordLevelTrainer(vocab_size=400, special_tokens=["[UNK]", "[CLS]", "[SEP]"],
                                        show_progress=False)
    tok.train_from_iterator(corpus_iterator(), trainer=trainer)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    tok.add_special_tokens(chat_tokens())
    return tok


FAMILIES = {
    "qwen2": family_qwen2,
    "llama3": family_llama3,
    "gpt2": family_gpt2,
    "llama2": family_llama2,
    "metaspace": family_metaspace,
    "metaspace-always": family_metaspace_always,
    "wordlevel": family_wordlevel,
    "bert": family_bert,
}


def goldens(tok):
    cases = []
    seen = set()
    for text in base_cases() + random_cases(160):
        if text in seen:
            continue
        seen.add(text)
        with_special = tok.encode(text, add_special_tokens=True).ids
        encoding = tok.encode(text, add_special_tokens=False)
        without = encoding.ids
        cases.append({
            "text": text,
            "ids": with_special,
            "ids_no_special": without,
            "offsets_no_special": [list(o) for o in encoding.offsets],  # Unicode scalar offsets in `text`
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
            "decoded_no_special": tok.decode(without, skip_special_tokens=False),
        })
    return {"format_version": FORMAT_VERSION, "source": f"tokenizers {tokenizers.__version__}",
            "regenerate": "make tools-venv && .venv/bin/python Tools/tokenizer_goldens.py write",
            "vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": cases}


STAGE_INPUTS = [
    "", " ", "Hello world", "  Hello  world  ", "Hello-world--again", "a-b - c", "tab\tand\nnewline\r\n",
    "I'm you're THEY'LL", "12345 and 1,000.5", "x²+y³=z½", "Café NAÏVE e\u0301", "ﬁ ﬂ Ⅻ ｆｕｌｌ ①",
    "Straße İstanbul ΣΑΣ", "東京は日本", "مرحبا بالعالم", "👨‍👩‍👧 ❤️ 🏳️‍🌈!", "zero\u200bwidth\u00a0nbsp",
    "\u2581meta\u2581space", "punct!?.,;:()[]{}<>\"'", "under_score __init__", "\u0000\u007f\u0085end",
    "back\\slash \\w \\d 42",
    "a\u00b2\u00bd\u2460\u216b\u0661\u200d\u200c_\u0301\u00aa\u3005\u2070\u00b9 \u00b3\u00bc\u00be",
    "-leading and trailing-", "a  b   c", "\u3000ideographic\u3000space",
]

STAGE_TOKENS = [
    [], ["\u2581Hello", "\u2581world"], ["Hello", "\u2581", "\u2581world", "<0x0A>", "!"],
    ["<0xE6>", "<0x9D>", "<0xB1>", "x", "<0xE4>", "<0xBA>"], ["<0xFF>", "<0xFE>", "a", "<0xC3>"],
    ["\u0120Hello", "\u0120w", "orld", "\u010a"], ["\u00e6", "\u013f", "\u00b1", "<image>", "\u00e4\u00ba\u00ac"],
    ["un", "##believ", "##able", "!", "don", "'", "t", "do", "not", ".", "x", "##y"],
    ["hel", "lo</w>", "wor", "ld</w>"], ["  a  ", " b", "c  "], ["\u2581\u2581a", "\u2581"],
    ["<s>", "\u2581The", "\u2581cat", "</s>"], ["<0x41>", "<0x4a>", "<0xZZ>", "<0x4>"],
]


def stage_goldens():
    """Stage-by-stage goldens: each stage's JSON config, inputs and the outputs `tokenizers` gives."""
    from tokenizers import decoders as D, normalizers as N, pre_tokenizers as P
    pre = [
        *(P.Split(Regex(r"\s+"), behavior, invert=invert)
          for behavior in ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]
          for invert in [False, True]),
        *(P.Split("-", behavior) for behavior in ["removed", "isolated", "merged_with_previous",
                                                  "merged_with_next", "contiguous"]),
        P.Split(Regex(QWEN2_REGEX), "isolated"), P.Split(Regex(LLAMA3_REGEX), "isolated"),
        P.Split(Regex(r"\w+"), "isolated"), P.Split(Regex(r"[^\w\s]+"), "removed"), P.Split(Regex(r"\W"), "removed"),
        P.Split(Regex(r"\\w|\d+"), "isolated"),
        P.ByteLevel(add_prefix_space=True, use_regex=True), P.ByteLevel(add_prefix_space=False, use_regex=True),
        P.ByteLevel(add_prefix_space=False, use_regex=False),
        *(P.Metaspace(prepend_scheme=scheme, split=split) for scheme in ["always", "first", "never"]
          for split in [True, False]),
        P.Whitespace(), P.WhitespaceSplit(), P.BertPreTokenizer(), P.Punctuation(), P.Punctuation("removed"),
        P.Digits(individual_digits=True), P.Digits(individual_digits=False), P.CharDelimiterSplit("-"),
        P.Sequence([P.WhitespaceSplit(), P.Digits(individual_digits=True), P.Punctuation()]),
    ]
    norm = [
        N.NFC(), N.NFD(), N.NFKC(), N.NFKD(), N.Lowercase(), N.Strip(), N.Strip(left=True, right=False),
        N.Strip(left=False, right=True), N.StripAccents(), N.Prepend("\u2581"), N.Replace(" ", "\u2581"),
        N.Replace(Regex(r"\s+"), " "), N.BertNormalizer(), N.BertNormalizer(lowercase=False, strip_accents=False),
        N.Sequence([N.NFD(), N.StripAccents(), N.Lowercase()]), N.ByteLevel(),
    ]
    dec = [
        D.ByteLevel(), D.ByteFallback(), D.Fuse(), D.Strip(" ", 1, 0), D.Strip(" ", 0, 2), D.Strip("\u2581", 2, 0),
        D.Replace("\u2581", " "), D.Metaspace(prepend_scheme="always"), D.Metaspace(prepend_scheme="first"),
        D.Metaspace(prepend_scheme="never"), D.WordPiece(), D.WordPiece(cleanup=False), D.BPEDecoder(),
        D.Sequence([D.Replace("\u2581", " "), D.ByteFallback(), D.Fuse(), D.Strip(" ", 1, 0)]),
    ]
    out = {"format_version": FORMAT_VERSION, "source": f"tokenizers {tokenizers.__version__}",
           "pre_tokenizers": [], "normalizers": [], "decoders": []}
    for stage in pre:
        out["pre_tokenizers"].append({"config": json.loads(stage.__getstate__()), "cases": [
            {"input": text, "output": [piece for piece, _ in stage.pre_tokenize_str(text)]} for text in STAGE_INPUTS]})
    for stage in norm:
        out["normalizers"].append({"config": json.loads(stage.__getstate__()), "cases": [
            {"input": text, "output": stage.normalize_str(text)} for text in STAGE_INPUTS]})
    for stage in dec:
        out["decoders"].append({"config": json.loads(stage.__getstate__()), "cases": [
            {"input": tokens, "output": stage.decode(tokens)} for tokens in STAGE_TOKENS]})
    return out


def write(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in FAMILIES.items():
        tok = build()
        (folder / f"{name}.tokenizer.json").write_text(tok.to_str(pretty=True) + "\n", encoding="utf-8")
        # The goldens come from the file as written, exactly what the Swift side reads.
        tok = Tokenizer.from_file(str(folder / f"{name}.tokenizer.json"))
        text = json.dumps(goldens(tok), ensure_ascii=False, indent=None, separators=(",", ":"))
        (folder / f"{name}.goldens.json").write_text(text + "\n", encoding="utf-8")
        print(f"{name}: vocab {tok.get_vocab_size(with_added_tokens=True)}")
    text = json.dumps(stage_goldens(), ensure_ascii=False, indent=None, separators=(",", ":"))
    (folder / "stages.goldens.json").write_text(text + "\n", encoding="utf-8")


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else "write"
    if command == "write":
        write(FIXTURES)
    elif command == "check":
        with tempfile.TemporaryDirectory() as tmp:
            write(Path(tmp))
            stale = [p.name for p in sorted(Path(tmp).iterdir())
                     if not (FIXTURES / p.name).exists() or (FIXTURES / p.name).read_bytes() != p.read_bytes()]
            if stale:
                print(f"stale tokenizer fixtures: {', '.join(stale)}; run Tools/tokenizer_goldens.py write")
                sys.exit(1)
            print("tokenizer fixtures up to date")
    else:
        sys.exit(f"usage: {sys.argv[0]} write|check")


if __name__ == "__main__":
    main()
