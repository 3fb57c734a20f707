"""Choosing the torch device."""

from __future__ import annotations

import torch

from ..errors import UserInputError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; asking for a missing one is a user error."""
    if name not in DEVICES:
        raise UserInputError(f"unknown device {name!r}: use one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise UserInputError(f"device {name!r} is not available on this machine: use --device auto or cpu")
    return torch.device(name)
