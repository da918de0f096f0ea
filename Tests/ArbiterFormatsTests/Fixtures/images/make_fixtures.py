"""Writes the PNG and CLIP-preprocessing fixtures used by Tests/ArbiterFormatsTests (PNG*.swift, ImageProcessing*.swift).

Run from the repository root with the project's venv:
    /work/main/.venv/bin/python Tests/ArbiterFormatsTests/Fixtures/images/make_fixtures.py

PNG files are written by a small encoder here (every color type and bit depth, all five row filters, Adam7
interlacing, gAMA/sRGB/tEXt chunks) because PIL cannot write most of them. Expected values come from the
reference implementations: Pillow for decoding (`Image.open(f).convert("RGB")`, `convert("RGBA")` for alpha),
transformers for the white composite (`image_transforms.convert_to_rgb`) and for CLIP pixel values
(`AutoImageProcessor.from_pretrained(dir)(Image.open(f))`). The Swift tests never run Python.
"""
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib

import numpy as np
import PIL
import transformers
from PIL import Image
from transformers import AutoImageProcessor
from transformers.image_transforms import convert_to_rgb

HERE = os.path.dirname(os.path.abspath(__file__))
DECODE = os.path.join(HERE, "decode")
CLIP = os.path.join(HERE, "clip")


# ---------------------------------------------------------------- PNG encoder

def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp, first_filter=0):
    """Filters raw scanlines, cycling through filter types 0..4 (starting at first_filter)."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        ftype = (first_filter + i) % 5
        f = bytearray(len(row))
        for x in range(len(row)):
            a = row[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ftype]
            f[x] = (row[x] - pred) & 0xFF
        out.append(ftype)
        out += f
        prev = row
    return bytes(out)


def pack_row(samples, depth):
    """Packs one row of integer samples (already interleaved) at the given bit depth."""
    if depth == 8:
        return bytes(int(s) for s in samples)
    if depth == 16:
        return b"".join(struct.pack(">H", int(s)) for s in samples)
    per_byte = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per_byte):
        byte = 0
        group = list(samples[i:i + per_byte]) + [0] * (per_byte - len(samples[i:i + per_byte]))
        for s in group:
            byte = (byte << depth) | int(s)
        out.append(byte)
    return bytes(out)


CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def encode_png(samples, depth, ctype, interlace=False, plte=None, trns=None, pre=(), post=(), idat_split=1,
               first_filter=0):
    """samples: array [H, W, C] of integer samples."""
    h, w, ch = samples.shape
    assert ch == CHANNELS[ctype]
    bpp = max(1, ch * depth // 8)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            rows = [pack_row(sub[y].reshape(-1), depth) for y in range(sub.shape[0])]
            raw += filter_rows(rows, bpp, first_filter)
    else:
        rows = [pack_row(samples[y].reshape(-1), depth) for y in range(h)]
        raw = filter_rows(rows, bpp, first_filter)
    z = zlib.compress(raw, 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    for kind, data in pre:
        out += chunk(kind, data)
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    step = max(1, -(-len(z) // idat_split))
    for i in range(0, len(z), step):
        out += chunk(b"IDAT", z[i:i + step])
    for kind, data in post:
        out += chunk(kind, data)
    return out + chunk(b"IEND", b"")


# ---------------------------------------------------------------- decode fixtures

def smooth(rng, h, w, ch, maxval):
    """Gradients plus noise plus a hard edge: exercises filters, rounding and clamping."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 37 + y * 11 + 29 * c) % (maxval + 1) for c in range(ch)], axis=-1).astype(np.int64)
    noise = rng.integers(0, maxval + 1, size=(h, w, ch))
    mix = np.where(rng.random((h, w, 1)) < 0.3, noise, base)
    mix[: h // 3, : w // 4] = maxval
    mix[h // 2:, w // 2: w // 2 + 2] = 0
    return mix


def decode_cases(rng):
    cases = []

    def add(name, samples, depth, ctype, exact=True, **kw):
        cases.append((name, encode_png(samples, depth, ctype, **kw), exact))

    for depth in (1, 2, 4, 8):
        add(f"gray{depth}", smooth(rng, 9, 13, 1, (1 << depth) - 1), depth, 0)
    add("gray8_trns", smooth(rng, 8, 11, 1, 255), 8, 0, trns=struct.pack(">H", 255))
    add("gray2_trns0", smooth(rng, 8, 11, 1, 3), 2, 0, trns=struct.pack(">H", 0))
    add("gray2_trns2", smooth(rng, 8, 11, 1, 3), 2, 0, trns=struct.pack(">H", 2))
    add("gray1_trns1", smooth(rng, 8, 11, 1, 1), 1, 0, trns=struct.pack(">H", 1))
    g16 = smooth(rng, 8, 11, 1, 65535)
    g16[0, :6, 0] = [0, 1, 255, 256, 300, 65535]
    add("gray16", g16, 16, 0)
    add("gray16_trns", g16, 16, 0, trns=struct.pack(">H", 256))   # PIL matches the low byte: 0
    add("gray_alpha8", smooth(rng, 7, 10, 2, 255), 8, 4)
    add("gray_alpha16", smooth(rng, 7, 10, 2, 65535), 16, 4)
    add("gray_alpha16_interlaced", smooth(rng, 11, 13, 2, 65535), 16, 4, interlace=True)
    add("rgb8", smooth(rng, 10, 12, 3, 255), 8, 2)
    rgb16 = smooth(rng, 10, 12, 3, 65535)
    rgb16[0, 0] = [0x12FF, 0x3480, 0xFF01]
    add("rgb16", rgb16, 16, 2)
    t8 = smooth(rng, 9, 9, 3, 255)
    t8[2, 2] = t8[4, 5] = [10, 200, 30]
    add("rgb8_trns", t8, 8, 2, trns=struct.pack(">3H", 10, 200, 30))
    t16 = smooth(rng, 9, 9, 3, 65535)
    t16[1, 1] = [0x0A05, 0xC8C8, 0x1E00]
    t16[3, 3] = [0x0500, 0x0100, 0x0700]      # high bytes (5, 1, 7) equal the tRNS low bytes: PIL matches
    add("rgb16_trns", t16, 16, 2, trns=struct.pack(">3H", 0x0A05, 0x0101, 0x0207))
    add("rgba8", smooth(rng, 8, 9, 4, 255), 8, 6)
    opaque16 = smooth(rng, 8, 9, 4, 65535)
    opaque16[..., 3] = 65535
    add("rgba16_opaque", opaque16, 16, 6)
    add("rgba16", smooth(rng, 8, 9, 4, 65535), 16, 6, exact=False)
    for depth in (1, 2, 4, 8):
        n = 1 << depth
        plte = bytes(rng.integers(0, 256, size=3 * n, dtype=np.uint8))
        add(f"palette{depth}", smooth(rng, 9, 11, 1, n - 1), depth, 3, plte=plte)
    plte = bytes(rng.integers(0, 256, size=3 * 40, dtype=np.uint8))
    idx = smooth(rng, 9, 11, 1, 39)
    add("palette8_trns", idx, 8, 3, plte=plte, trns=bytes(rng.integers(0, 256, size=25, dtype=np.uint8)))
    add("palette8_trns_simple", idx, 8, 3, plte=plte, trns=bytes([255, 255, 0, 255]))
    idx2 = idx.copy()
    idx2[0, :3, 0] = [200, 255, 45]   # indices past the 40-entry palette decode black
    add("palette8_short", idx2, 8, 3, plte=plte)
    add("rgb8_interlaced", smooth(rng, 13, 17, 3, 255), 8, 2, interlace=True)
    add("gray16_interlaced", smooth(rng, 10, 9, 1, 65535), 16, 0, interlace=True)
    add("palette4_interlaced", smooth(rng, 9, 10, 1, 15), 4, 3, interlace=True,
        plte=bytes(rng.integers(0, 256, size=48, dtype=np.uint8)))
    add("rgba8_interlaced_1x1", np.array([[[1, 2, 3, 4]]]), 8, 6, interlace=True)
    # Color-space chunks that PIL ignores and libpng would apply: gamma 1.0, sRGB, chromaticities.
    add("rgb8_gamma", smooth(rng, 8, 8, 3, 255), 8, 2, pre=[(b"gAMA", struct.pack(">I", 100000)),
        (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))])
    add("rgba8_gamma", smooth(rng, 8, 8, 4, 255), 8, 6, pre=[(b"gAMA", struct.pack(">I", 25000))])
    add("gray16_gamma", smooth(rng, 8, 8, 1, 65535), 16, 0, pre=[(b"gAMA", struct.pack(">I", 45455))])
    add("rgb16_srgb", smooth(rng, 8, 8, 3, 65535), 16, 2, pre=[(b"sRGB", b"\x00")])
    add("rgb8_chunks", smooth(rng, 12, 10, 3, 255), 8, 2, idat_split=5,
        pre=[(b"tEXt", b"Comment\x00fixture"), (b"pHYs", struct.pack(">IIB", 2835, 2835, 1))],
        post=[(b"tIME", struct.pack(">HBBBBB", 2026, 1, 2, 3, 4, 5))])
    return cases


def expected_decode(path):
    im = Image.open(path)
    rgb = np.array(im.convert("RGB"))
    has_alpha = "A" in im.getbands() or im.info.get("transparency") is not None
    alpha = white = None
    if has_alpha:
        rgba = np.array(im.convert("RGBA"))
        assert (rgba[..., :3] == rgb).all(), f"{path}: convert('RGBA') colors differ from convert('RGB')"
        alpha = rgba[..., 3]
        white = convert_to_rgb(Image.open(path), return_numpy=True)
    return im.mode, rgb, alpha, white


# ---------------------------------------------------------------- CLIP fixtures

CLIP_BASE = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True, "resample": 3, "do_center_crop": True,
    "do_rescale": True, "rescale_factor": 0.00392156862745098,
    "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True,
}


def clip_cases(rng):
    """(name, png bytes, config overrides)."""
    def img(h, w, ch, depth, ctype, **kw):
        return encode_png(smooth(rng, h, w, ch, (1 << depth) - 1), depth, ctype, **kw)

    return [
        ("down_landscape", img(48, 64, 3, 8, 2), {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}),
        ("up_portrait_odd", img(31, 21, 3, 8, 2), {"size": {"shortest_edge": 47}, "crop_size": {"height": 40, "width": 40}}),
        ("defaults_square_up", img(37, 37, 3, 8, 2), {}),   # CLIP defaults: shortest_edge 224, crop 224
        ("gray_down_wide", img(23, 51, 1, 8, 0), {"size": {"shortest_edge": 15}, "crop_size": 15}),
        ("rgba_translucent", img(40, 40, 4, 8, 6), {"size": {"shortest_edge": 24}, "crop_size": {"height": 20, "width": 20}}),
        ("rgb16_mixed", img(45, 33, 3, 16, 2), {"size": {"shortest_edge": 40}, "crop_size": {"height": 36, "width": 36}}),
        ("palette_trns", encode_png(smooth(rng, 30, 26, 1, 15), 4, 3, plte=bytes(rng.integers(0, 256, 48, dtype=np.uint8)),
                                    trns=bytes(rng.integers(0, 256, 16, dtype=np.uint8))),
         {"size": {"shortest_edge": 28}, "crop_size": {"height": 28, "width": 28}}),
        ("crop_pads", img(20, 30, 3, 8, 2), {"size": {"height": 20, "width": 30}, "crop_size": {"height": 33, "width": 24}}),
        ("bilinear", img(50, 35, 3, 8, 2), {"resample": 2, "size": {"shortest_edge": 21}, "crop_size": 18}),
        ("exact_size_no_crop", img(26, 40, 3, 8, 2), {"size": {"height": 19, "width": 45}, "do_center_crop": False}),
        ("big_downsample", img(200, 300, 3, 8, 2), {"size": 17, "crop_size": {"height": 17, "width": 17}}),
        ("no_normalize", img(16, 16, 3, 8, 2), {"size": {"shortest_edge": 12}, "crop_size": 12, "do_normalize": False}),
        ("llava_336", img(24, 30, 3, 8, 2), {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}}),
    ]


def main():
    rng = np.random.default_rng(20260725)
    for folder in (DECODE, CLIP):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    manifest = {"generator": "make_fixtures.py", "pillow": PIL.__version__, "transformers": transformers.__version__,
                "numpy": np.__version__, "decode": [], "clip": []}

    for name, data, exact in decode_cases(rng):
        path = os.path.join(DECODE, name + ".png")
        with open(path, "wb") as f:
            f.write(data)
        mode, rgb, alpha, white = expected_decode(path)
        entry = {"name": name, "pil_mode": mode, "width": rgb.shape[1], "height": rgb.shape[0], "exact": exact,
                 "has_alpha": alpha is not None}
        rgb.astype(np.uint8).tofile(os.path.join(DECODE, name + ".rgb"))
        if alpha is not None:
            alpha.astype(np.uint8).tofile(os.path.join(DECODE, name + ".alpha"))
            white.astype(np.uint8).tofile(os.path.join(DECODE, name + ".white.rgb"))
        manifest["decode"].append(entry)

    # Every (color, alpha) pair through the white composite.
    x, a = np.meshgrid(np.arange(256), np.arange(256))
    comp = np.stack([x, 255 - x, (x * 37) % 256, a], axis=-1)
    path = os.path.join(DECODE, "composite_all.png")
    with open(path, "wb") as f:
        f.write(encode_png(comp, 8, 6))
    mode, rgb, alpha, white = expected_decode(path)
    white.astype(np.uint8).tofile(os.path.join(DECODE, "composite_all.white.rgb"))
    rgb.astype(np.uint8).tofile(os.path.join(DECODE, "composite_all.rgb"))
    alpha.astype(np.uint8).tofile(os.path.join(DECODE, "composite_all.alpha"))
    manifest["decode"].append({"name": "composite_all", "pil_mode": mode, "width": 256, "height": 256,
                               "exact": True, "has_alpha": True})

    with tempfile.TemporaryDirectory() as tmp:
        for name, data, overrides in clip_cases(rng):
            path = os.path.join(CLIP, name + ".png")
            with open(path, "wb") as f:
                f.write(data)
            config = dict(CLIP_BASE)
            config.update(overrides)
            with open(os.path.join(tmp, "preprocessor_config.json"), "w") as f:
                json.dump(config, f)
            processor = AutoImageProcessor.from_pretrained(tmp)
            backend = type(processor).__name__
            assert backend == "CLIPImageProcessorPil", f"expected the PIL backend, got {backend}"
            values = processor(Image.open(path), return_tensors="np")["pixel_values"][0].astype("<f4")
            values.tofile(os.path.join(CLIP, name + ".f32"))
            manifest["clip"].append({"name": name, "config": config, "shape": list(values.shape), "backend": backend})

    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(manifest['decode'])} decode and {len(manifest['clip'])} CLIP fixtures to {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
