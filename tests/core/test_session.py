"""Sessions: image, strokes and model saved to one OME-Zarr project and read back to go on training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.api import train
from napari_unet.core.errors import UserInputError
from napari_unet.core.io.session import load_session, save_session


def test_save_then_load_gives_back_image_strokes_and_model_and_training_goes_on(tmp_path, nuclei_2d):
    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=2, seed=0, base_channels=4, depth=2, device="cpu")
    save_session(tmp_path / "work.zarr", nuclei_2d.image, nuclei_2d.strokes, model=model, spacing=(0.5, 0.5))

    session = load_session(tmp_path / "work.zarr")
    np.testing.assert_array_equal(session.image, nuclei_2d.image)
    np.testing.assert_array_equal(session.strokes, nuclei_2d.strokes)
    assert session.spacing == (0.5, 0.5) and session.channel_axis is None
    for name, value in model.network.state_dict().items():
        torch.testing.assert_close(session.model.network.state_dict()[name], value)
    again = train(session.image, session.strokes, steps=2, init=session.model, device="cpu")
    assert len(again.config.history) == 2  # the same model, one more run


def test_a_session_is_an_ome_zarr_image_with_its_strokes_as_labels(tmp_path, nuclei_3d):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    image = np.stack([nuclei_3d.image, nuclei_3d.image // 2])  # two channels
    save_session(tmp_path / "vol.zarr", image, nuclei_3d.strokes, spacing=(2.0, 1.0, 1.0), channel_axis=0)
    nodes = list(Reader(parse_url(str(tmp_path / "vol.zarr")))())
    assert nodes[0].data[0].shape == image.shape
    assert any(node.metadata.get("name") == "strokes" for node in nodes)
    session = load_session(tmp_path / "vol.zarr")
    assert session.channel_axis == 0 and session.model is None
    np.testing.assert_array_equal(session.image, image)


def test_bad_sessions_are_refused_and_nothing_is_touched(tmp_path, nuclei_2d):
    with pytest.raises(UserInputError, match="not a napari-unet session"):
        load_session(tmp_path / "missing.zarr")
    (tmp_path / "other.zarr").mkdir()
    (tmp_path / "other.zarr" / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(UserInputError, match="zarr store napari-unet did not write"):
        save_session(tmp_path / "other.zarr", nuclei_2d.image, nuclei_2d.strokes)
    with pytest.raises(UserInputError, match="do not match"):
        save_session(tmp_path / "s.zarr", nuclei_2d.image, np.zeros((3, 3), np.uint8))
    with pytest.raises(UserInputError, match=r"\.zarr folder"):
        save_session(tmp_path / "s.tif", nuclei_2d.image, nuclei_2d.strokes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.zarr"]
    assert sorted(p.name for p in (tmp_path / "other.zarr").iterdir()) == [".zgroup"]
