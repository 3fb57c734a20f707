"""napari layer helpers for the trainer dock. Main thread only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .core.io.palette import CLASS_COLOURS

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels, Layer, Points

TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def spatial_shape(layer: Image) -> tuple[int, ...]:
    shape = tuple(layer.data[0].shape if layer.multiscale else layer.data.shape)
    return shape[:-1] if layer.rgb else shape


def spatial_transform(layer: Image) -> dict:
    """The image's scale and translate on its spatial axes, for layers on the same grid."""
    ndim = len(spatial_shape(layer))
    return {"scale": tuple(layer.scale[-ndim:]), "translate": tuple(layer.translate[-ndim:])}


def new_strokes_layer(viewer: napari.Viewer, image: Image) -> Labels:
    """An empty strokes layer on ``image``'s grid: paint 1 for background, 2.. for objects."""
    layer = viewer.add_labels(
        np.zeros(spatial_shape(image), np.uint8), name=f"{image.name} strokes", **spatial_transform(image)
    )
    layer.selected_label = 2
    layer.mode = "paint"
    return layer


def prediction_colormap(num_classes: int):
    """Background (1) and unpainted (0) transparent; one colour per object class."""
    from napari.utils.colormaps import DirectLabelColormap

    colours = {None: TRANSPARENT, 0: TRANSPARENT, 1: TRANSPARENT}
    for value in range(2, num_classes + 2):
        colours[value] = CLASS_COLOURS[(value - 2) % len(CLASS_COLOURS)]
    return DirectLabelColormap(color_dict=colours)


def prediction_layer(
    viewer: napari.Viewer, name: str, shape: tuple[int, ...], transform: dict, num_classes: int, data=None
) -> Labels:
    """The Labels layer called ``name`` if it is there with the right shape (recoloured for
    ``num_classes``, showing ``data`` if given), else a new one of ``data`` or zeros. A Labels layer of that
    name and another shape (an earlier prediction) is replaced; a layer of another kind is left as it is (napari
    names the new one ``name [1]``)."""
    from napari.layers import Labels

    layer = next((each for each in viewer.layers if each.name == name), None)
    if isinstance(layer, Labels):
        if tuple(layer.data.shape) == tuple(shape):
            layer.colormap = prediction_colormap(num_classes)
            if data is not None:
                layer.data = data
            return layer
        viewer.layers.remove(layer)
    data = np.zeros(shape, np.uint8) if data is None else data
    return viewer.add_labels(data, name=name, colormap=prediction_colormap(num_classes), opacity=0.5, **transform)


def _replace_data(viewer: napari.Viewer, name: str, data: np.ndarray, kind: type[Layer]) -> Layer | None:
    """The layer called ``name`` now showing ``data``, if it is a ``kind`` layer of the same shape;
    otherwise None, and a mismatching layer of that name is removed."""
    if name not in viewer.layers:
        return None
    layer = viewer.layers[name]
    if isinstance(layer, kind) and tuple(layer.data.shape) == tuple(data.shape):
        layer.data = data
        return layer
    viewer.layers.remove(layer)
    return None


def instances_layer(viewer: napari.Viewer, name: str, instances: np.ndarray, transform: dict) -> Labels:
    """A Labels layer ``name`` showing ``instances`` (0 = background, 1..N), its data replaced on a re-run.
    New ones start hidden: the class prediction stays the layer to look at and correct."""
    from napari.layers import Labels

    layer = _replace_data(viewer, name, instances, Labels)
    return layer if layer is not None else viewer.add_labels(instances, name=name, visible=False, **transform)


def uncertainty_layer(viewer: napari.Viewer, name: str, uncertainty: np.ndarray, transform: dict) -> Image:
    """An Image layer ``name`` showing ``uncertainty`` in [0, 1], added on top of what is below it
    (hidden at first: the rings of Suggest point to where it is high)."""
    from napari.layers import Image

    layer = _replace_data(viewer, name, uncertainty, Image)
    if layer is None:
        layer = viewer.add_image(
            uncertainty, name=name, colormap="magma", blending="additive", opacity=0.7, visible=False, **transform
        )
    layer.contrast_limits = (0.0, 1.0)
    return layer


def suggestions_layer(viewer: napari.Viewer, name: str, centres: np.ndarray, transform: dict, size: float) -> Points:
    """A Points layer ``name`` of rings numbered 1..N around ``centres`` (N × ndim voxel indices)."""
    features = {"rank": np.arange(1, len(centres) + 1)}
    if name in viewer.layers and viewer.layers[name].ndim == centres.shape[1]:
        layer = viewer.layers[name]
        layer.data = centres
        layer.features = features
        layer.visible = True
        return layer
    if name in viewer.layers:
        viewer.layers.remove(name)
    above = [0.0] * (centres.shape[1] - 2) + [-0.75 * size, 0.0]  # the number just above its ring
    return viewer.add_points(
        centres,
        name=name,
        features=features,
        text={"string": "{rank}", "color": "cyan", "size": 14, "translation": above},
        symbol="ring",
        size=size,
        face_color="cyan",
        border_width=0,
        **transform,
    )


def write_region(layer: Labels, region: tuple[slice, ...], labels: np.ndarray) -> None:
    """Write predicted ``labels`` into ``region`` of ``layer`` (no undo history), then redraw."""
    layer.data[region] = labels
    layer.refresh()


def painted_pixels(atoms: list) -> Iterator[tuple[tuple[np.ndarray, ...], np.ndarray]]:
    """``(indices, values)`` of what a Labels ``paint`` event changed, whatever napari's atom format."""
    for atom in atoms:
        if hasattr(atom, "slice_key"):  # napari >= 0.6 masked paint atoms
            box_shape = tuple(s.stop - s.start for s in atom.slice_key)
            mask = atom.mask if atom.mask is not None else np.ones(box_shape, bool)
            local = np.nonzero(mask)
            indices = tuple(i + s.start for i, s in zip(local, atom.slice_key))
            yield indices, np.full(len(indices[0]), atom.new_value)
        else:
            indices, _, values = atom
            indices = tuple(np.asarray(i) for i in indices)
            yield indices, np.broadcast_to(np.asarray(values), indices[0].shape)


def visible_region(viewer: napari.Viewer, layer: Image, shape: tuple[int, ...], depth: int) -> tuple[slice, ...]:
    """The part of ``layer``'s full-resolution data on screen: the displayed field of view, and on
    the other axes the current plane with ``depth`` planes either side (a 3D model's context)."""
    ndim = len(shape)
    corners = np.asarray(layer.corner_pixels, float)
    if layer.multiscale:  # corners are in the current level's pixels
        corners = corners * np.asarray(layer.downsample_factors[layer.data_level])
    corners = corners[:, -ndim:]  # napari counts no RGB axis among a layer's dims
    current = np.asarray(layer.world_to_data(viewer.dims.point))[-ndim:]
    displayed = {axis - (viewer.dims.ndim - ndim) for axis in viewer.dims.displayed}
    region = []
    for axis, size in enumerate(shape):
        if axis in displayed:
            low, high = int(corners[0, axis]), int(corners[1, axis]) + 1
        else:
            plane = int(np.clip(np.round(current[axis]), 0, size - 1))
            low, high = plane - depth, plane + depth + 1
        low, high = max(0, low), min(size, high)
        region.append(slice(low, max(high, low + 1)))
    return tuple(region)
