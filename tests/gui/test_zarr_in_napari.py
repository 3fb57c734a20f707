"""zarr in napari: the npe2 reader and writer, Export masks, and prediction of a dask/zarr-backed image."""

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr
from napari.layers import Image, Labels
from ome_zarr.writer import write_multiscales_metadata

from napari_unet._io import get_reader
from napari_unet.core.api import predict, train
from napari_unet.core.data.synthetic import synthetic_nuclei
from napari_unet.core.io.label_writer import write_label_image
from napari_unet.core.io.ngff import ngff_format, read_ome_image
from napari_unet.sample_data import nuclei_sample

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def model():
    """A small 2D model trained briefly on the bundled 2D sample."""
    sample = nuclei_sample(2)
    settings = {"steps": 30, "patch_size": (128, 128), "base_channels": 8, "depth": 3}
    return train(sample.image, sample.strokes, seed=0, device="cpu", **settings)


def write_ome_image(path: Path, image: np.ndarray, axes: str, scale: list, translation: list, version: str) -> Path:
    """An OME-Zarr image with two levels (the second halved in Y and X)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    datasets = []
    for level in range(2):
        step = 2**level
        data = image[..., ::step, ::step]
        group.create_array(str(level), data=data, chunks=tuple(min(s, 32) for s in data.shape))
        level_scale = [s * step if a in "yx" else s for s, a in zip(scale, axes)]
        transforms = [{"type": "scale", "scale": level_scale}, {"type": "translation", "translation": translation}]
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    axes_meta = [{"name": a, "type": "channel" if a == "c" else "space"} for a in axes]
    write_multiscales_metadata(group, datasets, fmt=ngff_format(version), axes=axes_meta)
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_reader_opens_an_ome_zarr_image_and_its_labels_lazily(make_napari_viewer, tmp_path, version):
    rng = np.random.default_rng(0)
    image = rng.random((2, 64, 96), np.float32)
    cells = rng.integers(0, 4, (64, 96), np.uint8)
    path = write_ome_image(tmp_path / "img.zarr", image, "cyx", [1.0, 0.5, 0.25], [0.0, 10.0, 20.0], version)
    write_label_image(cells, path / "labels" / "cells", spacing=(0.5, 0.25), translation=(10.0, 20.0))
    viewer = make_napari_viewer()

    layers = viewer.open(str(path), plugin="napari-unet")

    images = [layer for layer in layers if isinstance(layer, Image)]
    (labels,) = [layer for layer in layers if isinstance(layer, Labels)]
    assert len(images) == 2 and labels.name == "cells"  # one image layer per channel
    for channel, layer in enumerate(images):
        assert layer.multiscale and all(isinstance(level, da.Array) for level in layer.data)
        assert [level.shape for level in layer.data] == [(64, 96), (32, 48)]
        np.testing.assert_array_equal(np.asarray(layer.data[1]), image[channel, ::2, ::2])
    assert isinstance(labels.data, da.Array)
    np.testing.assert_array_equal(np.asarray(labels.data), cells)
    for layer in [*images, labels]:
        assert tuple(layer.scale) == (0.5, 0.25) and tuple(layer.translate) == (10.0, 20.0)


def test_reader_opens_label_images_and_plain_arrays_and_declines_the_rest(make_napari_viewer, tmp_path):
    masks = np.zeros((40, 30), np.uint8)
    masks[5:20, 5:15] = 2
    write_label_image(masks, tmp_path / "masks.zarr", spacing=(2.0, 1.0), class_names=["background", "nucleus"])
    zarr.create_array(str(tmp_path / "plain.zarr"), data=np.arange(12, dtype=np.uint16).reshape(3, 4))
    viewer = make_napari_viewer()

    (label_layer,) = viewer.open(str(tmp_path / "masks.zarr"), plugin="napari-unet")
    (plain_layer,) = viewer.open(str(tmp_path / "plain.zarr"), plugin="napari-unet")

    assert isinstance(label_layer, Labels) and isinstance(label_layer.data, da.Array)
    assert tuple(label_layer.scale) == (2.0, 1.0)
    np.testing.assert_array_equal(np.asarray(label_layer.data), masks)
    assert isinstance(plain_layer, Image) and isinstance(plain_layer.data, da.Array)
    (tmp_path / "folder.zarr").mkdir()
    (tmp_path / "image.tif").write_bytes(b"")
    for other in ("folder.zarr", "image.tif", "missing.zarr"):
        assert get_reader(str(tmp_path / other)) is None


def test_writer_saves_a_labels_layer_as_an_ome_zarr_label_image(make_napari_viewer, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    masks = np.random.default_rng(1).integers(0, 5, (6, 40, 50), np.uint16)
    viewer = make_napari_viewer()
    viewer.add_labels(masks, name="masks", scale=(3.0, 0.5, 0.5), translate=(1.0, 2.0, 3.0))
    out = tmp_path / "masks.zarr"

    assert viewer.layers["masks"].save(str(out), plugin="napari-unet") == [str(out)]

    (node, *_) = Reader(parse_url(str(out)))()
    assert any(isinstance(spec, Label) for spec in node.specs)
    np.testing.assert_array_equal(np.asarray(node.data[0]), masks)
    ome = read_ome_image(zarr.open_group(str(out), mode="r"))
    assert (ome.scale, ome.translation) == ([3.0, 0.5, 0.5], [1.0, 2.0, 3.0])


def test_export_masks_writes_the_prediction_and_refuses_bad_paths(trainer, qtbot, tmp_path, model):
    from ome_zarr_models.v04 import ImageLabel

    viewer, widget = trainer
    widget.model = model
    widget.predict_all()
    qtbot.waitUntil(lambda: widget.predict_worker is None, timeout=TIMEOUT_MS)
    prediction = viewer.layers["nuclei 2D prediction"]
    out = tmp_path / "masks.zarr"

    widget.export_masks(str(out))
    assert not widget.export_button.isEnabled() and not widget.predict_button.isEnabled()
    qtbot.waitUntil(lambda: widget.export_worker is None, timeout=TIMEOUT_MS)

    assert widget.message.text() == f"nuclei 2D prediction exported to {out}"
    assert widget.export_button.isEnabled()
    group = zarr.open_group(str(out), mode="r")
    ImageLabel.from_zarr(group)  # raises if not a valid NGFF label image
    assert {"label-value": 2, "class": "class 2"} in dict(group.attrs)["image-label"]["properties"]
    np.testing.assert_array_equal(np.asarray(group["0"]), prediction.data)
    colours = {c["label-value"]: c["rgba"] for c in dict(group.attrs)["image-label"]["colors"]}
    assert colours[1][3] == 0  # background transparent, as on the layer
    np.testing.assert_allclose(prediction.colormap.map(2), np.array(colours[2]) / 255, atol=1e-6)  # one palette

    (tmp_path / "folder.zarr").mkdir()
    (tmp_path / "folder.zarr" / "notes.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for bad, reason in (("masks.tif", "must be a .zarr path"), ("folder.zarr", "not a zarr store")):
        widget.export_masks(str(tmp_path / bad))
        qtbot.waitUntil(lambda: widget.export_worker is None, timeout=TIMEOUT_MS)
        message = widget.message.text()
        assert message.startswith("masks not exported:") and reason in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_export_masks_falls_back_to_the_selected_labels_layer(trainer, qtbot, tmp_path):
    viewer, widget = trainer
    strokes = viewer.layers["nuclei 2D strokes"]
    viewer.layers.selection.active = strokes
    widget.export_masks(str(tmp_path / "strokes.zarr"))
    qtbot.waitUntil(lambda: widget.export_worker is None, timeout=TIMEOUT_MS)
    assert "exported" in widget.message.text()
    group = zarr.open_group(str(tmp_path / "strokes.zarr"), mode="r")
    np.testing.assert_array_equal(np.asarray(group["0"]), strokes.data)
    assert "properties" not in dict(group.attrs)["image-label"]  # no class names on a layer the model did not make


def test_predict_all_on_a_dask_image_predicts_into_zarr_in_blocks(trainer, qtbot, model):
    viewer, widget = trainer
    image = synthetic_nuclei((400, 1700), seed=5).image  # wider than one 2D block
    layer = viewer.add_image(da.from_array(image, chunks=256), name="big", scale=(0.5, 0.5), translate=(3.0, 4.0))
    widget.image_combo.value = layer
    widget.model = model

    widget.predict_all()
    qtbot.waitUntil(lambda: widget.predict_worker is None, timeout=TIMEOUT_MS)

    prediction = viewer.layers["big prediction"]
    assert isinstance(prediction.data, zarr.Array), widget.message.text()
    assert tuple(prediction.scale) == (0.5, 0.5) and tuple(prediction.translate) == (3.0, 4.0)
    scratch = widget._scratch()
    assert scratch in Path(prediction.data.store.root).parents
    expected = predict(model, image, device="cpu").labels
    assert len(np.unique(expected)) == 2
    assert (np.asarray(prediction.data) == expected).mean() >= 0.99
    widget.shutdown()  # closing the dock keeps the folder: the layer still reads (and paints) there
    assert scratch.exists() and np.asarray(prediction.data).max() >= 1
