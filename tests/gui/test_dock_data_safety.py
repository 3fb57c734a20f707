"""The dock's Save / Export actions follow the ownership rule: never onto a file a layer was opened from,
nor over another tool's files; the refusal is shown on the message line and nothing changes."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import tifffile

TIMEOUT_MS = 60_000


def _hashes(folder) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_saves_and_exports_never_replace_opened_files_or_other_tools_files(trainer, qtbot, tmp_path, nuclei_2d):
    from napari_unet.core.api import train
    from napari_unet.core.io.io import write_array

    viewer, widget = trainer
    write_array(tmp_path / "scan.zarr", nuclei_2d.image)  # an image on disk, opened as a layer
    (opened,) = viewer.open(str(tmp_path / "scan.zarr"), plugin="napari-unet")
    strokes = viewer.add_labels(nuclei_2d.strokes, name="scan strokes")
    widget.image_combo.value, widget.strokes_combo.value = opened, strokes
    viewer.layers.selection.active = strokes  # what Export masks writes
    widget.model = train(nuclei_2d.image, nuclei_2d.strokes, steps=1, base_channels=4, depth=2, device="cpu")
    tifffile.imwrite(tmp_path / "other.zip", np.zeros((4, 4), np.uint8))  # another tool's file
    before = _hashes(tmp_path)

    widget.save_model(str(tmp_path))  # the folder holding the opened image
    assert widget.message.text().startswith("model not saved:") and "holds the input" in widget.message.text()
    for action, path, failure in [
        (widget.save_session, tmp_path / "scan.zarr", "session not saved: .* is the input"),
        (widget.export_masks, tmp_path / "scan.zarr", "masks not exported: .* is the input"),
        (widget.export_bioimageio, tmp_path / "other.zip", "package not exported: .* not written by napari-unet"),
    ]:
        action(str(path))
        qtbot.waitUntil(lambda: widget.export_worker is None, timeout=TIMEOUT_MS)
        assert re.match(failure, widget.message.text()), widget.message.text()
    assert _hashes(tmp_path) == before
