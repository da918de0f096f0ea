"""Writes h5py_fixture.h5: a small file in the golden layout (GoldenData/README.md, format version 2),
written by h5py the way Tools/golden.py writes goldens, plus extras that exercise the Swift reader:
float64 storage, int32 storage, a gzip-chunked dataset, a group (not a root dataset), fixed-length
(numpy bytes) and variable-length (str) string attributes, and attributes on a dataset.

Run once by hand (the Swift tests never run Python):
    /work/main/.venv/bin/python Tests/ArbiterFormatsTests/Fixtures/make_h5_fixture.py
Values are closed-form so the Swift test can recompute them.
"""
import os

import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "Tools"))
import content_digests  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    path = os.path.join(HERE, "h5py_fixture.h5")
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = 2                      # int64 scalar
        f.attrs["model_id"] = "tiny-llama"                 # str: variable-length UTF-8
        f.attrs["model_type"] = np.bytes_(b"llama")        # bytes: fixed-length ASCII
        f.attrs["source"] = "h5py fixture (make_h5_fixture.py)"
        f.attrs["seed"] = 1234
        f.attrs["case"] = "text-short"
        f.attrs["prompt"] = "Décris l’image ✓"              # non-ASCII UTF-8
        f.attrs["temperature"] = 0.25                      # float64 scalar

        t, d, h, v = 5, 4, 2, 7
        f.create_dataset("input_ids", data=np.array([1, 15043, 3186, 29892, 2], dtype=np.int64))
        embed = (np.arange(t * d, dtype=np.float32) * 0.5 - 3.0).reshape(t, d)
        ds = f.create_dataset("hook_embed", data=embed)
        ds.attrs["units"] = "residual"
        ds.attrs["layer"] = -1
        ds.attrs["scale"] = 0.5
        ds.attrs["tag"] = np.bytes_(b"fixed")
        pattern = (np.arange(h * t * t, dtype=np.float32) / 100.0).reshape(h, t, t)
        f.create_dataset("blocks.0.attn.hook_pattern", data=pattern)
        logits = (np.arange(t * v, dtype=np.float64) * 0.125 - 1.0).reshape(t, v)
        f.create_dataset("logits", data=logits)            # stored as float64
        f.create_dataset("positions", data=np.arange(t, dtype=np.int32))
        f.create_dataset("mask_u8", data=np.ones(t, dtype=np.uint8))
        resid = (np.arange(t * d, dtype=np.float32) - 10.0).reshape(t, d)
        f.create_dataset("blocks.0.hook_resid_post", data=resid, chunks=(2, d), compression="gzip")
        f.create_dataset("scalar_value", data=np.float32(2.5))
        group = f.create_group("extras")
        group.create_dataset("nested", data=np.zeros(3, dtype=np.float32))
        content_digests.add(f)


if __name__ == "__main__":
    main()
