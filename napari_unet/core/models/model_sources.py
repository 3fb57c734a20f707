"""Where a model can come from: a model directory, a shipped pretrained name, a bioimage.io package."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

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


AUTO = "auto"  # init=AUTO: the default start below, or a new network
DEFAULT_START = "nuclei-2d-dsb"  # beat a new network on real 2D images of every kind (docs/benchmarks.md)


def default_start(image: np.ndarray, num_classes: int, dim: int | None, new_network_shape: bool) -> str | None:
    """The pretrained model training starts from when none is chosen, or None for a new network.

    :data:`DEFAULT_START` for what it was trained on: a 2D grey image (one channel) or an 8-bit RGB one
    (``image`` is ``(C, Y, X)``), one object class (``num_classes`` 2), no 3D network asked for and no
    network shape of the caller's own (``new_network_shape``). Anything else trains a new network.
    """
    grey_or_rgb = image.shape[0] == 1 or (image.shape[0] == 3 and image.dtype == np.uint8)
    plain = image.ndim == 3 and dim in (None, 2) and num_classes == 2 and not new_network_shape
    return DEFAULT_START if plain and grey_or_rgb else None
