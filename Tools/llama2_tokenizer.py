"""The Llama-2 tokenizer layout the tools build (SentencePiece-style BPE, as LLaVA-1.5 / Vicuna ship it), written
once here for golden_llava.py (tiny-llava), train_tiny.py (the trained models) and tokenizer_goldens.py (the
llama2 and metaspace fixtures).

Vocabulary: <unk> <s> </s> (ids 0-2), the byte tokens <0x00>..<0xFF> (3-258), then the learned pieces in the
order the trainer numbered them.
"""
from __future__ import annotations

from typing import Any


def llama2_vocab(learned: dict[str, int]) -> dict[str, int]:
    """<unk> <s> </s>, <0x00>..<0xFF>, then the pieces of `learned` by id (those not already there)."""
    vocab: dict[str, int] = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for piece, _ in sorted(learned.items(), key=lambda item: item[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    return vocab


def build_llama2_tokenizer(texts: list[str], learned_size: int, train_prepend_scheme: str, image_token: str,
                           expected_size: int | None = None) -> Any:
    """A Llama-2 style BPE tokenizer trained on `texts`: Metaspace pre-tokenizer, byte fallback, <s> prepended,
    `image_token` special right after the vocabulary.

    Training splits at spaces with `train_prepend_scheme` ("first" or "always") so learned tokens look like
    SentencePiece's ("▁word") and learns up to `learned_size` tokens; with `expected_size`, a vocabulary of
    another size is an error.
    """
    import json

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=train_prepend_scheme,
                                                         split=True)
    trainer = trainers.BpeTrainer(vocab_size=learned_size, special_tokens=[], show_progress=False)
    trainer_tok.train_from_iterator(texts, trainer=trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    vocab = llama2_vocab(trained["vocab"])
    if expected_size is not None and len(vocab) != expected_size:
        raise RuntimeError(f"tokenizer training gave {len(vocab)} tokens, expected {expected_size}")

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0),
    ])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    tok.add_special_tokens([AddedToken("<unk>", special=True, normalized=False),
                            AddedToken("<s>", special=True, normalized=False),
                            AddedToken("</s>", special=True, normalized=False),
                            AddedToken(image_token, special=True, normalized=False)])
    if tok.token_to_id(image_token) != len(vocab):
        raise RuntimeError(f"{image_token} got id {tok.token_to_id(image_token)}")
    return tok
