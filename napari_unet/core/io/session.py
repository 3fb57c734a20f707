"""A session on disk: the image, the strokes and the model in one OME-Zarr project, so work can stop
today and go on tomorrow. The project is an OME-Zarr image (NGFF 0.4) with the strokes as its label
image ``labels/strokes`` and the model folder beside them, so any NGFF viewer shows image and strokes."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserInputError
from ..models.model import Model
from ..validation import as_channels_first, check_annotations
from .atomic import atomic_target
from .ngff import ngff_format
from .ownership import SESSION, SESSION_KEY

SESSION_VERSION = 1


@dataclass
class Session:
    """``image`` as stored (channels first when it has channels), ``strokes`` (0 / 1 / 2..K)."""

    image: np.ndarray
    strokes: np.ndarray
    model: Model | None = None
    spacing: tuple[float, ...] | None = None
    channel_axis: int | None = None
    image_name: str | None = None


def save_session(
    path: str | os.PathLike,
    image: np.ndarray,
    strokes: np.ndarray,
    *,
    model: Model | None = None,
    spacing: Sequence[float] | None = None,
    channel_axis: int | None = None,
    image_name: str | None = None,
    overwrite: bool = False,
    inputs: Iterable = (),
) -> Path:
    """Write a ``.zarr`` session project, replacing an earlier session at ``path`` only when complete
    (anything else only with ``overwrite``, and never one of ``inputs``: see :mod:`.ownership`)."""
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    from .label_writer import write_label_image

    path = Path(path)
    if path.suffix.lower() != ".zarr":
        raise UserInputError(f"a session is saved as a .zarr folder, got {path}")
    channels_first = as_channels_first(image, channel_axis)
    spatial = channels_first.shape[1:]
    strokes = np.asarray(strokes)
    if strokes.any():
        strokes = check_annotations(strokes, spatial)
    elif strokes.shape != spatial:
        raise UserInputError(f"strokes of shape {strokes.shape} do not match the image's spatial shape {spatial}")
    spacing = [float(s) for s in (spacing or [1.0] * len(spatial))]
    stored = channels_first if channel_axis is not None else channels_first[0]
    names = "zyx"[-len(spatial) :]
    axes = ([{"name": "c", "type": "channel"}] if channel_axis is not None else []) + [
        {"name": n, "type": "space"} for n in names
    ]
    scale = ([1.0] if channel_axis is not None else []) + spacing
    with atomic_target(path, SESSION, overwrite=overwrite, inputs=inputs) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        group.create_array("0", data=np.ascontiguousarray(stored))
        write_multiscales_metadata(
            group,
            [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
            fmt=ngff_format("0.4"),
            axes=axes,
            name=image_name or path.stem,
        )
        group.create_group("labels")
        write_label_image(strokes.astype(np.uint8), tmp / "labels" / "strokes", spacing=spacing)
        if model is not None:
            model.save(tmp / "model")
        group.attrs[SESSION_KEY] = {
            "version": SESSION_VERSION,
            "image_name": image_name,
            "channel_axis": 0 if channel_axis is not None else None,
            "model": model is not None,
        }
    return path


def load_session(path: str | os.PathLike) -> Session:
    """Read a session project written by :func:`save_session`; anything else is a one-line error."""
    import zarr

    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        meta = dict(group.attrs)[SESSION_KEY]
    except Exception:  # missing, not zarr, or not ours
        raise UserInputError(f"{path} is not a napari-unet session (.zarr saved with Save session)") from None
    if not isinstance(meta, dict) or meta.get("version", 0) > SESSION_VERSION:
        raise UserInputError(f"{path} was saved by a newer napari-unet: update napari-unet to open it")
    from .io import read_image

    image = read_image(path)
    strokes = np.asarray(zarr.open_group(str(path / "labels" / "strokes"), mode="r")["0"])
    model = Model.load(path / "model") if meta.get("model") else None
    return Session(image.data, strokes, model, image.spacing, meta.get("channel_axis"), meta.get("image_name"))
