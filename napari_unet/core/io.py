"""Reading images (TIFF, PNG/JPEG, NPY, zarr / OME-Zarr) and writing label images (TIFF, zarr, NPY).

Writes go through :func:`atomic_target`: an existing output is replaced only by a complete one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_target
from .errors import UserInputError

READ_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy", ".zarr")
WRITE_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")


@dataclass
class ImageData:
    """An image array and what the file says about it: the voxel size per spatial axis, and
    which axis holds channels (RGB PNG/JPEG, or a C axis in TIFF metadata)."""

    data: np.ndarray
    spacing: tuple[float, ...] | None = None
    channel_axis: int | None = None


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


def _ome_multiscales(attrs: dict) -> list | None:
    if "ome" in attrs and "multiscales" in attrs["ome"]:  # NGFF 0.5
        return attrs["ome"]["multiscales"]
    return attrs.get("multiscales")  # NGFF 0.4


def _read_zarr(path: Path) -> ImageData:
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        spacing = node.attrs.get("napari-unet", {}).get("spacing")
        return ImageData(np.asarray(node), tuple(spacing) if spacing else None)
    multiscales = _ome_multiscales(dict(node.attrs))
    if multiscales:
        dataset = multiscales[0]["datasets"][0]
        array = node[dataset["path"]]
        spacing = None
        for transform in dataset.get("coordinateTransformations", []):
            if transform.get("type") == "scale":
                axes = multiscales[0].get("axes", [])
                types = [a.get("type") if isinstance(a, dict) else None for a in axes]
                scale = transform["scale"]
                spacing = tuple(float(s) for s, t in zip(scale, types) if t == "space") or None
        return ImageData(np.asarray(array), spacing)
    arrays = [name for name, _ in node.arrays()]
    if len(arrays) == 1:
        return ImageData(np.asarray(node[arrays[0]]))
    raise UserInputError(f"{path} is a zarr group without OME multiscales metadata; point to one array inside it")


def read_image(path: str | os.PathLike) -> ImageData:
    """Read an image file into memory; unreadable input is a one-line :class:`UserInputError`."""
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
            return _read_zarr(path)
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
        raise UserInputError(f"output folder {path.parent} is not writable: choose another --out")
    is_zarr = any((path / marker).exists() for marker in ("zarr.json", ".zarray", ".zgroup"))
    if path.is_dir() and not is_zarr:
        raise UserInputError(f"{path} is an existing folder that is not a zarr store: choose another --out")
    return path


def write_array(path: str | os.PathLike, data: np.ndarray, spacing: tuple[float, ...] | None = None) -> Path:
    """Write ``data`` to ``.tif``/``.tiff``/``.npy``/``.zarr``, replacing ``path`` only when complete."""
    path = check_output_path(path)
    suffix = _suffix(path)
    with atomic_target(path) as tmp:
        if suffix in (".tif", ".tiff"):
            import tifffile

            metadata = {"axes": "ZYX"[-data.ndim :]} if data.ndim <= 3 else {}
            tifffile.imwrite(tmp, data, metadata=metadata, compression="zlib")
        elif suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, data, allow_pickle=False)
        else:
            import zarr

            array = zarr.create_array(str(tmp), shape=data.shape, dtype=data.dtype, chunks=_chunks(data.shape))
            array[...] = data
            if spacing is not None:
                array.attrs["napari-unet"] = {"spacing": list(spacing)}
    return path


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of about 1–2 MiB: 256² in-plane, 16–64 deep."""
    target = {1: (4096,), 2: (512, 512), 3: (32, 256, 256)}.get(len(shape))
    if target is None:
        target = (1,) * (len(shape) - 3) + (32, 256, 256)
    return tuple(min(s, t) for s, t in zip(shape, target))
