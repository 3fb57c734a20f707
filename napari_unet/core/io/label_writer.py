"""Save a label array as an OME-Zarr label image, chunk by chunk, replacing any previous one only
once the new one is complete."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import UserInputError
from ..infer.blockwise import BlockPlan
from .atomic import atomic_target
from .labels_target import LabelsTarget
from .ngff import LabelImageSpec, create_level0, ngff_format, open_labels_group, register_label, write_pyramid
from .ownership import LABELS


@contextlib.contextmanager
def label_image(
    target: LabelsTarget, spec: LabelImageSpec, kind: str, *, overwrite: bool = False, inputs: Iterable = ()
) -> Iterator[Path]:
    """A temporary path to create and fill level 0 of ``spec`` in; once the block ends without an
    error the pyramid and metadata are added, it replaces ``target`` (see :func:`.atomic_target`
    for ``kind``, ``overwrite`` and ``inputs``) and is listed in its image's ``labels/``."""
    with atomic_target(target.root, kind, overwrite=overwrite, inputs=inputs) as tmp:
        yield tmp
        write_pyramid(tmp, spec, target.name, kind, standalone=target.standalone)
    if target.image_root is not None:
        register_label(open_labels_group(target.image_root), target.name, spec)


def write_label_image(
    labels,
    out: str | os.PathLike,
    *,
    spacing: Sequence[float] | None = None,
    translation: Sequence[float] | None = None,
    class_names: Sequence[str] = (),
    ngff_version: str = "0.4",
    overwrite: bool = False,
    inputs: Iterable = (),
    kind: str = LABELS,
) -> Path:
    """Save a label array (numpy, zarr or dask; YX or ZYX integers) as an OME-Zarr label image
    at ``out`` (a ``.zarr`` path or ``IMAGE.zarr/labels/NAME``), chunk by chunk, replacing any
    previous one only when complete. It replaces only a label image napari-unet saved as the same
    ``kind`` (:data:`.ownership.LABELS`: saved on request; ``PREDICTION``: a model's output), or with
    ``overwrite`` anything else but the ``inputs`` (see :mod:`.ownership`)."""
    target = LabelsTarget.parse(out)
    dtype = np.dtype(labels.dtype)
    if dtype.kind not in "biu" or len(labels.shape) not in (2, 3):
        raise UserInputError(
            f"labels to export must be 2D or 3D integers, got {dtype} of shape {tuple(labels.shape)}: "
            "choose a Labels layer"
        )
    version = target.version(ngff_version)
    ngff_format(version)
    shape = tuple(int(s) for s in labels.shape)
    target.check_shape(shape)
    spec = LabelImageSpec.for_image(shape, tuple(spacing) if spacing else None, None, version=version)
    spec.translation = [float(t) for t in translation] if translation is not None and any(translation) else None
    spec.class_names, spec.dtype = list(class_names), ("uint8" if dtype.kind == "b" else dtype.name)
    with label_image(target, spec, kind, overwrite=overwrite, inputs=inputs) as tmp:
        level0 = create_level0(tmp, spec)
        for block in BlockPlan.chunk_grid(shape, level0.chunks):
            chunk = labels[block]
            level0[block] = np.asarray(chunk.compute() if hasattr(chunk, "compute") else chunk)
    return target.root
