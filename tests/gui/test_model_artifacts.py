"""The dock's pretrained starting points and bioimage.io export, in a real viewer."""

from __future__ import annotations

import zipfile

TIMEOUT_MS = 120_000


def test_choosing_a_pretrained_model_makes_it_the_current_one(trainer, qtbot):
    viewer, widget = trainer
    assert widget.model is None and not widget.predict_button.isEnabled()
    widget.pretrained_combo.value = "nuclei-2d"
    assert widget.model is not None and widget.model.dim == 2
    assert widget.model.config.class_names == ["background", "nucleus"]
    assert widget.predict_button.isEnabled() and widget.bioimageio_button.isEnabled()
    assert "nuclei-2d" in widget.message.text()

    widget.predict_all()  # a first mask before any training
    qtbot.waitUntil(lambda: widget.predict_worker is None, timeout=TIMEOUT_MS)
    prediction = viewer.layers["nuclei 2D prediction"].data
    assert 0.1 < (prediction == 2).mean() < 0.9


def test_loading_a_model_directory_resets_the_pretrained_choice(trainer, tmp_path, nuclei_2d):
    from napari_unet.core.api import train

    _, widget = trainer
    widget.pretrained_combo.value = "nuclei-2d"
    train(nuclei_2d.image, nuclei_2d.strokes, steps=1, base_channels=4, depth=2, device="cpu").save(tmp_path / "m")
    widget.load_model(str(tmp_path / "m"))
    assert widget.pretrained_combo.value == "—"
    assert widget.model.config.network.base_channels == 4  # the loaded one, not the pretrained


def test_export_bioimageio_button_writes_a_tested_package(trainer, qtbot, tmp_path, nuclei_2d):
    from napari_unet.core.api import train

    _, widget = trainer
    assert not widget.bioimageio_button.isEnabled()  # no model yet
    widget.model = train(nuclei_2d.image, nuclei_2d.strokes, steps=2, base_channels=4, depth=2, device="cpu")
    widget.export_bioimageio(str(tmp_path / "dock.zip"))
    qtbot.waitUntil(lambda: widget.export_worker is None, timeout=TIMEOUT_MS)
    assert widget.message.text() == f"bioimage.io package written to {tmp_path / 'dock.zip'} (passed its test)"
    with zipfile.ZipFile(tmp_path / "dock.zip") as package:
        assert "rdf.yaml" in package.namelist()


def test_asking_for_another_kind_of_network_says_it_starts_afresh(trainer, qtbot):
    _, widget = trainer
    widget.pretrained_combo.value = "nuclei-3d"
    widget.model_combo.value = "2D (plane by plane)"
    widget.train()
    assert "a new 2D network: the current model is 3D" in widget.message.text()
    assert widget.pretrained_combo.value == "—"
    qtbot.waitUntil(lambda: len(widget.loss_plot.losses) >= 1, timeout=TIMEOUT_MS)  # a Stop before the first
    widget.stop()  # mask would train nothing (tests/gui/test_widget.py)
    qtbot.waitUntil(lambda: widget.session is None, timeout=TIMEOUT_MS)
    assert widget.model.dim == 2
