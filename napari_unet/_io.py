"""npe2 reader and writer: OME-Zarr images (with their ``labels/``), OME-Zarr label images and plain
zarr arrays open lazily as dask arrays; a Labels layer saves as an OME-Zarr label image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

LayerData = tuple[Any, dict, str]


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """The reader for a ``.zarr`` array or OME-Zarr multiscale group, else None (napari tries others)."""
    if not isinstance(path, str) or Path(path).suffix.lower() != ".zarr":
        return None
    import zarr

    from .core.io.ngff import ome_metadata

    try:
        node = zarr.open(path, mode="r")
    except Exception:  # not a zarr store after all
        return None
    if isinstance(node, zarr.Array) or ome_metadata(dict(node.attrs)) is not None:
        return read_zarr
    return None


def read_zarr(path: str) -> list[LayerData]:
    """An image layer (or Labels for an ``image-label``) plus one Labels layer per listed label image."""
    import dask.array as da
    import zarr

    from .core.io.ngff import ome_labels_list, ome_metadata

    node = zarr.open(path, mode="r")
    name = Path(path).stem
    if isinstance(node, zarr.Array):
        return [(da.from_zarr(node), {"name": name}, "image")]
    ome = ome_metadata(dict(node.attrs))[1]
    if "image-label" in ome:
        return [_multiscale(node, name, "labels")]
    layers = [_multiscale(node, name, "image")]
    if "labels" in node:
        labels = node["labels"]
        layers += [_multiscale(labels[label], label, "labels") for label in ome_labels_list(labels) if label in labels]
    return layers


def _multiscale(group, name: str, layer_type: str) -> LayerData:
    """All levels of an OME-Zarr multiscale group as lazy dask arrays, placed by level 0's transforms."""
    import dask.array as da

    from .core.io.ngff import ome_metadata, read_ome_image

    datasets = ome_metadata(dict(group.attrs))[1]["multiscales"][0]["datasets"]
    levels = [da.from_zarr(group[dataset["path"]]) for dataset in datasets]
    ome = read_ome_image(group)
    channel_axis = ome.axis_index("channel") if layer_type == "image" else None
    spatial = ome.spatial_axes
    translation = ome.translation or [0.0] * len(ome.axes)
    kept = [a for a in range(len(ome.axes)) if a != channel_axis]
    meta: dict[str, Any] = {
        "name": name,
        "scale": [ome.scale[a] if a in spatial else 1.0 for a in kept],
        "translate": [translation[a] if a in spatial else 0.0 for a in kept],
    }
    if channel_axis is not None:
        meta["channel_axis"] = channel_axis
    return levels, meta, layer_type


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer (level 0 if multiscale) as an OME-Zarr label image at ``path``."""
    from .core.io.label_writer import write_label_image

    labels = data[0] if meta.get("multiscale") else data
    written = write_label_image(labels, path, spacing=meta["scale"], translation=meta["translate"])
    return [str(written)]
