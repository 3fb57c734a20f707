"""Predict an image straight into an OME-Zarr label image, block by block, replacing any previous
result only once the new one is complete (where the result goes: :mod:`.labels_target`; how a
label image is written: :mod:`.label_writer`)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..data.voxels import finest_lengths
from ..errors import UserInputError
from ..instances.instance_blocks import instance_block_shape, instances_to_array
from ..io.atomic import atomic_target, scratch_beside
from ..io.io import ImageData, read_image
from ..io.label_writer import label_image
from ..io.labels_target import LabelsTarget, probabilities_path
from ..io.lazy import ChannelsFirstView
from ..io.ngff import LabelImageSpec, create_level0, create_probabilities_image, ngff_format
from ..io.ownership import PREDICTION, check_replaceable
from ..memory import return_freed_memory
from ..models.devices import resolve_device
from ..models.model import Model
from ..models.model_sources import open_model
from ..models.precision import check_precision
from ..validation import check_count, check_tiling
from .blockwise import (
    BlockPlan,
    BlockSettings,
    BlockTimes,
    predict_blocks_distributed,
    predict_blocks_local,
)
from .inference import check_image_for_model, check_tile_memory

log = logging.getLogger(__name__)

INSTANCE_CONTEXT = 32  # voxels of context around a block when splitting objects (> a nucleus diameter)


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
    keep_specks: bool = False,
) -> BlockTimes:
    """Segment ``image`` (a path, read lazily, or :class:`ImageData`) into the OME-Zarr label image
    ``out`` without holding either in memory; with a dask ``client`` the blocks run on its workers.

    The label image copies axes, scale and translation from an OME-Zarr input and gets a pyramid
    of nearest-neighbour levels. ``probabilities`` also writes ``(K, *spatial)`` float32 to
    ``<out>_probabilities.zarr``. ``block_size`` (voxels per tiled axis) trades memory for speed.
    ``instances`` writes objects (0 = background, 1..N; touching ones split, ones cut by block
    borders joined) instead of classes. ``keep_specks``: see :func:`.inference.predict` (without it, specks
    are judged within each block and its context). ``precision``: see :mod:`.precision`. ``out`` (and the
    probabilities) may replace only a label image napari-unet wrote (or anything else but the
    inputs with ``overwrite``; see :mod:`.ownership`).
    """
    _check_options(tile_size, overlap, batch_size, precision, block_size)
    inputs = [source for source in (model, image) if not isinstance(source, (Model, ImageData))]
    target, probabilities_target = _targets(out, probabilities, overwrite, inputs)
    model, image, view = _open_inputs(model, image, channel_axis)
    spatial = view.shape[1:]
    target.check_shape(spatial)
    plan = BlockPlan.for_model(model, spatial, tile_size, overlap, block_size)
    spec = _label_spec(model, image, target, spatial, ngff_version, instances)
    device = _device_name(device, client, model, spatial, tile_size, batch_size)  # the one the blocks run on
    log.info("predicting %s in %d blocks of %s on %s", spatial, len(plan.blocks), plan.block_shape, device)
    ranges = model.intensity_ranges(view)
    return_freed_memory()  # the intensity sample is gone: keep the resident size where it was
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(label_image(target, spec, PREDICTION, overwrite=overwrite, inputs=inputs))
        labels_out = create_level0(tmp, spec, plan.chunks)
        classes, certainty = _scratch(stack, target, spatial, plan) if instances else (labels_out, None)
        probabilities_out = None
        if probabilities_target is not None:
            probabilities_tmp = stack.enter_context(
                atomic_target(probabilities_target, PREDICTION, overwrite=overwrite, inputs=inputs)
            )
            probabilities_out = create_probabilities_image(probabilities_tmp, model.num_classes, spec, plan.chunks)
        settings = BlockSettings(
            view,
            ranges,
            plan,
            classes,
            probabilities_out,
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            precision=precision,
            certainty_out=certainty,
            keep_specks=keep_specks,
        )
        times = _run_blocks(model, settings, client, progress)
        if instances:
            _objects(classes, certainty, labels_out, plan, image.spacing)
    return times


def _check_options(
    tile_size: int | Sequence[int] | None, overlap: float, batch_size: int | None, precision: str, block_size
) -> None:
    check_tiling(tile_size, overlap, batch_size)
    check_precision(precision)
    if block_size is not None:
        check_count(block_size, "the block size (--block-size)")


def _device_name(device: str, client, model: Model, spatial: tuple[int, ...], tile_size, batch_size: int | None) -> str:
    """The device the blocks run on (the workers' CPUs by default with a ``client``); here, a tile
    batch too big for its free memory is refused before any work."""
    if client is not None:
        return "cpu" if device == "auto" else device
    name = str(resolve_device(device))
    check_tile_memory(model, spatial, tile_size, batch_size, name)
    return name


def _objects(classes, certainty, labels_out, plan: BlockPlan, spacing: Sequence[float] | None) -> None:
    """Objects (0 = background, 1..N) of the predicted ``classes`` (and the model's ``certainty``) into
    ``labels_out``, in blocks with ``INSTANCE_CONTEXT`` of halo, joined across block borders."""
    halo = instance_halo(spacing, len(plan.block_shape))
    blocks = instance_block_shape(plan.block_shape, halo, spacing)
    instances_to_array(classes, labels_out, blocks, halo, spacing, certainty=certainty)


def _targets(
    out: str | os.PathLike, probabilities: bool, overwrite: bool, inputs: list
) -> tuple[LabelsTarget, Path | None]:
    """Where the labels (and the probabilities, if asked for) go, refused before any work where
    they may not be written."""
    target = LabelsTarget.parse(out)
    if probabilities and target.image_root is not None:
        raise UserInputError("probabilities are not labels: write them to a standalone X.zarr")
    probabilities_target = probabilities_path(target.root) if probabilities else None
    for path in (target.root, probabilities_target):
        if path is not None:
            check_replaceable(path, PREDICTION, overwrite=overwrite, inputs=inputs)
    return target, probabilities_target


def _open_inputs(
    model: Model | str | os.PathLike, image: ImageData | str | os.PathLike, channel_axis: int | None
) -> tuple[Model, ImageData, ChannelsFirstView]:
    """The model, the image (a path is read lazily) and its ``(C, *spatial)`` view, checked to fit."""
    model = open_model(model)
    if not isinstance(image, ImageData):
        image = read_image(Path(image).absolute(), lazy=True)
    view = image.view(channel_axis)
    source = "--channel-axis" if channel_axis is not None else image.axes_source
    check_image_for_model(model, view.shape, view.channel_axis, source)
    return model, image, view


def _label_spec(
    model: Model,
    image: ImageData,
    target: LabelsTarget,
    spatial: tuple[int, ...],
    ngff_version: str | None,
    instances: bool,
) -> LabelImageSpec:
    """The geometry and metadata of the label image: the input's axes, scale and NGFF version
    (or ``ngff_version``); class names and uint8 for classes, int32 and no names for instances."""
    version = target.version(ngff_version or (image.ome.version if image.ome is not None else "0.4"))
    ngff_format(version)  # refuses unknown versions before any work
    spec = LabelImageSpec.for_image(
        spatial, image.spacing, image.ome, class_names=list(model.config.class_names), version=version
    )
    if instances:
        spec.class_names, spec.dtype = [], "int32"
    return spec


def _scratch(stack: contextlib.ExitStack, target: LabelsTarget, spatial: tuple[int, ...], plan: BlockPlan):
    """For instances: the classes and the model's certainty (float16) go first into scratch arrays beside the
    output (removed when ``stack`` closes), and the objects are made from them."""
    import zarr

    scratch = stack.enter_context(scratch_beside(target.root))
    group = zarr.open_group(str(scratch), mode="w")
    classes = group.create_array("classes", shape=spatial, chunks=plan.chunks, dtype="uint8")
    certainty = group.create_array("certainty", shape=spatial, chunks=plan.chunks, dtype="float16")
    return classes, certainty


def _run_blocks(
    model: Model, settings: BlockSettings, client, progress: Callable[[int, int], None] | None
) -> BlockTimes:
    """Predict every block here or, with a dask ``client``, on its workers (who must have written
    every chunk: class labels are never 0, so a chunk never written means a worker wrote elsewhere)."""
    if client is None:
        return predict_blocks_local(model, settings, progress)
    times = predict_blocks_distributed(model, settings, client, progress)
    written = settings.labels_out
    if written.nchunks_initialized != written.nchunks:
        raise UserInputError(
            f"the dask workers wrote {written.nchunks_initialized} of {written.nchunks} chunks: "
            "they must see the input and output on the same file system as this machine"
        )
    return times


def instance_halo(spacing: Sequence[float] | None, ndim: int) -> tuple[int, ...]:
    """Context around a block for splitting objects: ``INSTANCE_CONTEXT`` in the finest voxel
    size, fewer voxels along coarser axes."""
    return finest_lengths(INSTANCE_CONTEXT, spacing, ndim, round_up=True)
