"""Predict an image straight into an OME-Zarr label image, block by block, replacing any previous
result only once the new one is complete."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_target, scratch_beside
from .blockwise import (
    BlockPlan,
    BlockSettings,
    BlockTimes,
    predict_blocks_distributed,
    predict_blocks_local,
    return_freed_memory,
)
from .devices import resolve_device
from .errors import UserInputError
from .inference import check_image_for_model, check_tile_memory
from .instance_blocks import instance_block_shape, instances_to_array
from .io import ImageData, check_output_path, read_image
from .model import Model
from .model_sources import open_model
from .ngff import (
    LabelImageSpec,
    create_level0,
    ngff_format,
    ome_metadata,
    open_labels_group,
    register_label,
    write_pyramid,
    zarr_format,
)
from .ownership import LABELS, MARKER, PREDICTION, check_replaceable, zarr_mark
from .precision import check_precision
from .validation import check_count, check_tiling

INSTANCE_CONTEXT = 32  # voxels of context around a block when splitting objects (> a nucleus diameter)


@dataclass(frozen=True)
class LabelsTarget:
    """Where a label image goes: a standalone ``.zarr``, or ``IMAGE.zarr/labels/NAME``."""

    root: Path
    image_root: Path | None = None

    @property
    def name(self) -> str:
        return self.root.name

    @classmethod
    def parse(cls, out: str | os.PathLike) -> LabelsTarget:
        """Check ``out`` before any work: ``IMAGE.zarr/labels/NAME`` (IMAGE an OME-Zarr image)
        writes into that image's labels; any other path must be a writable ``.zarr`` path. Paths
        become absolute, so dask workers started elsewhere write to the same place."""
        out = Path(out).absolute()
        if is_image_labels_path(out):
            if not os.access(out.parent.parent, os.W_OK):
                raise UserInputError(f"{out.parent.parent} is not writable: write to a standalone X.zarr instead")
            return cls(out, out.parent.parent)
        if out.suffix.lower() != ".zarr":
            raise UserInputError(f"out-of-core output must be a .zarr path (or IMAGE.zarr/labels/NAME), got {out}")
        return cls(check_output_path(out))

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """A label image inside an image's ``labels/`` must cover that image's spatial shape."""
        if self.image_root is None:
            return
        import zarr

        from .ngff import read_ome_image

        group = zarr.open_group(str(self.image_root), mode="r")
        image = read_ome_image(group)
        image_shape = tuple(group[image.array_path].shape[a] for a in image.spatial_axes)
        if tuple(shape) != image_shape:
            raise UserInputError(
                f"labels of shape {tuple(shape)} do not fit {self.image_root} (spatial shape {image_shape}): "
                "write them to a standalone X.zarr instead"
            )


def is_image_labels_path(out: str | os.PathLike) -> bool:
    """Whether ``out`` is ``IMAGE/labels/NAME`` with IMAGE an OME-Zarr image on disk."""
    import zarr

    out = Path(out)
    if out.parent.name != "labels" or not out.parent.parent.is_dir():
        return False
    try:
        return ome_metadata(dict(zarr.open_group(str(out.parent.parent), mode="r").attrs)) is not None
    except Exception:  # not a zarr group at all
        return False


def probabilities_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_probabilities{out.suffix}")


def predict_to_zarr(
    model: Model | str | os.PathLike,
    image: ImageData | str | os.PathLike,
    out: str | os.PathLike,
    *,
    channel_axis: int | None = None,
    probabilities: bool = False,
    tile_size: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    batch_size: int | None = None,
    block_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    client=None,
    ngff_version: str | None = None,
    instances: bool = False,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> BlockTimes:
    """Segment ``image`` (a path, read lazily, or :class:`ImageData`) into the OME-Zarr label image
    ``out`` without holding either in memory; with a dask ``client`` the blocks run on its workers.

    The label image copies axes, scale and translation from an OME-Zarr input and gets a pyramid
    of nearest-neighbour levels. ``probabilities`` also writes ``(K, *spatial)`` float32 to
    ``<out>_probabilities.zarr``. ``block_size`` (voxels per tiled axis) trades memory for speed.
    ``instances`` writes objects (0 = background, 1..N; touching ones split, ones cut by block
    borders joined) instead of classes. ``precision``: see :mod:`.precision`. ``out`` (and the
    probabilities) may replace only a label image napari-unet wrote (or anything else but the
    inputs with ``overwrite``; see :mod:`.ownership`).
    """
    check_tiling(tile_size, overlap, batch_size)
    check_precision(precision)
    if block_size is not None:
        check_count(block_size, "the block size (--block-size)")
    target = LabelsTarget.parse(out)
    if probabilities and target.image_root is not None:
        raise UserInputError("probabilities are not labels: write them to a standalone X.zarr")
    inputs = [source for source in (model, image) if not isinstance(source, (Model, ImageData))]
    probabilities_target = probabilities_path(target.root) if probabilities else None
    for path in (target.root, probabilities_target):
        if path is not None:
            check_replaceable(path, PREDICTION, overwrite=overwrite, inputs=inputs)
    import zarr

    model = open_model(model)
    if not isinstance(image, ImageData):
        image = read_image(Path(image).absolute(), lazy=True)
    view = image.view(channel_axis)
    source = "--channel-axis" if channel_axis is not None else image.axes_source
    check_image_for_model(model, view.shape, view.channel_axis, source)
    spatial = view.shape[1:]
    target.check_shape(spatial)
    plan = BlockPlan.for_model(model, spatial, tile_size, overlap, block_size)
    if target.image_root is not None:
        version = image_version(target.image_root)
    else:
        version = ngff_version or (image.ome.version if image.ome is not None else "0.4")
    ngff_format(version)  # refuses unknown versions before any work
    spec = LabelImageSpec.for_image(
        spatial, image.spacing, image.ome, class_names=list(model.config.class_names), version=version
    )
    if instances:
        spec.class_names, spec.dtype = [], "int32"
    device_name = str(resolve_device(device)) if client is None else ("cpu" if device == "auto" else device)
    if client is None:
        check_tile_memory(model, spatial, tile_size, batch_size, device_name)
    ranges = model.intensity_ranges(view)
    return_freed_memory()  # the intensity sample is gone: keep the resident size where it was
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_target(target.root, PREDICTION, overwrite=overwrite, inputs=inputs))
        labels_out = create_level0(tmp, spec, plan.chunks)
        if instances:  # classes first into a scratch array beside the output, then objects from them
            scratch = stack.enter_context(scratch_beside(target.root))
            classes_out = zarr.create_array(str(scratch), shape=spatial, chunks=plan.chunks, dtype="uint8")
        else:
            classes_out = labels_out
        probabilities_out = None
        if probabilities_target is not None:
            probabilities_tmp = stack.enter_context(
                atomic_target(probabilities_target, PREDICTION, overwrite=overwrite, inputs=inputs)
            )
            probabilities_out = _create_probabilities(probabilities_tmp, model.num_classes, spec, plan.chunks)
        settings = BlockSettings(
            view, ranges, plan, classes_out, probabilities_out, tile_size, overlap, batch_size, device_name, precision
        )
        if client is None:
            times = predict_blocks_local(model, settings, progress)
        else:
            times = predict_blocks_distributed(model, settings, client, progress)
            if classes_out.nchunks_initialized != classes_out.nchunks:  # class labels are never 0
                raise UserInputError(
                    f"the dask workers wrote {classes_out.nchunks_initialized} of {classes_out.nchunks} chunks: "
                    "they must see the input and output on the same file system as this machine"
                )
        if instances:
            halo = instance_halo(image.spacing, len(spatial))
            blocks = instance_block_shape(plan.block_shape, halo, image.spacing)
            instances_to_array(classes_out, labels_out, blocks, halo, image.spacing)
        write_pyramid(tmp, spec, target.name, PREDICTION, standalone=target.image_root is None)
    if target.image_root is not None:
        register_label(open_labels_group(target.image_root), target.name, spec)
    return times


def instance_halo(spacing: Sequence[float] | None, ndim: int) -> tuple[int, ...]:
    """Context around a block for splitting objects: ``INSTANCE_CONTEXT`` in the finest voxel
    size, fewer voxels along coarser axes."""
    spacing = list(spacing or [1.0] * ndim)
    finest = min(spacing)
    return tuple(max(1, math.ceil(INSTANCE_CONTEXT * finest / s)) for s in spacing)


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
    version = image_version(target.image_root) if target.image_root is not None else ngff_version
    ngff_format(version)
    shape = tuple(int(s) for s in labels.shape)
    target.check_shape(shape)
    spec = LabelImageSpec.for_image(shape, tuple(spacing) if spacing else None, None, version=version)
    spec.translation = [float(t) for t in translation] if translation is not None and any(translation) else None
    spec.class_names, spec.dtype = list(class_names), ("uint8" if dtype.kind == "b" else dtype.name)
    with atomic_target(target.root, kind, overwrite=overwrite, inputs=inputs) as tmp:
        level0 = create_level0(tmp, spec)
        for block in BlockPlan.chunk_grid(shape, level0.chunks):
            chunk = labels[block]
            level0[block] = np.asarray(chunk.compute() if hasattr(chunk, "compute") else chunk)
        write_pyramid(tmp, spec, target.name, kind, standalone=target.image_root is None)
    if target.image_root is not None:
        register_label(open_labels_group(target.image_root), target.name, spec)
    return target.root


def image_version(image_root: Path) -> str:
    import zarr

    found = ome_metadata(dict(zarr.open_group(str(image_root), mode="r").attrs))
    return found[0] if found else "0.4"


def _create_probabilities(root: Path, num_classes: int, spec: LabelImageSpec, chunks: tuple[int, ...]):
    """An OME-Zarr image ``(c, *spatial)`` of float32 class probabilities (one level)."""
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(root), mode="w", zarr_format=zarr_format(spec.version))
    array = group.create_array(
        "0", shape=(num_classes, *spec.shape), chunks=(1, *chunks), dtype="float32", fill_value=np.nan
    )
    translation = [0.0, *spec.translation] if spec.translation else None
    transforms = [{"type": "scale", "scale": [1.0, *spec.scale]}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": translation})
    axes = [{"name": "c", "type": "channel"}, *spec.axes]
    write_multiscales_metadata(
        group, [{"path": "0", "coordinateTransformations": transforms}], fmt=ngff_format(spec.version), axes=axes
    )
    group.attrs[MARKER] = zarr_mark(PREDICTION)
    return array
