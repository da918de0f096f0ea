"""Compares a regenerated golden file with the committed one, by kind of file.

  .h5           same dataset names, shapes, dtypes and attributes; floats within ATOL + RTOL·|committed| and
                NMSE ≤ NMSE_MAX per dataset (the repository's golden tolerance), ints equal, no NaN anywhere;
                the committed file's content digests match its content (the digest records themselves are not
                compared: they hash float bits, which another CPU's kernels move within the tolerance)
  .safetensors  same tensor names, dtypes, shapes and exactly equal values; same metadata
  .json         equal after parsing
  anything else byte-identical
"""
from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

import content_digests
from safetensors.numpy import load_file as load_safetensors_numpy
from safetensors import safe_open

# The golden tolerance of the whole repository (README, "Golden data and numerics"), not 1e-6: PyTorch picks
# its float32 kernels by CPU (AVX2 + FMA on some machines of this kind, AVX-512 on others) and their summation
# orders differ, so activations regenerated on another CPU move by up to ~4e-5 (seen: 3.6e-5 on a residual of
# magnitude 6, relative 6e-6, on an AVX-512 host against goldens written on an AVX2 one). A regeneration that
# really changed (another seed, model or transformers version) moves far more than this.
ATOL = 1e-4
RTOL = 5e-5
NMSE_MAX = 1e-8


def _attrs(obj: h5py.HLObject) -> dict[str, Any]:
    out = {}
    for key, value in obj.attrs.items():
        if key == content_digests.ATTRIBUTE:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    return out


def _datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
    found: dict[str, h5py.Dataset] = {}
    f.visititems(lambda name, obj: found.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def compare_h5(fresh_path: str, committed_path: str) -> tuple[list[str], str]:
    problems: list[str] = list(content_digests.check(committed_path))
    worst = 0.0
    with h5py.File(fresh_path, "r") as fresh, h5py.File(committed_path, "r") as committed:
        if _attrs(fresh) != _attrs(committed):
            problems.append(f"root attributes differ: regenerated {_attrs(fresh)} vs committed {_attrs(committed)}")
        a_sets, b_sets = _datasets(fresh), _datasets(committed)
        for name in sorted(set(a_sets) ^ set(b_sets)):
            where = "regenerated" if name in a_sets else "committed"
            problems.append(f"dataset {name} only in the {where} file")
        for name in sorted(set(a_sets) & set(b_sets)):
            a, b = a_sets[name], b_sets[name]
            if a.shape != b.shape or a.dtype != b.dtype:
                problems.append(f"{name}: regenerated {a.dtype}{list(a.shape)} vs committed {b.dtype}{list(b.shape)}")
                continue
            if _attrs(a) != _attrs(b):
                problems.append(f"{name}: attributes differ")
            x, y = a[()], b[()]
            if np.issubdtype(x.dtype, np.floating):
                if np.isnan(x).any() or np.isnan(y).any():
                    problems.append(f"{name}: contains NaN")
                    continue
                reference = y.astype(np.float64)
                diff = np.abs(x.astype(np.float64) - reference)
                largest = float(diff.max()) if diff.size else 0.0
                worst = max(worst, largest)
                excess = diff - (ATOL + RTOL * np.abs(reference))
                if diff.size and float(excess.max()) > 0:
                    index = tuple(int(i) for i in np.unravel_index(int(excess.argmax()), diff.shape))
                    problems.append(f"{name}: |difference| {float(diff[index]):.3g} > {ATOL:g} + {RTOL:g}·|committed| "
                                    f"at {list(index)} (regenerated {x[index]!r}, committed {y[index]!r})")
                power = float(np.sum(reference ** 2))
                nmse = float(np.sum(diff ** 2)) / power if power > 0 else float(np.sum(diff ** 2))
                if nmse > NMSE_MAX:
                    problems.append(f"{name}: NMSE {nmse:.3g} > {NMSE_MAX:g}")
            elif not np.array_equal(x, y):
                problems.append(f"{name}: values differ")
        summary = f"{len(b_sets)} datasets, max |diff| {worst:.3g}"
    return problems, summary


def compare_safetensors(fresh_path: str, committed_path: str) -> tuple[list[str], str]:
    problems: list[str] = []
    with safe_open(fresh_path, "np") as a, safe_open(committed_path, "np") as b:
        if a.metadata() != b.metadata():
            problems.append(f"metadata differ: {a.metadata()} vs {b.metadata()}")
    a_tensors, b_tensors = load_safetensors_numpy(fresh_path), load_safetensors_numpy(committed_path)
    for name in sorted(set(a_tensors) ^ set(b_tensors)):
        where = "regenerated" if name in a_tensors else "committed"
        problems.append(f"tensor {name} only in the {where} file")
    for name in sorted(set(a_tensors) & set(b_tensors)):
        x, y = a_tensors[name], b_tensors[name]
        if x.dtype != y.dtype or x.shape != y.shape:
            problems.append(f"{name}: regenerated {x.dtype}{list(x.shape)} vs committed {y.dtype}{list(y.shape)}")
        elif x.tobytes() != y.tobytes():
            problems.append(f"{name}: values differ (max |diff| {float(np.abs(x - y).max()):.3g})")
    return problems, f"{len(b_tensors)} tensors"


def compare_json(fresh_path: str, committed_path: str) -> tuple[list[str], str]:
    with open(fresh_path) as f:
        a = json.load(f)
    with open(committed_path) as f:
        b = json.load(f)
    if a == b:
        return [], "equal JSON"
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return [f"JSON differs at keys {keys[:10]}"], "JSON differs"
    return ["JSON differs"], "JSON differs"


def compare_bytes(fresh_path: str, committed_path: str) -> tuple[list[str], str]:
    with open(fresh_path, "rb") as f:
        a = f.read()
    with open(committed_path, "rb") as f:
        b = f.read()
    return ([] if a == b else ["bytes differ"]), f"{len(b)} bytes"


def compare_files(fresh_path: str, committed_path: str) -> tuple[list[str], str]:
    """Problems (empty when equal) and a one-line summary."""
    try:
        if fresh_path.endswith(".h5"):
            return compare_h5(fresh_path, committed_path)
        if fresh_path.endswith(".safetensors"):
            return compare_safetensors(fresh_path, committed_path)
        if fresh_path.endswith(".json"):
            return compare_json(fresh_path, committed_path)
        return compare_bytes(fresh_path, committed_path)
    except (OSError, ValueError, KeyError) as error:
        return [f"cannot compare: {error}"], "unreadable"
