"""Content digests of golden HDF5 files (GoldenData/README.md, "Content digests"; the Swift side is
Sources/ArbiterFormats/HDF5/HDF5ContentDigests.swift). `add(f)` records, in the root attribute
`content_digests`, one line per attribute (of the root group and of root datasets) and per root dataset
with the SHA-256 of its canonical bytes, computed from the file as written; Arbiter refuses a golden file
whose content no longer matches. Needs only h5py and numpy.

    python Tools/content_digests.py check FILE...     # exit 1 naming every difference
    python Tools/content_digests.py upgrade FILE...   # golden format_version 1 -> 2, values unchanged

`upgrade` rewrites a version-1 golden file (no digests) as version 2: the same attributes and datasets, bit for
bit, plus the digests of what it holds now. It trusts the file: upgrade only files you know are intact (the
bundled ones were checked against their manifests' SHA-256 first). The new file replaces the old atomically.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from typing import Any

import h5py
import numpy as np

ATTRIBUTE = "content_digests"
HEADER = "arbiter-content-digests 1"
MAXIMUM_RECORD_BYTES = 60_000


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _attribute_line(owner: str, name: str, value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"attribute {name!r} of {owner}: {value.size} values, expected one")
        value = value.reshape(()).item() if value.dtype.kind not in "SU" else value.reshape(())[()]
    if isinstance(value, str):
        kind, data = "string", value.encode("utf-8")
    elif isinstance(value, (bytes, np.bytes_)):
        kind, data = "string", bytes(value)
    elif isinstance(value, (bool, np.bool_)):
        raise ValueError(f"attribute {name!r} of {owner}: booleans are not checked by Arbiter's digests")
    elif isinstance(value, (int, np.integer)):
        kind, data = "int", np.int64(value).astype("<i8").tobytes()
    elif isinstance(value, (float, np.floating)):
        kind, data = "float", np.float64(value).astype("<f8").tobytes()
    else:
        raise ValueError(f"attribute {name!r} of {owner}: {type(value).__name__} is not a string, integer or float")
    return f"attribute\t{owner}\t{name}\t{kind}\t{_digest(data)}"


def _dataset_line(name: str, dataset: h5py.Dataset) -> str:
    dtype = dataset.dtype
    values = dataset[()]
    if dtype.kind == "f" and dtype.itemsize in (2, 4):
        data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    elif dtype.kind == "f" and dtype.itemsize == 8:
        data = np.ascontiguousarray(values, dtype="<f8").tobytes()
    elif dtype.kind in "iu" and not (dtype.kind == "u" and dtype.itemsize == 8):
        data = np.ascontiguousarray(values, dtype="<i8").tobytes()
    else:
        raise ValueError(f"dataset {name!r}: {dtype} is not a float or integer dataset Arbiter's digests check")
    shape = "x".join(str(d) for d in dataset.shape) if dataset.shape else "scalar"
    return f"dataset\t{name}\t{dtype.name}\t{shape}\t{_digest(data)}"


def record(f: h5py.File) -> str:
    """The digest record of `f` as it is now (its own `content_digests` attribute left out)."""
    lines = []
    for name, value in f.attrs.items():
        if name != ATTRIBUTE:
            lines.append(_attribute_line("/", name, value))
    for name, item in f.items():
        if not isinstance(item, h5py.Dataset):
            continue
        for attribute, value in item.attrs.items():
            lines.append(_attribute_line(name, attribute, value))
        lines.append(_dataset_line(name, item))
    lines.sort(key=lambda line: line.encode("utf-8"))
    return "".join(line + "\n" for line in [HEADER] + lines)


def add(f: h5py.File) -> None:
    """Records the content digests of everything written to `f` so far (call it last, before closing)."""
    text = record(f)
    if len(text.encode("utf-8")) > MAXIMUM_RECORD_BYTES:
        raise ValueError(f"{f.filename}: a {len(text)}-byte digest record is over the "
                         f"{MAXIMUM_RECORD_BYTES}-byte limit of an HDF5 attribute")
    f.attrs[ATTRIBUTE] = text


def check(path: str) -> list[str]:
    """The differences between `path`'s content and its recorded digests (empty when it matches)."""
    with h5py.File(path, "r") as f:
        if ATTRIBUTE not in f.attrs:
            return [f"{path}: no root attribute {ATTRIBUTE!r}"]
        stored = f.attrs[ATTRIBUTE]
        stored = stored.decode("utf-8") if isinstance(stored, bytes) else str(stored)
        current = record(f)
    if stored == current:
        return []
    old, new = set(stored.splitlines()), set(current.splitlines())
    return ([f"{path}: recorded, not found now: {line}" for line in sorted(old - new)]
            + [f"{path}: found now, not recorded: {line}" for line in sorted(new - old)])


def upgrade(path: str) -> bool:
    """Rewrites golden file `path` (format_version 1) as version 2 with digests; False if it is not version 1."""
    with h5py.File(path, "r") as f:
        if int(f.attrs.get("format_version", -1)) != 1 or ATTRIBUTE in f.attrs:
            return False
        attributes = dict(f.attrs.items())
        datasets = {}
        for name, item in f.items():
            if not isinstance(item, h5py.Dataset):
                raise ValueError(f"{path}: {name!r} is not a root dataset; only golden files can be upgraded")
            datasets[name] = (item[()], dict(item.attrs.items()))
    attributes["format_version"] = np.int64(2)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        with h5py.File(temporary, "w", libver=("earliest", "v110"), track_order=False) as f:
            for key, value in attributes.items():
                f.attrs[key] = value
            for name, (values, own) in datasets.items():
                dataset = f.create_dataset(name, data=np.ascontiguousarray(values), track_times=False)
                for key, value in own.items():
                    dataset.attrs[key] = value
            add(f)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return True


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "upgrade":
        for path in argv[1:]:
            print(f"{path}: {'upgraded to format_version 2' if upgrade(path) else 'not a version-1 golden file'}")
        return 0
    if len(argv) < 2 or argv[0] != "check":
        print(__doc__, file=sys.stderr)
        return 2
    problems = [p for path in argv[1:] for p in check(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(argv) - 1} file(s): {'ok' if not problems else f'{len(problems)} difference(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
