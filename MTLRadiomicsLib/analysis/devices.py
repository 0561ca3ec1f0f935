"""Choosing the compute device, with a fallback to the CPU."""

from __future__ import annotations

import torch

from MTLRadiomicsLib.errors import MTLRadiomicsError


def choose_device(name: str, warnings: list[str]) -> torch.device:
    """'auto' takes CUDA when present; 'cuda' without CUDA falls back to the CPU with a warning."""
    if name not in ("auto", "cpu", "cuda"):
        raise MTLRadiomicsError(f"--device must be auto, cpu or cuda, not {name!r}")
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        warnings.append("CUDA was asked for but is not available (no GPU or a CPU-only PyTorch); ran on the CPU")
    return torch.device("cpu")


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()
