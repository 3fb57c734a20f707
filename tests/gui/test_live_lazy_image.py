"""Training in the dock on a zarr volume opened lazily: the worker reads the strokes' box plus context,
never the whole volume, and previews and the final mask land where the strokes are."""

import logging

import numpy as np
import zarr
from zarr.storage import LocalStore, LoggingStore

from napari_unet._inputs import training_box
from napari_unet._widget import UNetTrainerWidget
from napari_unet.core.data.synthetic import nuclei_sample

TIMEOUT_MS = 120_000
CHUNKS = (8, 64, 64)


def test_a_zarr_volume_trains_on_the_strokes_box_and_is_never_read_whole(make_napari_viewer, qtbot, tmp_path, caplog):
    sample = nuclei_sample(3)
    volume = np.tile(sample.image, (1, 2, 2))  # 48 × 256 × 256, 6 × 4 × 4 chunks
    zarr.open_array(str(tmp_path / "v.zarr"), mode="w", shape=volume.shape, chunks=CHUNKS, dtype=volume.dtype)[:] = (
        volume
    )
    store = LoggingStore(LocalStore(str(tmp_path / "v.zarr"), read_only=True), log_level="INFO")
    caplog.set_level(logging.INFO, logger=store.logger.name)
    strokes = np.zeros(volume.shape, np.uint8)
    strokes[16:32, :64, :64] = sample.strokes[16:32, :64, :64]
    assert set(np.unique(strokes)) == {0, 1, 2}
    viewer = make_napari_viewer()
    image = viewer.add_image(zarr.open_array(store=store, mode="r"), name="vol", scale=sample.spacing)
    strokes_layer = viewer.add_labels(strokes, name="vol strokes", scale=sample.spacing)
    viewer.dims.set_current_step(0, 24)
    widget = UNetTrainerWidget(viewer)
    widget.image_combo.value, widget.strokes_combo.value = image, strokes_layer
    qtbot.wait(500)  # napari's own reads (display, contrast limits) are done
    caplog.clear()
    try:
        widget.train()
        session = widget.session
        qtbot.waitUntil(lambda: session.previews_shown >= 1, timeout=TIMEOUT_MS)
        box = session.job.box  # the strokes' box plus 16 planes and 128 pixels of context
        assert box == training_box(strokes, model_dim=3) and box[1].stop < 256 and box[2].stop < 256
        widget.stop()
        qtbot.waitUntil(lambda: widget.session is None and widget.final_prediction is None, timeout=TIMEOUT_MS)
    finally:
        widget.shutdown()
    assert widget.model.dim == 3 and session.final.regions_done >= 1
    assert (viewer.layers["vol prediction"].data[24] > 0).all()  # the plane on screen: the final model's mask
    read = {  # by the dock, from Train on: the strokes' box, then the plane on screen with its context
        record.getMessage().split("get(")[1].split(")")[0]
        for record in caplog.records
        if ".get(c" in record.getMessage()
    }
    assert 0 < len(read) < 6 * 4 * 4, f"{len(read)} of 96 chunks read"
