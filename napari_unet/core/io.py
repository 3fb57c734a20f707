"""Reading images (TIFF, PNG/JPEG, NPY, zarr / OME-Zarr) and writing label images (TIFF, zarr, NPY).

Writes go through :func:`atomic_target`: an existing output is replaced only by a complete one, and
only where :mod:`.ownership` allows it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_target
from .errors import UserInputError
from .lazy import ChannelsFirstView
from .ngff import OmeImage, ome_metadata, read_ome_image
from .ownership import MARKER, PREDICTION, tiff_software, zarr_mark

READ_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy", ".zarr")
WRITE_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")


@dataclass
class ImageData:
    """An image array and what the file says about it: the voxel size per spatial axis, and
    which axis holds channels (RGB PNG/JPEG, a C axis in TIFF metadata, OME-Zarr axes).

    ``data`` is a numpy array, or with ``read_image(..., lazy=True)`` a zarr array still on disk
    whose singleton ``drop_axes`` (an OME-Zarr time axis of length 1) are to be left out.
    """

    data: Any
    spacing: tuple[float, ...] | None = None
    channel_axis: int | None = None
    drop_axes: tuple[int, ...] = ()
    ome: OmeImage | None = None

    def view(self, channel_axis: int | None = None) -> ChannelsFirstView:
        """``(C, *spatial)`` view that reads regions on demand (``channel_axis`` overrides the file's)."""
        axis = self.channel_axis if channel_axis is None else channel_axis
        return ChannelsFirstView(self.data, axis, self.drop_axes)


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _tiff_channel_axis(tif, ndim: int) -> int | None:
    """The channel axis only where the file states it: a ``C`` in axes written by the writer
    (tifffile shaped metadata, or an ImageJ hyperstack with both channels and slices), or RGB(A)
    samples stored last. tifffile's own guesses for unlabelled stacks (``SYX``, ``CYX``) are ignored."""
    axes = tif.series[0].axes.upper()
    stated = None
    if tif.shaped_metadata and "axes" in tif.shaped_metadata[0]:
        stated = tif.shaped_metadata[0]["axes"].upper()
    elif (
        tif.imagej_metadata and tif.imagej_metadata.get("channels", 1) > 1 and tif.imagej_metadata.get("slices", 1) > 1
    ):
        stated = axes
    if stated is not None and len(stated) == ndim and "C" in stated:
        return stated.index("C")
    if len(axes) == ndim and axes.endswith("S"):
        return ndim - 1
    return None


def _read_tiff(path: Path) -> ImageData:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        channel_axis = _tiff_channel_axis(tif, data.ndim)
        spacing = None
        resolution = tif.pages.first.tags.get("XResolution")
        spatial_ndim = data.ndim - (channel_axis is not None)
        if tif.imagej_metadata is not None and resolution is not None and spatial_ndim in (2, 3):
            numerator, denominator = resolution.value
            xy = denominator / numerator if numerator else 1.0
            z = float(tif.imagej_metadata.get("spacing", 1.0))
            spacing = (z, xy, xy)[-spatial_ndim:]
    return ImageData(data, spacing, channel_axis)


def _read_ome_zarr(path: Path, group, lazy: bool) -> ImageData:
    ome = read_ome_image(group)
    array = group[ome.array_path]
    spatial = ome.spatial_axes
    channel_axis = ome.axis_index("channel")
    others = [a for a in range(len(ome.axes)) if a not in spatial and a != channel_axis]
    if any(array.shape[a] != 1 for a in others):
        named = ", ".join(f"{ome.axes[a].get('name')}={array.shape[a]}" for a in others)
        raise UserInputError(f"{path} has a non-spatial axis ({named}): save one time point as its own image")
    spacing = tuple(ome.scale[a] for a in spatial)
    if lazy:
        return ImageData(array, spacing, channel_axis, tuple(others), ome)
    data = np.asarray(array).squeeze(axis=tuple(others))
    if channel_axis is not None:
        channel_axis -= sum(1 for a in others if a < channel_axis)
    return ImageData(data, spacing, channel_axis, ome=ome)


def _read_zarr(path: Path, lazy: bool) -> ImageData:
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        spacing = node.attrs.get("napari-unet", {}).get("spacing")
        return ImageData(node if lazy else np.asarray(node), tuple(spacing) if spacing else None)
    if ome_metadata(dict(node.attrs)) is not None:
        return _read_ome_zarr(path, node, lazy)
    arrays = [name for name, _ in node.arrays()]
    if len(arrays) == 1:
        return ImageData(node[arrays[0]] if lazy else np.asarray(node[arrays[0]]))
    raise UserInputError(f"{path} is a zarr group without OME multiscales metadata; point to one array inside it")


def read_image(path: str | os.PathLike, lazy: bool = False) -> ImageData:
    """Read an image file into memory, or with ``lazy`` leave a zarr image on disk (other formats
    are always read whole); unreadable input is a one-line :class:`UserInputError`."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"file not found: {path}")
    suffix = _suffix(path)
    if suffix not in READ_SUFFIXES:
        raise UserInputError(f"cannot read {path}: supported formats are {', '.join(READ_SUFFIXES)}")
    try:
        if suffix in (".tif", ".tiff"):
            return _read_tiff(path)
        if suffix == ".npy":
            return ImageData(np.load(path, allow_pickle=False))
        if suffix == ".zarr":
            return _read_zarr(path, lazy)
        from skimage.io import imread

        pixels = np.asarray(imread(path))
        return ImageData(pixels, channel_axis=-1 if pixels.ndim == 3 and pixels.shape[-1] in (3, 4) else None)
    except UserInputError:
        raise
    except Exception as error:  # each reader raises its own types for damaged files
        raise UserInputError(f"cannot read {path}: {type(error).__name__}: {error}".splitlines()[0]) from None


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output path we cannot write before any work is done."""
    path = Path(path)
    if _suffix(path) not in WRITE_SUFFIXES:
        raise UserInputError(f"cannot write {path}: use one of {', '.join(WRITE_SUFFIXES)}")
    if not path.parent.is_dir():
        raise UserInputError(f"output folder {path.parent} does not exist: create it first")
    if not os.access(path.parent, os.W_OK):
        raise UserInputError(f"output folder {path.parent} is not writable: choose another output path")
    is_zarr = any((path / marker).exists() for marker in ("zarr.json", ".zarray", ".zgroup"))
    if path.is_dir() and not is_zarr:
        raise UserInputError(f"{path} is an existing folder that is not a zarr store: choose another output path")
    return path


def write_array(
    path: str | os.PathLike,
    data: np.ndarray,
    spacing: tuple[float, ...] | None = None,
    *,
    overwrite: bool = False,
    inputs: Iterable = (),
) -> Path:
    """Write ``data`` to ``.tif``/``.tiff``/``.npy``/``.zarr``, replacing ``path`` only when complete,
    and only if napari-unet wrote it (or ``overwrite``), never one of ``inputs`` (see :mod:`.ownership`).
    TIFF and zarr outputs carry napari-unet's mark, so the next run may replace them."""
    path = check_output_path(path)
    suffix = _suffix(path)
    with atomic_target(path, PREDICTION, overwrite=overwrite, inputs=inputs) as tmp:
        if suffix in (".tif", ".tiff"):
            import tifffile

            metadata = {"axes": "ZYX"[-data.ndim :]} if data.ndim <= 3 else {}
            software = tiff_software(PREDICTION)
            tifffile.imwrite(tmp, data, metadata=metadata, compression="zlib", software=software)
        elif suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, data, allow_pickle=False)
        else:
            import zarr

            array = zarr.create_array(str(tmp), shape=data.shape, dtype=data.dtype, chunks=_chunks(data.shape))
            array[...] = data
            mark = zarr_mark(PREDICTION)
            array.attrs[MARKER] = {**mark, "spacing": list(spacing)} if spacing is not None else mark
    return path


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of about 1–2 MiB: 256² in-plane, 16–64 deep."""
    target = {1: (4096,), 2: (512, 512), 3: (32, 256, 256)}.get(len(shape))
    if target is None:
        target = (1,) * (len(shape) - 3) + (32, 256, 256)
    return tuple(min(s, t) for s, t in zip(shape, target))
