"""Save session / Open session in the dock: image, strokes and model come back as they were."""

from __future__ import annotations

import numpy as np

TIMEOUT_MS = 60_000


def test_save_then_open_a_session_restores_layers_and_model(trainer, qtbot, tmp_path, nuclei_2d):
    from napari_unet.core.api import train

    viewer, widget = trainer
    strokes = viewer.layers["nuclei 2D strokes"]
    strokes.data[5:9, 5:30] = 1  # a stroke painted by hand
    image_data = np.asarray(viewer.layers["nuclei 2D"].data).copy()
    strokes_data = strokes.data.copy()
    widget.model = train(nuclei_2d.image, nuclei_2d.strokes, steps=2, base_channels=4, depth=2, device="cpu")

    widget.save_session(str(tmp_path / "today.zarr"))
    assert not widget.save_session_button.isEnabled()
    qtbot.waitUntil(lambda: widget.export_worker is None, timeout=TIMEOUT_MS)
    assert widget.message.text() == f"session saved to {tmp_path / 'today.zarr'}"

    viewer.layers.clear()
    widget.model = None
    widget.open_session(str(tmp_path / "today.zarr"))
    qtbot.waitUntil(lambda: widget.export_worker is None, timeout=TIMEOUT_MS)
    assert "opened" in widget.message.text()
    np.testing.assert_array_equal(viewer.layers["nuclei 2D"].data, image_data)
    np.testing.assert_array_equal(viewer.layers["nuclei 2D strokes"].data, strokes_data)
    assert widget.image_combo.value is viewer.layers["nuclei 2D"]
    assert widget.strokes_combo.value is viewer.layers["nuclei 2D strokes"]
    assert widget.model is not None and widget.predict_button.isEnabled()


def test_opening_something_else_says_so(trainer, qtbot, tmp_path):
    viewer, widget = trainer
    widget.open_session(str(tmp_path / "nothing.zarr"))
    qtbot.waitUntil(lambda: widget.export_worker is None, timeout=TIMEOUT_MS)
    assert widget.message.text().startswith("session not opened:") and "not a napari-unet session" in (
        widget.message.text()
    )
    assert [layer.name for layer in viewer.layers] == ["nuclei 2D", "nuclei 2D strokes"]
