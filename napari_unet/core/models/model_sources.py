"""Where a model can come from: a model directory, a shipped pretrained name, a bioimage.io package."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserInputError
from .model import Model

PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "pretrained"
PRETRAINED = {
    "nuclei-2d": "2D fluorescent nuclei, pretrained on varied synthetic images (scripts/pretrain.py)",
    "nuclei-3d": "3D fluorescent nuclei, pretrained on varied synthetic volumes (scripts/pretrain.py)",
    "nuclei-2d-dsb": "2D nuclei in fluorescence, stained tissue (RGB) and brightfield, pretrained on real images "
    "(2018 Data Science Bowl train split; scripts/pretrain.py --data)",
}


def pretrained_path(name: str) -> Path:
    """The directory of the shipped pretrained model ``name`` (one of :data:`PRETRAINED`)."""
    if name not in PRETRAINED:
        raise UserInputError(f"no pretrained model {name!r}: choose one of {', '.join(PRETRAINED)}")
    return PRETRAINED_DIR / name


def open_model(source: Model | str | os.PathLike) -> Model:
    """A :class:`Model` from ``source``: a model object (returned as is), a pretrained name such as
    ``"nuclei-2d"``, a model directory, or a bioimage.io ``.zip`` that napari-unet exported."""
    if isinstance(source, Model):
        return source
    if isinstance(source, str) and source in PRETRAINED and not Path(source).exists():
        return Model.load(pretrained_path(source))
    path = Path(source)
    if path.suffix.lower() == ".zip" and path.is_file():
        from ..bioimageio.bioimageio_import import load_bioimageio

        return load_bioimageio(path)
    if not path.exists():
        raise UserInputError(
            f"model {source} not found: give a model directory, a bioimage.io .zip or a pretrained name "
            f"({', '.join(PRETRAINED)})"
        )
    return Model.load(path)
