"""Faults and awkward inputs: every image dtype trains and predicts finite results; a full or read-only
disk gives one clear line and leaves the previous file as it was."""

from __future__ import annotations

import errno
import re

import numpy as np
import pytest

from napari_unet.core.api import predict, train
from napari_unet.core.errors import UserInputError
from napari_unet.core.io.io import read_image, write_array


def _awkward(image: np.ndarray, kind: str) -> np.ndarray:
    scaled = image.astype(np.float64) / image.max()
    if kind == "bool":
        return scaled > 0.5
    if kind == "nan and inf pixels":
        out = scaled.astype(np.float32)
        out[::7, ::5] = np.nan
        out[3::11, ::13] = np.inf
        out[5::17, 2::9] = -np.inf
        return out
    if kind == "constant":
        return np.full(image.shape, 7, np.uint16)
    dtype = np.dtype(kind)
    top = np.iinfo(dtype).max if dtype.kind in "iu" else 1.0
    return (scaled * top).astype(dtype)


@pytest.mark.parametrize(
    "kind", ["uint8", "uint16", "int32", "float32", "float64", "bool", "nan and inf pixels", "constant"]
)
def test_any_image_dtype_trains_and_predicts_finite_results(nuclei_2d, kind):
    image = _awkward(nuclei_2d.image, kind)
    model = train(image, nuclei_2d.strokes, steps=3, base_channels=4, depth=2, seed=0, device="cpu")
    prediction = predict(model, image, probabilities=True, device="cpu")
    assert np.isfinite(prediction.probabilities).all()
    assert set(np.unique(prediction.labels)) <= {1, 2}
    assert all(np.isfinite(v).all() for v in model.network.state_dict().values() if v.is_floating_point())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("suffix", [".npy", ".tif"])
def test_a_full_or_read_only_disk_is_one_clear_line_and_keeps_the_old_file(tmp_path, monkeypatch, code, suffix):
    import tifffile

    target = tmp_path / f"masks{suffix}"
    write_array(target, np.ones((8, 8), np.uint8))

    def half_written(path, *args, **kwargs):  # write a little, then the disk gives up
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise OSError(code, "faked")

    monkeypatch.setattr(np, "save", lambda handle, *a, **k: half_written(handle.name))
    monkeypatch.setattr(tifffile, "imwrite", half_written)
    with pytest.raises(UserInputError, match="cannot write") as raised:
        write_array(target, np.zeros((8, 8), np.uint8), overwrite=True)  # a .npy carries no napari-unet mark
    assert "\n" not in str(raised.value)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no partial temporary left
    np.testing.assert_array_equal(read_image(target).data, np.ones((8, 8), np.uint8))


@pytest.mark.parametrize("shape", [(5, 7), (1, 40), (40, 1), (1, 40, 40), (3, 9, 1)])
def test_tiny_and_one_pixel_thick_images_train_and_predict(rng, shape):
    image = rng.random(shape).astype(np.float32)
    strokes = np.zeros(shape, np.uint8)
    strokes.flat[0], strokes.flat[-1] = 1, 2
    model = train(image, strokes, steps=2, base_channels=4, depth=2, device="cpu")
    assert predict(model, image, device="cpu").labels.shape == shape


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 4, 5)])
def test_4d_and_5d_images_need_an_explicit_choice(rng, shape):
    strokes = np.zeros(shape, np.uint8)
    strokes.flat[0], strokes.flat[-1] = 1, 2
    with pytest.raises(UserInputError, match=rf"spatial axes \(shape {re.escape(str(shape))}\)"):
        train(rng.random(shape).astype(np.float32), strokes, steps=1, device="cpu")


def test_an_empty_image_is_refused(nuclei_2d):
    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=1, base_channels=4, depth=2, device="cpu")
    with pytest.raises(UserInputError, match="the image is empty"):
        predict(model, np.zeros((0, 10), np.float32), device="cpu")
