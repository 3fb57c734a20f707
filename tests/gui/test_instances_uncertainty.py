"""Predict all also shows instances and uncertainty; "Where to paint next" lists the most uncertain regions."""

import re

import dask.array as da
import numpy as np
import pytest
import torch
from qtpy.QtCore import Qt

from napari_unet._widget import UNetTrainerWidget
from napari_unet.core.api import predict, prepare_model, train
from napari_unet.core.instances.postprocess import certainty, instances_from_labels
from napari_unet.sample_data import nuclei_sample

TIMEOUT_MS = 60_000
SCALE, TRANSLATE = (0.5, 0.5), (10.0, 20.0)


@pytest.fixture(scope="module")
def model_2d():
    """A small 2D model trained briefly on the bundled 2D sample."""
    sample = nuclei_sample(2)
    settings = {"steps": 30, "patch_size": (128, 128), "base_channels": 8, "depth": 3}
    return train(sample.image, sample.strokes, seed=0, device="cpu", **settings)


@pytest.fixture
def dock(make_napari_viewer, model_2d):
    """A viewer with a 256² crop of the 2D sample (scaled and shifted), its strokes, and the dock holding a model."""
    sample = nuclei_sample(2)
    viewer = make_napari_viewer()
    viewer.add_image(sample.image[:256, :256].copy(), name="crop", scale=SCALE, translate=TRANSLATE)
    viewer.add_labels(sample.strokes[:256, :256].copy(), name="crop strokes", scale=SCALE, translate=TRANSLATE)
    widget = UNetTrainerWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.model = model_2d
    yield viewer, widget
    widget.shutdown()


def predict_all(qtbot, widget) -> None:
    widget.predict_all()
    qtbot.waitUntil(lambda: widget.predict_worker is None, timeout=TIMEOUT_MS)


def click(qtbot, widget, row: int) -> None:
    listing = widget.suggestions.list
    rect = listing.visualItemRect(listing.item(row))
    qtbot.mouseClick(listing.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_predict_all_adds_instances_and_uncertainty_on_the_image_grid(dock, qtbot):
    viewer, widget = dock
    assert not widget.suggestions.suggest_button.isEnabled()
    predict_all(qtbot, widget)

    prediction = viewer.layers["crop prediction"].data
    instances = viewer.layers["crop instances"]
    uncertainty = viewer.layers["crop uncertainty"]
    assert instances.data.shape == uncertainty.data.shape == (256, 256)
    assert instances.data.dtype == np.int32 and uncertainty.data.dtype == np.float32
    count = int(instances.data.max())
    assert count >= 3 and set(np.unique(instances.data)) == set(range(count + 1))  # 0 = background, 1..N
    assert (prediction[instances.data > 0] >= 2).all()
    expected = predict(widget.model, viewer.layers["crop"].data, probabilities=True, device="cpu")
    np.testing.assert_array_equal(expected.labels, prediction)
    sure = certainty(expected.probabilities)  # objects split where the model is unsure, as --instances does
    np.testing.assert_array_equal(instances.data, instances_from_labels(prediction, SCALE, certainty=sure))
    assert uncertainty.data.min() >= 0.0 and 0.1 < uncertainty.data.max() <= 1.0
    assert uncertainty.colormap.name == "magma" and uncertainty.blending == "additive"
    assert tuple(uncertainty.contrast_limits) == (0.0, 1.0)
    for layer in (instances, uncertainty):
        assert tuple(layer.scale) == SCALE and tuple(layer.translate) == TRANSLATE
    assert f"{count} objects" in widget.message.text(), widget.message.text()
    assert widget.suggestions.suggest_button.isEnabled()

    predict_all(qtbot, widget)  # a re-run replaces the data of the same layers
    names = [layer.name for layer in viewer.layers]
    assert names.count("crop instances") == 1 and names.count("crop uncertainty") == 1
    assert viewer.layers["crop instances"] is instances and viewer.layers["crop uncertainty"] is uncertainty


def test_suggest_lists_regions_and_a_click_takes_the_user_there(dock, qtbot):
    viewer, widget = dock
    strokes = viewer.layers["crop strokes"]
    predict_all(qtbot, widget)
    widget.suggestions.suggest_button.click()

    listing = widget.suggestions.list
    lines = [listing.item(row).text() for row in range(listing.count())]
    assert len(lines) == 5, widget.message.text()
    parsed = [re.fullmatch(r"(\d)\. \((\d+), (\d+)\) uncertainty (\d\.\d\d)", line) for line in lines]
    assert all(parsed), lines
    assert [int(m[1]) for m in parsed] == [1, 2, 3, 4, 5]
    scores = [float(m[4]) for m in parsed]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    centres = np.array([[int(m[2]), int(m[3])] for m in parsed], float)
    points = viewer.layers["crop paint here"]
    np.testing.assert_array_equal(points.data, centres)
    assert tuple(points.scale) == SCALE and tuple(points.translate) == TRANSLATE and points.visible
    assert points.symbol[0] == "ring"

    viewer.layers.selection.active = viewer.layers["crop"]
    click(qtbot, widget, 2)
    expected = centres[2] * SCALE + TRANSLATE
    np.testing.assert_allclose(viewer.camera.center[-2:], expected)
    assert viewer.layers.selection.active is strokes and strokes.mode == "paint"

    y, x = centres[0].astype(int)
    strokes.data[y - 24 : y + 24, x - 24 : x + 24] = 1  # the user paints the first suggestion
    widget.suggestions.suggest_button.click()
    again = np.array(viewer.layers["crop paint here"].data)
    assert len(again) == 5 and not (np.abs(again - centres[0]).max(1) < 24).any()  # it is not suggested again
    assert [layer.name for layer in viewer.layers].count("crop paint here") == 1


def test_3d_suggestions_move_to_their_plane(make_napari_viewer, qtbot):
    sample = nuclei_sample(3)
    image, strokes = sample.image[16:32, :64, :64].copy(), sample.strokes[16:32, :64, :64].copy()
    scale, translate = (2.0, 1.0, 1.0), (4.0, 0.0, 0.0)
    torch.manual_seed(0)
    model, _ = prepare_model(image[None], strokes, spacing=scale, base_channels=8, depth=3)  # untrained: unsure
    viewer = make_napari_viewer()
    viewer.add_image(image, name="vol", scale=scale, translate=translate)
    viewer.add_labels(strokes, name="vol strokes", scale=scale, translate=translate)
    widget = UNetTrainerWidget(viewer)
    widget.model = model
    try:
        predict_all(qtbot, widget)
        assert viewer.layers["vol instances"].data.shape == (16, 64, 64)
        uncertainty = viewer.layers["vol uncertainty"]
        assert uncertainty.data.shape == (16, 64, 64) and tuple(uncertainty.scale) == scale

        widget.suggestions.suggest()
        listing = widget.suggestions.list
        assert listing.count() >= 1
        found = re.fullmatch(r"1\. \((\d+), (\d+), (\d+)\) uncertainty \d\.\d\d", listing.item(0).text())
        assert found, listing.item(0).text()
        z, y, x = (int(v) for v in found.groups())
        assert viewer.layers["vol paint here"].data.shape[1] == 3

        viewer.dims.set_current_step(0, 0 if z > 7 else 15)
        click(qtbot, widget, 0)
        assert viewer.dims.current_step[0] == z
        np.testing.assert_allclose(viewer.camera.center[-2:], (y * scale[1], x * scale[2]))
        assert viewer.layers.selection.active is viewer.layers["vol strokes"]
    finally:
        widget.shutdown()


def test_zarr_backed_images_get_no_instances_or_uncertainty(dock, qtbot):
    viewer, widget = dock
    image = nuclei_sample(2).image[:256, :256]
    layer = viewer.add_image(da.from_array(image, chunks=128), name="lazy", scale=SCALE)
    widget.image_combo.value = layer
    predict_all(qtbot, widget)
    assert "lazy prediction" in viewer.layers, widget.message.text()
    assert "lazy instances" not in viewer.layers and "lazy uncertainty" not in viewer.layers
    assert "no instances or uncertainty" in widget.message.text()
    assert not widget.suggestions.suggest_button.isEnabled()
