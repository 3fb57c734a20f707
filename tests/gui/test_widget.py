"""The trainer dock in a real napari viewer: live previews, strokes and corrections, stop, layer removal."""

import numpy as np
import pytest

from napari_unet._widget import UNetTrainerWidget

TIMEOUT_MS = 60_000
STOP_TIMEOUT_MS = 30_000  # behaviour, not speed: how fast Stop is, is measured in benchmarks/gui_responsiveness.py


def _start(qtbot, widget):
    widget.train()
    assert widget.session is not None, widget.message.text()
    return widget.session


def _stop(qtbot, widget):
    widget.stop()
    qtbot.waitUntil(lambda: widget.session is None, timeout=STOP_TIMEOUT_MS)


def test_dock_opens_through_the_manifest(trainer):
    viewer, widget = trainer
    assert isinstance(widget, UNetTrainerWidget)
    assert widget.image_combo.value is viewer.layers["nuclei 2D"]
    assert widget.strokes_combo.value is viewer.layers["nuclei 2D strokes"]
    assert not widget.predict_button.isEnabled() and widget.train_button.isEnabled()


def test_training_streams_previews_and_never_touches_strokes(trainer, qtbot):
    viewer, widget = trainer
    strokes = viewer.layers["nuclei 2D strokes"]
    before = strokes.data.copy()
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: session.previews_shown >= 3, timeout=TIMEOUT_MS)
    prediction = viewer.layers["nuclei 2D prediction"]
    assert prediction.data.shape == strokes.data.shape
    assert tuple(prediction.scale) == tuple(viewer.layers["nuclei 2D"].scale)
    assert set(np.unique(prediction.data)) <= {0, 1, 2} and (prediction.data == 2).any()
    assert "step" in widget.status.text() and len(widget.loss_plot.losses) > 0
    assert "Mask on screen: " in widget.status.text()  # the candidate on screen (pixel classifier, U-Net or blend)
    _stop(qtbot, widget)
    assert np.array_equal(strokes.data, before)
    assert widget.model is not None and widget.predict_button.isEnabled()


@pytest.mark.parametrize("checked, share", [(False, 0.0), (True, 1.0)])
def test_the_other_images_box_turns_on_intensity_augmentation(trainer, qtbot, checked, share):
    _, widget = trainer
    widget.other_images_check.setChecked(checked)
    _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    _stop(qtbot, widget)
    assert widget.model.config.history[-1]["settings"]["intensity_probability"] == share


def test_stop_ends_the_worker(trainer, qtbot):
    _, widget = trainer
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(session.worker.finished, timeout=STOP_TIMEOUT_MS):
        widget.stop()
    assert widget.session is None and widget.model is not None


def test_stop_before_the_first_mask_ends_the_run_and_trains_nothing(trainer, qtbot):
    viewer, widget = trainer
    session = _start(qtbot, widget)
    with qtbot.waitSignal(session.worker.finished, timeout=STOP_TIMEOUT_MS):
        widget.stop()  # the worker is still reading the image or computing the first features
    assert widget.session is None and widget.model is None
    assert "before the first mask" in widget.message.text()
    assert "nuclei 2D prediction" not in viewer.layers


@pytest.mark.parametrize("kind", ["labels", "image"])
def test_a_stop_before_the_first_mask_keeps_the_users_layer_of_that_name(trainer, qtbot, kind):
    """The prediction layer is made at Train and removed if nothing is shown: only when the run made it."""
    viewer, widget = trainer
    shape = viewer.layers["nuclei 2D"].data.shape
    if kind == "labels":  # the right shape: reused, so kept
        existing = viewer.add_labels(np.ones(shape, np.uint8), name="nuclei 2D prediction")
    else:  # another kind of layer: left alone, a new Labels layer beside it
        existing = viewer.add_image(np.zeros(shape), name="nuclei 2D prediction")
    session = _start(qtbot, widget)
    with qtbot.waitSignal(session.worker.finished, timeout=STOP_TIMEOUT_MS):
        widget.stop()
    assert widget.model is None and "before the first mask" in widget.message.text()
    assert [layer for layer in viewer.layers if "prediction" in layer.name] == [existing]
    assert existing.data.min() == 1 if kind == "labels" else existing.data.max() == 0


def test_finished_training_runs_are_freed_at_once(trainer, qtbot):
    """Each Train → Stop leaves nothing behind but the model, and not as garbage in reference cycles that
    only Python's full collection (0.3 s with napari loaded) would free: memory stays flat over a session."""
    import gc
    import weakref

    _, widget = trainer
    jobs = []
    gc.disable()
    try:
        for _ in range(2):
            session = _start(qtbot, widget)
            qtbot.waitUntil(lambda s=session: s.previews_shown >= 1, timeout=TIMEOUT_MS)
            jobs.append(weakref.ref(session.job))
            _stop(qtbot, widget)
            qtbot.waitUntil(lambda: widget.final_prediction is None, timeout=TIMEOUT_MS)
        del session
        assert jobs[0]() is None and jobs[1]() is None
    finally:
        gc.enable()


def test_strokes_painted_during_training_reach_the_trainer(trainer, qtbot):
    viewer, widget = trainer
    strokes = viewer.layers["nuclei 2D strokes"]
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    strokes.paint((5, 5), 3)  # a new class, painted with the brush while training runs
    qtbot.waitUntil(lambda: not session.strokes_pending, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 10, timeout=TIMEOUT_MS)
    _stop(qtbot, widget)
    assert widget.model.num_classes == 3  # the trainer saw class 3 and grew its output layer
    assert widget.model.config.history[-1]["painted_voxels"]["3"] > 0


def test_undo_during_training_reaches_the_trainer(trainer, qtbot):
    viewer, widget = trainer
    strokes = viewer.layers["nuclei 2D strokes"]
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    strokes.brush_size = 5
    strokes.paint((5, 5), 3)  # a new class...
    job = session.job  # every refit sent has been reported on (a Stop would cut a refit short)
    qtbot.waitUntil(lambda: not session.strokes_pending and job.refits_reported == job.refits_sent, timeout=TIMEOUT_MS)
    strokes.undo()  # ...taken back: napari redraws the layer without a paint event
    assert not (strokes.data == 3).any()
    sent = job.refits_sent
    qtbot.waitUntil(lambda: job.refits_sent > sent, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not session.strokes_pending and job.refits_reported == job.refits_sent, timeout=TIMEOUT_MS)
    _stop(qtbot, widget)
    assert widget.model.config.history[-1]["painted_voxels"].get("3", 0) == 0


def test_corrections_on_the_prediction_become_strokes(trainer, qtbot):
    viewer, widget = trainer
    strokes = viewer.layers["nuclei 2D strokes"]
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: session.previews_shown >= 1, timeout=TIMEOUT_MS)
    prediction = viewer.layers["nuclei 2D prediction"]
    candidates = np.argwhere((prediction.data == 2) & (strokes.data == 0))
    y, x = candidates[len(candidates) // 2]
    prediction.brush_size = 1
    prediction.paint((y, x), 1)  # the user marks a predicted nucleus pixel as background
    assert strokes.data[y, x] == 1 and session.strokes_pending
    painted = strokes.data.copy()
    y2, x2 = np.argwhere(strokes.data == 2)[0]
    prediction.paint((y2, x2), 0)  # erasing on the prediction does not erase strokes
    assert np.array_equal(strokes.data, painted)
    _stop(qtbot, widget)
    assert widget.model.config.history[-1]["painted_voxels"]["1"] > int((strokes.data == 1).sum()) - 20


@pytest.mark.parametrize("removed", ["nuclei 2D prediction", "nuclei 2D strokes", "nuclei 2D"])
def test_deleting_a_layer_mid_training_does_not_crash(trainer, qtbot, removed):
    viewer, widget = trainer
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: session.previews_shown >= 1, timeout=TIMEOUT_MS)
    viewer.layers.remove(removed)
    shown = session.previews_shown
    qtbot.waitUntil(lambda: session.previews_shown >= shown + 2, timeout=TIMEOUT_MS)
    assert "nuclei 2D prediction" in viewer.layers  # re-created if it was the one removed
    _stop(qtbot, widget)
    assert widget.model is not None


def test_predict_all_and_model_round_trip(trainer, qtbot, tmp_path):
    viewer, widget = trainer
    _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 5, timeout=TIMEOUT_MS)
    _stop(qtbot, widget)
    widget.save_model(str(tmp_path / "model"))
    assert (tmp_path / "model" / "config.json").exists()
    assert "| nuclei 2D | [1, 512, 512] |" in (tmp_path / "model" / "MODEL_CARD.md").read_text()  # the layer
    viewer.layers.remove("nuclei 2D prediction") if "nuclei 2D prediction" in viewer.layers else None
    widget.model = None
    widget.load_model(str(tmp_path / "model"))
    assert widget.predict_button.isEnabled()
    widget.predict_all()
    qtbot.waitUntil(lambda: widget.predict_worker is None, timeout=TIMEOUT_MS)
    labels = viewer.layers["nuclei 2D prediction"].data
    assert labels.shape == (512, 512) and set(np.unique(labels)) <= {1, 2}
    widget.load_model(str(tmp_path / "missing"))
    assert "not found" in widget.message.text() and "pretrained name" in widget.message.text()


def test_new_strokes_layer_matches_the_image(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((6, 40, 50), np.float32), name="vol", scale=(3, 1, 1), translate=(5, 0, 0))
    widget = UNetTrainerWidget(viewer)
    widget._new_strokes()
    layer = viewer.layers["vol strokes"]
    assert layer.data.shape == (6, 40, 50) and tuple(layer.scale) == (3, 1, 1) and tuple(layer.translate) == (5, 0, 0)
    assert widget.strokes_combo.value is layer
    widget.train()  # the values are checked in the worker: the message comes a moment later
    qtbot.waitUntil(lambda: widget.session is None, timeout=TIMEOUT_MS)
    assert "nothing is painted" in widget.message.text()


def test_visible_region_follows_the_current_plane(make_napari_viewer):
    from napari_unet._layers import visible_region

    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((30, 64, 80), np.float32))
    viewer.dims.set_current_step(0, 17)
    region = visible_region(viewer, layer, (30, 64, 80), depth=2)
    assert region[0] == slice(15, 20)
    assert region[1].stop == 64 and region[2].stop == 80  # the whole plane is on screen after reset_view


def test_pause_then_stop_still_finishes(trainer, qtbot):
    _, widget = trainer
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    widget.toggle_pause()
    assert widget.pause_button.text() == "Resume"
    widget.stop()  # before or after the worker has actually paused: it must still finish
    qtbot.waitUntil(lambda: widget.session is None, timeout=STOP_TIMEOUT_MS)
    assert widget.model is not None and session.worker.is_paused is False


@pytest.mark.parametrize(
    ("module", "function", "message"),
    [
        ("napari_unet.core.train.training", "sparse_loss", "simulated failure during a step"),
        ("napari_unet.core.api", "prepare_model", "simulated failure before the first step"),
    ],
)
def test_a_training_failure_reaches_the_dock(trainer, qtbot, monkeypatch, module, function, message):
    def broken(*args, **kwargs):
        raise RuntimeError(message)  # what torch raises on out-of-memory or a shape error

    monkeypatch.setattr(f"{module}.{function}", broken)
    _, widget = trainer
    _start(qtbot, widget)
    qtbot.waitUntil(lambda: widget.session is None, timeout=TIMEOUT_MS)
    assert message in widget.message.text() and widget.train_button.isEnabled()


def test_closing_the_viewer_mid_training_ends_the_worker(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei_2d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net trainer")
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(session.worker.finished, timeout=STOP_TIMEOUT_MS):
        viewer.close()


def test_3d_sample_trains_a_3d_model_with_a_first_preview_of_the_whole_volume(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei_3d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net trainer")
    viewer.dims.set_current_step(0, 30)
    try:
        session = _start(qtbot, widget)
        qtbot.waitUntil(lambda: session.previews_shown >= 1, timeout=TIMEOUT_MS)
        prediction = viewer.layers["nuclei 3D prediction"]
        assert tuple(prediction.scale) == (2.0, 1.0, 1.0)
        written = np.flatnonzero(prediction.data.reshape(48, -1).any(1))
        assert len(written) == 48  # first, at once: the pixel classifier's mask of the whole volume
        _stop(qtbot, widget)
        assert widget.model.dim == 3
    finally:
        widget.shutdown()


def test_closing_the_dock_mid_training_ends_the_worker(trainer, qtbot):
    viewer, widget = trainer
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    dock = next(d for d in viewer.window.dock_widgets.values() if d is widget)
    with qtbot.waitSignal(session.worker.finished, timeout=STOP_TIMEOUT_MS):
        viewer.window.remove_dock_widget(dock)
    assert widget.session is None


def test_pause_then_resume_keeps_training(trainer, qtbot):
    _, widget = trainer
    _start(qtbot, widget)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 2, timeout=TIMEOUT_MS)
    widget.toggle_pause()
    widget.toggle_pause()  # resumed before the worker had even paused
    assert widget.pause_button.text() == "Pause"
    steps = len(widget.loss_plot.losses)
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= steps + 5, timeout=TIMEOUT_MS)
    _stop(qtbot, widget)


@pytest.mark.parametrize("renamed", ["nuclei 2D prediction", "nuclei 2D strokes", "nuclei 2D"])
def test_renaming_a_layer_mid_training_does_not_crash(trainer, qtbot, renamed):
    viewer, widget = trainer
    strokes_before = viewer.layers["nuclei 2D strokes"].data.copy()
    session = _start(qtbot, widget)
    qtbot.waitUntil(lambda: session.previews_shown >= 1, timeout=TIMEOUT_MS)
    viewer.layers[renamed].name = "renamed by the user"
    shown = session.previews_shown
    qtbot.waitUntil(lambda: session.previews_shown >= shown + 2, timeout=TIMEOUT_MS)
    _stop(qtbot, widget)
    assert widget.model is not None
    strokes = viewer.layers["renamed by the user" if renamed.endswith("strokes") else "nuclei 2D strokes"]
    np.testing.assert_array_equal(strokes.data, strokes_before)  # a prediction never lands in the strokes
