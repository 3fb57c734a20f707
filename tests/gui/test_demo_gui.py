"""`napari-unet demo --gui` (what `make demo` runs with a display) opens napari training live."""

import napari

from napari_unet.cli import main


def test_demo_gui_opens_the_dock_and_starts_training(qtbot, monkeypatch):
    monkeypatch.setattr(napari, "run", lambda: None)
    assert main(["demo", "--gui"]) == 0
    viewer = napari.current_viewer()
    try:
        widget = next(w for w in viewer.window.dock_widgets.values() if type(w).__name__ == "UNetTrainerWidget")
        assert widget.session is not None
        qtbot.waitUntil(lambda: widget.session.previews_shown >= 1, timeout=60_000)
        assert [layer.name for layer in viewer.layers] == ["nuclei 2D", "nuclei 2D prediction", "nuclei 2D strokes"]
        assert viewer.layers.selection.active.name == "nuclei 2D strokes"
    finally:
        widget.shutdown()
        viewer.close()
