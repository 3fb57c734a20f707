"""The live loop on a real image (a 2018 Data Science Bowl fluorescence image, tests/data/dsb2018): the
first mask is as good as a random forest on the same strokes, painting reaches the trainer, and after
Stop the mask on screen is the final model's. Waits are generous: speed is measured in
benchmarks/gui_responsiveness.py, not here."""

from pathlib import Path

import numpy as np
import pytest

from napari_unet._widget import UNetTrainerWidget
from napari_unet.core.instances.metrics import foreground_iou

DATA = Path(__file__).parents[1] / "data" / "dsb2018"
TIMEOUT_MS = 120_000


def _forest_iou(image: np.ndarray, strokes: np.ndarray, labels: np.ndarray) -> float:
    """Foreground IoU of scikit-image's random forest on the same strokes (the ilastik recipe)."""
    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    features = multiscale_basic_features(image.astype(np.float32), sigma_min=1, sigma_max=16)
    forest = fit_segmenter(strokes, features, RandomForestClassifier(100, max_depth=10, random_state=0))
    return foreground_iou(predict_segmenter(features, forest) == 2, labels > 0)


@pytest.fixture
def real_dock(make_napari_viewer):
    with np.load(DATA / "05040e2e959c.npz") as data:
        image, labels, strokes = data["image"], data["labels"], data["strokes"]
    viewer = make_napari_viewer()
    image_layer = viewer.add_image(image, name="fluo")
    strokes_layer = viewer.add_labels(strokes.copy(), name="fluo strokes")
    widget = UNetTrainerWidget(viewer)
    widget.image_combo.value, widget.strokes_combo.value = image_layer, strokes_layer
    yield viewer, widget, labels
    widget.shutdown()


def _mask_iou(viewer, labels: np.ndarray) -> float:
    return foreground_iou(viewer.layers["fluo prediction"].data == 2, labels > 0)


def test_the_first_masks_are_as_good_as_the_forest(real_dock, qtbot):
    viewer, widget, labels = real_dock
    forest = _forest_iou(viewer.layers["fluo"].data, viewer.layers["fluo strokes"].data, labels)
    widget.train()
    session = widget.session
    ious = []

    def record(report) -> None:  # connected after the session's own slot: the preview is on screen
        if report.preview is not None:
            ious.append(_mask_iou(viewer, labels))

    session.worker.yielded.connect(record)
    qtbot.waitUntil(lambda: len(ious) >= 3, timeout=TIMEOUT_MS)
    widget.stop()
    qtbot.waitUntil(lambda: widget.session is None, timeout=TIMEOUT_MS)
    assert min(ious) >= forest - 0.02, (ious, forest)
    status = widget.status.text()  # the model on screen, and how it is checked against the strokes
    if "Mask on screen: the pretrained model as it is" in status:  # it gets every stroke right
        assert "paint where it is wrong" in status
    else:
        assert "Mask on screen: " in status and "right on strokes kept back" in status


def test_stop_leaves_the_final_models_mask(real_dock, qtbot):
    from napari_unet.core.api import predict

    viewer, widget, _ = real_dock
    widget.train()
    session = widget.session
    qtbot.waitUntil(lambda: session.previews_shown >= 2, timeout=TIMEOUT_MS)
    widget.stop()
    qtbot.waitUntil(lambda: widget.session is None and widget.final_prediction is None, timeout=TIMEOUT_MS)
    assert session.final.regions_done >= 1  # the whole image is on screen: one region
    expected = predict(widget.model, viewer.layers["fluo"].data).labels
    np.testing.assert_array_equal(viewer.layers["fluo prediction"].data, expected)


def test_painting_during_training_reaches_the_trainer(real_dock, qtbot):
    viewer, widget, labels = real_dock
    strokes = viewer.layers["fluo strokes"]
    painted_before = int((strokes.data == 2).sum())
    widget.train()
    session = widget.session
    qtbot.waitUntil(lambda: session.previews_shown >= 1, timeout=TIMEOUT_MS)
    strokes.brush_size = 3
    for y, x in np.argwhere((labels > 0) & (strokes.data == 0))[::97][:10]:
        strokes.paint((int(y), int(x)), 2)  # dabs on nuclei through the layer, as the brush does
    job = session.job  # every refit sent has been reported on (a Stop would cut a refit short)
    qtbot.waitUntil(lambda: not session.strokes_pending and job.refits_reported == job.refits_sent, timeout=TIMEOUT_MS)
    widget.stop()
    qtbot.waitUntil(lambda: widget.session is None, timeout=TIMEOUT_MS)
    assert widget.model.config.history[-1]["painted_voxels"]["2"] > painted_before
    assert "wait for the next Train" not in widget.message.text()


def test_strokes_painted_just_before_stop_stay_and_the_dock_says_they_wait(real_dock, qtbot):
    """Stop does not wait for a refit on the last dabs: they stay in the layer for the next Train."""
    viewer, widget, labels = real_dock
    strokes = viewer.layers["fluo strokes"]
    widget.train()
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    strokes.brush_size = 3
    for y, x in np.argwhere((labels > 0) & (strokes.data == 0))[::97][:10]:
        strokes.paint((int(y), int(x)), 2)
    painted = int((strokes.data == 2).sum())
    widget.stop()
    qtbot.waitUntil(lambda: widget.session is None, timeout=TIMEOUT_MS)
    assert int((strokes.data == 2).sum()) == painted  # nothing lost
    assert widget.model.config.history[-1]["painted_voxels"]["2"] < painted
    assert "the strokes painted last (or outside the trained region) wait for the next Train" in widget.message.text()
