"""Writes reference.safetensors with the Python `safetensors` package (the reference implementation), for
Tests/ArbiterFormatsTests/SafetensorsTests.swift: Swift must read it, and must write the same bytes for the
same content. F16/BF16 values are rounded by torch from the Float32 values listed, so the Swift encoders are
checked against torch's rounding (ties to even, a float16 subnormal, overflow to infinity in float16).

Run once by hand (the Swift tests never run Python):
    /work/main/.venv/bin/python Tests/ArbiterFormatsTests/Fixtures/make_safetensors_fixture.py
Keep the values in sync with `ReferenceFixture` in SafetensorsTests.swift.
"""
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))

SOURCE = [0.0, 1.0, -2.5, 3.14159, 1e-5, 65504.0, 1.00048828125, 1.00390625, -0.1, 1e30, 70000.0, -0.0]


def main() -> None:
    source = torch.tensor(SOURCE, dtype=torch.float32)
    tensors = {
        "model.a.weight": source.reshape(3, 4),
        "model.b.half": source.to(torch.float16),
        "model.c.bf16": source.to(torch.bfloat16).reshape(2, 6),
        "model.d.empty": torch.zeros(0, 4, dtype=torch.float32),
        "model.e.scalar": torch.tensor(7.0, dtype=torch.float32),
    }
    save_file(tensors, os.path.join(HERE, "reference.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
