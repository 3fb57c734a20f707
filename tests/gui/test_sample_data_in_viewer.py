"""The sample data opens in a real napari viewer through the plugin's manifest."""

import numpy as np


def test_sample_data_opens_through_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei_3d")
    names = [layer.name for layer in viewer.layers]
    assert names == ["nuclei 3D", "nuclei 3D strokes"]
    image, strokes = viewer.layers
    assert tuple(image.scale) == (2.0, 1.0, 1.0) == tuple(strokes.scale)
    assert set(np.unique(strokes.data)) == {0, 1, 2}
    screenshot = viewer.screenshot(canvas_only=True)
    assert screenshot.ndim == 3 and screenshot.std() > 0
