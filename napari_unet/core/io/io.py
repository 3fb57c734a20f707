"""Reading images (TIFF, PNG/JPEG, NPY, zarr / OME-Zarr) and writing label images (TIFF, zarr, NPY).

Writes go through :func:`atomic_target`: an existing output is replaced only by a complete one, and
only where :mod:`.ownership` allows it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from ..validation import as_channels_first
from .atomic import atomic_target
from .lazy import ChannelsFirstView
from .ngff import OmeImage, ome_metadata, read_ome_image
from .ownership import MARKER, PREDICTION, tiff_software, zarr_mark

log = logging.getLogger(__name__)

READ_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy", ".zarr")
WRITE_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")


@dataclass
class ImageData:
    """An image array and what the file says about it: the voxel size per spatial axis, and
    which axis holds channels (RGB PNG/JPEG, a C axis in TIFF metadata, OME-Zarr axes).

    ``data`` is a numpy array, or with ``read_image(..., lazy=True)`` a zarr array still on disk
    whose singleton ``drop_axes`` (an OME-Zarr time axis of length 1) are to be left out.
    ``axes`` (one letter per axis of ``data``, ``C`` for channels) is set where the file states its
    axes, and ``axes_source`` names that statement (e.g. "its ImageJ metadata").
    """

    data: Any
    spacing: tuple[float, ...] | None = None
    channel_axis: int | None = None
    drop_axes: tuple[int, ...] = ()
    ome: OmeImage | None = None
    axes: str | None = None
    axes_source: str | None = None

    def resolve_channel_axis(self, requested: int | None) -> int | None:
        """The channel axis to use: the file's, or ``requested`` (``--channel-axis``) where the file
        states no axes; a request that contradicts the file's stated axes is refused in one line."""
        if requested is None:
            return self.channel_axis
        ndim = len(self.data.shape)
        if self.axes is None or not -ndim <= requested < ndim:  # out of range: refused with the shape later
            return requested
        if self.channel_axis is not None and requested % ndim == self.channel_axis % ndim:
            return requested
        stated = "no channel axis" if self.channel_axis is None else f"channels on axis {self.channel_axis % ndim}"
        raise UserInputError(
            f"--channel-axis {requested} contradicts {self.axes_source}, which gives axes {self.axes} ({stated}): "
            "drop --channel-axis, or save the image again with the right axes"
        )

    def view(self, channel_axis: int | None = None) -> ChannelsFirstView:
        """``(C, *spatial)`` view that reads regions on demand (``channel_axis``: see :meth:`resolve_channel_axis`)."""
        return ChannelsFirstView(self.data, self.resolve_channel_axis(channel_axis), self.drop_axes)

    def channels_first(self, channel_axis: int | None = None) -> tuple[np.ndarray, int | None]:
        """The in-memory image as ``(C, *spatial)`` and the channel axis used (see :meth:`resolve_channel_axis`)."""
        axis = self.resolve_channel_axis(channel_axis)
        return as_channels_first(self.data, axis), axis


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _tiff_axes(tif, ndim: int) -> tuple[str | None, str | None]:
    """The axes a TIFF states (``C`` for channels, RGB(A) samples included) and which part of the file
    states them: tifffile's shaped metadata (``axes``), ImageJ metadata (channels, slices, frames), the
    OME-XML of an OME-TIFF, or RGB(A) samples stored last; ``(None, None)`` where the file states none.
    tifffile's own guesses for unlabelled stacks (``SYX`` / ``CYX``) are not statements."""
    series = tif.series[0].axes.upper()
    if tif.shaped_metadata and "axes" in tif.shaped_metadata[0]:
        axes, source = tif.shaped_metadata[0]["axes"].upper(), "its axes metadata"
    elif tif.is_imagej and not set(series) & set("IQ"):  # I, Q: ImageJ images of unknown kind
        axes, source = series, "its ImageJ metadata"
    elif tif.is_ome:
        axes, source = series, "its OME-XML"
    elif series.endswith("S"):
        axes, source = series, "its RGB samples"
    else:
        return None, None
    if len(axes) != ndim:
        return None, None
    if "C" not in axes and axes.endswith("S"):
        axes = axes[:-1] + "C"
    return axes, source


def _imagej_spacing(tif, spatial_ndim: int) -> tuple[float, ...] | None:
    """The voxel size (Z, Y, X) ImageJ stores: X/Y from the resolution tag, Z as ``spacing``."""
    resolution = tif.pages.first.tags.get("XResolution")
    if tif.imagej_metadata is None or resolution is None:
        return None
    numerator, denominator = resolution.value
    xy = denominator / numerator if numerator else 1.0
    z = float(tif.imagej_metadata.get("spacing", 1.0))
    return (z, xy, xy)[-spatial_ndim:]


# OME length units as micrometres (OME-XML's default unit), so axes given in different units compare
_MICROMETRES = {"Å": 1e-4, "nm": 1e-3, "µm": 1.0, "um": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


def _ome_spacing(tif, spatial_ndim: int) -> tuple[float, ...] | None:
    """The voxel size (Z, Y, X) an OME-TIFF states in its first image's ``Pixels`` (PhysicalSizeZ,
    Y, X, in micrometres); axes it leaves out are 1 µm, and None where it states none."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(tif.ome_metadata)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or not any(f"PhysicalSize{a}" in pixels.attrib for a in "ZYX"[-spatial_ndim:]):
        return None
    sizes = []
    for axis in "ZYX"[-spatial_ndim:]:
        value = float(pixels.get(f"PhysicalSize{axis}", 1.0))
        sizes.append(value * _MICROMETRES.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"), 1.0))
    return tuple(sizes)


def _read_tiff(path: Path) -> ImageData:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        axes, source = _tiff_axes(tif, data.ndim)
        channel_axis = axes.index("C") if axes is not None and "C" in axes else None
        spatial_ndim = data.ndim - (channel_axis is not None)
        spacing = None
        if spatial_ndim in (2, 3):
            spacing = _imagej_spacing(tif, spatial_ndim)
            if spacing is None and tif.is_ome:
                spacing = _ome_spacing(tif, spatial_ndim)
            if spacing is not None:
                log.info(
                    "%s: voxel size %s from its %s metadata", path.name, spacing, "ImageJ" if tif.is_imagej else "OME"
                )
    return ImageData(data, spacing, channel_axis, axes=axes, axes_source=source)


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
    letters = "".join(
        "C" if a == channel_axis else str(ome.axes[a].get("name", "?"))[:1].upper() for a in range(len(ome.axes))
    )
    source = "its OME-Zarr axes"
    if lazy:
        return ImageData(array, spacing, channel_axis, tuple(others), ome, letters, source)
    data = np.asarray(array).squeeze(axis=tuple(others))
    if channel_axis is not None:
        channel_axis -= sum(1 for a in others if a < channel_axis)
    kept = "".join(letter for a, letter in enumerate(letters) if a not in others)
    return ImageData(data, spacing, channel_axis, ome=ome, axes=kept, axes_source=source)


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
        if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
            return ImageData(pixels, channel_axis=-1, axes="YXC", axes_source="its RGB colours")
        return ImageData(pixels)
    except UserInputError:
        raise
    except Exception as error:  # each reader raises its own types for damaged files
        raise UserInputError(f"cannot read {path}: {type(error).__name__}: {error}".splitlines()[0]) from None


def check_output_folder(path: str | os.PathLike, what: str = "output path") -> None:
    """Refuse, before any work, an output whose folder is missing or not writable (``what`` names
    the path the user gave, e.g. "--model path")."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise UserInputError(f"output folder {folder} does not exist: create it first or choose another {what}")
    if not os.access(folder, os.W_OK):
        raise UserInputError(f"output folder {folder} is not writable: choose another {what}")


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output path we cannot write before any work is done."""
    path = Path(path)
    if _suffix(path) not in WRITE_SUFFIXES:
        raise UserInputError(f"cannot write {path}: use one of {', '.join(WRITE_SUFFIXES)}")
    check_output_folder(path)
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
