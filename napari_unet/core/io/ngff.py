"""OME-Zarr (NGFF 0.4 on zarr v2, 0.5 on zarr v3): read image metadata, write multiscale labels.

Metadata is written with ome-zarr-py; level 0 is created here so that it can be filled block
by block (see :mod:`.blockwise`), and the lower levels are made from it afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .ownership import MARKER, PREDICTION, zarr_mark
from .palette import class_rgba

VERSIONS = ("0.4", "0.5")
MIN_LEVEL_SIZE = 256  # stop the pyramid once the largest axis is this small
MAX_LEVELS = 6


@dataclass
class OmeImage:
    """What an OME-Zarr multiscale image says about its full-resolution level."""

    version: str
    array_path: str
    axes: list[dict[str, Any]]
    scale: list[float]
    translation: list[float] | None = None
    label_names: list[str] = field(default_factory=list)

    def axis_index(self, axis_type: str) -> int | None:
        types = [axis.get("type") for axis in self.axes]
        return types.index(axis_type) if axis_type in types else None

    @property
    def spatial_axes(self) -> list[int]:
        return [i for i, axis in enumerate(self.axes) if axis.get("type") == "space"]


def ome_metadata(attrs: dict) -> tuple[str, dict] | None:
    """``(version, ome attributes)`` of a group, or None if it has no ``multiscales``."""
    if "ome" in attrs and "multiscales" in attrs["ome"]:
        return str(attrs["ome"].get("version", "0.5")), attrs["ome"]
    if "multiscales" in attrs:
        multiscales = attrs["multiscales"]
        first = multiscales[0] if isinstance(multiscales, list) and multiscales else {}
        return str(first.get("version", "0.4") if isinstance(first, dict) else "0.4"), attrs
    return None


def _transforms(dataset: dict) -> tuple[list[float] | None, list[float] | None]:
    scale = translation = None
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            scale = [float(s) for s in transform["scale"]]
        elif transform.get("type") == "translation":
            translation = [float(t) for t in transform["translation"]]
    return scale, translation


AXIS_TYPES = {"c": "channel", "t": "time", "z": "space", "y": "space", "x": "space"}  # for axes without a type


def store_name(node) -> str:
    """Where a zarr group or array lives, for messages."""
    return str(getattr(node, "store_path", "the zarr store")).removeprefix("file://")


def read_ome_image(group) -> OmeImage | None:
    """The full-resolution level of an OME-Zarr multiscale group, or None for other groups.

    Axes without a type (allowed in NGFF 0.4; names only in 0.3) take it from their name (``c`` is
    a channel axis, ``t`` time, ``z``/``y``/``x`` space). Metadata naming a level the store lacks, or
    a scale of the wrong length, is a one-line :class:`UserInputError` naming the store.
    """
    import zarr

    found = ome_metadata(dict(group.attrs))
    if found is None:
        return None
    version, ome = found
    where = store_name(group)
    try:
        multiscale = ome["multiscales"][0]
        dataset = multiscale["datasets"][0]
        level = str(dataset["path"])
    except (KeyError, IndexError, TypeError):
        raise UserInputError(
            f"{where}: its OME multiscales metadata names no full-resolution level (datasets[0].path): "
            "the metadata is damaged; write the image again"
        ) from None
    array = group.get(level)
    if not isinstance(array, zarr.Array):
        raise UserInputError(
            f"{where}: its multiscales metadata names pyramid level {level!r}, but the store holds no such array: "
            "the store is incomplete; copy or write it again"
        )
    ndim = len(array.shape)
    axes = [dict(a) if isinstance(a, dict) else {"name": str(a)} for a in multiscale.get("axes", [])]
    if len(axes) != ndim:  # NGFF < 0.4 had no axis types: assume the trailing axes are space
        axes = [{"name": n, "type": "space"} for n in "tczyx"[-ndim:]]
    for axis in axes:
        if "type" not in axis and str(axis.get("name", "")).lower() in AXIS_TYPES:
            axis["type"] = AXIS_TYPES[str(axis["name"]).lower()]
    scale, translation = _transforms(dataset)
    if scale is not None and len(scale) != ndim:
        raise UserInputError(
            f"{where}: the scale of level {level!r} has {len(scale)} values for its {ndim} axes: "
            "the metadata is damaged; write the image again"
        )
    labels = ome_labels_list(group["labels"]) if "labels" in group else []
    return OmeImage(version, level, axes, scale or [1.0] * ndim, translation, labels)


def ome_labels_list(labels_group) -> list[str]:
    """Names listed in an image's ``labels/`` group."""
    attrs = dict(labels_group.attrs)
    return list(attrs.get("ome", attrs).get("labels", []))


def ngff_format(version: str):
    from ome_zarr.format import FormatV04, FormatV05

    if version not in VERSIONS:
        raise UserInputError(f"cannot write OME-Zarr {version}: use one of {', '.join(VERSIONS)}")
    return FormatV04() if version == "0.4" else FormatV05()


def zarr_format(version: str) -> int:
    return 2 if version == "0.4" else 3


def label_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of 1 MiB of uint8: 1024² in 2D, 64×128×128 in 3D (also the prediction blocks)."""
    target = (1024, 1024) if len(shape) == 2 else (64, 128, 128)
    return tuple(min(s, t) for s, t in zip(shape, target))


def pyramid_factors(shape: tuple[int, ...], spacing: tuple[float, ...]) -> list[tuple[int, ...]]:
    """Downsampling factor per level (relative to the previous one), stopping at ``MIN_LEVEL_SIZE``.

    The rule the U-Net pools by (:func:`.network.pool_strides_for_spacing`, as nnU-Net): an axis is
    halved while its voxel size is at most twice the finest one, so a coarse Z is kept until X and Y
    have caught up; axes one voxel long stay. Each level's scale is written from its factors, so any
    such pyramid is valid OME-Zarr.
    """
    from ..models.network import pool_strides_for_spacing  # imports torch: only once a pyramid is written

    factors: list[tuple[int, ...]] = []
    shape, spacing = list(shape), list(spacing)
    while max(shape) > MIN_LEVEL_SIZE and len(factors) < MAX_LEVELS - 1:
        axes = [i for i, n in enumerate(shape) if n > 1]
        halved = dict(zip(axes, pool_strides_for_spacing([spacing[i] for i in axes], depth=2)[0]))
        step = tuple(halved.get(i, 1) for i in range(len(shape)))
        factors.append(step)
        shape = [math.ceil(n / f) for n, f in zip(shape, step)]
        spacing = [sp * f for sp, f in zip(spacing, step)]
    return factors


@dataclass
class LabelImageSpec:
    """Where a label image goes and the geometry it copies from its source image."""

    shape: tuple[int, ...]  # spatial
    axes: list[dict[str, Any]]  # spatial axes, with units where known
    scale: list[float]
    translation: list[float] | None = None
    version: str = "0.4"
    class_names: list[str] = field(default_factory=list)
    dtype: str = "uint8"

    @classmethod
    def for_image(
        cls, shape: tuple[int, ...], spacing: tuple[float, ...] | None, source: OmeImage | None, **kwargs
    ) -> LabelImageSpec:
        """Copy the spatial axes, scale and translation of ``source`` (or use ``spacing``)."""
        if source is not None:
            spatial = source.spatial_axes
            translation = [source.translation[i] for i in spatial] if source.translation else None
            return cls(
                shape,
                [source.axes[i] for i in spatial],
                [source.scale[i] for i in spatial],
                translation,
                **kwargs,
            )
        names = "zyx"[-len(shape) :]
        return cls(shape, [{"name": n, "type": "space"} for n in names], list(spacing or [1.0] * len(shape)), **kwargs)


def create_level0(root: Path, spec: LabelImageSpec, chunks: tuple[int, ...] | None = None):
    """Create the group ``root`` and its empty full-resolution array ``0`` (filled later)."""
    import zarr

    group = zarr.open_group(str(root), mode="w", zarr_format=zarr_format(spec.version))
    chunks = chunks or label_chunks(spec.shape)
    return group.create_array("0", shape=spec.shape, chunks=chunks, dtype=spec.dtype, fill_value=0)


def create_probabilities_image(root: Path, num_classes: int, spec: LabelImageSpec, chunks: tuple[int, ...]):
    """Create the OME-Zarr image ``root`` of float32 class probabilities ``(c, *spatial)`` on
    ``spec``'s grid (one level, NaN until filled) and return its array."""
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(root), mode="w", zarr_format=zarr_format(spec.version))
    array = group.create_array(
        "0", shape=(num_classes, *spec.shape), chunks=(1, *chunks), dtype="float32", fill_value=np.nan
    )
    translation = [0.0, *spec.translation] if spec.translation else None
    axes = [{"name": "c", "type": "channel"}, *spec.axes]
    write_multiscales_metadata(
        group, [_dataset("0", [1.0, *spec.scale], translation)], fmt=ngff_format(spec.version), axes=axes
    )
    group.attrs[MARKER] = zarr_mark(PREDICTION)
    return array


def _image_label(spec: LabelImageSpec) -> dict[str, Any]:
    """For class labels: background (1) transparent, each class a colour and a name (the spec
    wants both for the same values). Other labels (e.g. instances) get no colours."""
    if not spec.class_names:
        return {}
    values = range(1, len(spec.class_names) + 1)
    colors = [{"label-value": v, "rgba": class_rgba(v)} for v in values]
    return {"colors": colors, "properties": [{"label-value": v, "class": n} for v, n in zip(values, spec.class_names)]}


def write_pyramid(root: Path, spec: LabelImageSpec, name: str, kind: str, standalone: bool = True) -> None:
    """Add the lower levels to a filled level 0 (nearest neighbour, so every level holds only
    existing label values), the multiscales metadata and napari-unet's mark of ``kind`` (see
    :mod:`.ownership`); ``standalone`` also marks ``root`` itself as an ``image-label`` (a label
    image inside an image's ``labels/`` is marked by :func:`register_label`); ``name`` is the final
    name (``root`` may be a temporary)."""
    import dask.array as da
    import zarr
    from ome_zarr.writer import add_metadata, write_multiscales_metadata

    fmt = ngff_format(spec.version)
    group = zarr.open_group(str(root), mode="r+")
    level_scale = list(spec.scale)
    datasets = [_dataset("0", level_scale, spec.translation)]
    for level, step in enumerate(pyramid_factors(spec.shape, tuple(spec.scale)), start=1):
        smaller = da.from_zarr(group[str(level - 1)])[tuple(slice(None, None, f) for f in step)]
        target = group.create_array(
            str(level), shape=smaller.shape, chunks=label_chunks(smaller.shape), dtype=spec.dtype, fill_value=0
        )
        da.store(smaller.rechunk(target.chunks), target, lock=False)  # one task per chunk: no write races
        level_scale = [s * f for s, f in zip(level_scale, step)]
        datasets.append(_dataset(str(level), level_scale, spec.translation))
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=spec.axes, name=name)
    group.attrs[MARKER] = zarr_mark(kind)
    if standalone:
        add_metadata(group, {"image-label": {"version": fmt.version, **_image_label(spec)}}, fmt=fmt)


def register_label(labels_group, name: str, spec: LabelImageSpec) -> None:
    """List ``name`` (once) in an image's ``labels/`` group and mark it as its ``image-label``."""
    from ome_zarr.writer import add_metadata, write_label_metadata

    fmt = ngff_format(spec.version)
    listed = ome_labels_list(labels_group)
    if name in listed:
        add_metadata(labels_group, {"labels": [n for n in listed if n != name]}, fmt=fmt)
    write_label_metadata(labels_group, name, fmt=fmt, source={"image": "../../"}, **_image_label(spec))


def _dataset(path: str, scale: list[float], translation: list[float] | None) -> dict:
    transforms: list[dict] = [{"type": "scale", "scale": [float(s) for s in scale]}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": [float(t) for t in translation]})
    return {"path": path, "coordinateTransformations": transforms}


def open_labels_group(image_root: Path):
    """The ``labels/`` group of an OME-Zarr image, created if missing."""
    import zarr

    image = zarr.open_group(str(image_root), mode="r+")
    return image["labels"] if "labels" in image else image.create_group("labels")
