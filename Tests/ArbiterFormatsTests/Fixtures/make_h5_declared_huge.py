"""Writes two small golden files (layout of GoldenData/README.md) whose gzip-chunked datasets declare far more
data than the files hold, the way a hostile or broken file can: readers must size a dataset from its declared
shape before reading it.

    golden_huge_input_ids.h5  `input_ids` declares 100,000,000 int64 tokens (800 MB); only its first chunk
                              (1,048,576 fives) is written, the rest reads as the fill value
    golden_huge_logits.h5     3 tokens, `logits` declares [3, 300,000,000] float32 (3.6 GB), one chunk written

Both are a few kilobytes. Their content digests (Tools/content_digests.py) are those of what they hold, except
the huge dataset's, a placeholder of zeros (a digest would read the declared gigabytes): readers check values
only when they read a dataset, and must refuse these on their declared shapes before that. Run once by hand (the Swift tests never run Python), with h5py (Tools/requirements.txt):
    python Tests/ArbiterFormatsTests/Fixtures/make_h5_declared_huge.py
"""
import os

import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "Tools"))
import content_digests  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNK = 1 << 20


def attributes(f: h5py.File) -> None:
    f.attrs["format_version"] = 2
    f.attrs["model_id"] = "tiny-llama"
    f.attrs["model_type"] = "llama"
    f.attrs["source"] = "make_h5_declared_huge.py"
    f.attrs["seed"] = 1001
    f.attrs["case"] = "declared-huge"


def add_digests(f: h5py.File, huge: str) -> None:
    """The record of `f` with a zero placeholder for dataset `huge` (its declared data is never read)."""
    lines = [content_digests._attribute_line("/", name, value) for name, value in f.attrs.items()]
    for name, item in f.items():
        if name == huge:
            shape = "x".join(str(d) for d in item.shape)
            lines.append(f"dataset\t{name}\t{item.dtype.name}\t{shape}\t{'0' * 32}")
        else:
            lines.append(content_digests._dataset_line(name, item))
    lines.sort(key=lambda line: line.encode("utf-8"))
    f.attrs[content_digests.ATTRIBUTE] = "".join(line + "\n" for line in [content_digests.HEADER] + lines)


def main() -> None:
    with h5py.File(os.path.join(HERE, "golden_huge_input_ids.h5"), "w") as f:
        attributes(f)
        ids = f.create_dataset("input_ids", shape=(100_000_000,), dtype=np.int64, chunks=(CHUNK,),
                               compression="gzip", compression_opts=9)
        ids[:CHUNK] = 5
        f.create_dataset("hook_embed", data=np.zeros((4, 4), dtype=np.float32))
        add_digests(f, "input_ids")
    with h5py.File(os.path.join(HERE, "golden_huge_logits.h5"), "w") as f:
        attributes(f)
        f.create_dataset("input_ids", data=np.array([1, 5, 9], dtype=np.int64))
        logits = f.create_dataset("logits", shape=(3, 300_000_000), dtype=np.float32, chunks=(1, CHUNK),
                                  compression="gzip", compression_opts=9)
        logits[0, :CHUNK] = 0.5
        add_digests(f, "logits")


if __name__ == "__main__":
    main()
