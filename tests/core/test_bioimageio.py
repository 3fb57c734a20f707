"""bioimage.io export (checked by bioimageio.core itself) and import of what we exported."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml

from napari_unet.core.api import predict, train
from napari_unet.core.bioimageio_package import example_crop, export_bioimageio, load_bioimageio
from napari_unet.core.errors import UserInputError
from napari_unet.core.model_sources import open_model


@pytest.fixture(scope="module")
def model_2d(nuclei_2d):
    return train(nuclei_2d.image, nuclei_2d.strokes, steps=3, base_channels=8, depth=3, device="cpu", seed=0)


@pytest.fixture(scope="module")
def package_2d(model_2d, nuclei_2d, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "nuclei.zip"
    export_bioimageio(model_2d, out, image=nuclei_2d.image[None], name="test nuclei", authors=["A. Tester"])
    return out


def _rdf(package) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def test_exported_2d_package_passes_bioimageio_test_model(package_2d):
    from bioimageio.core import test_model

    summary = test_model(str(package_2d))
    assert summary.status == "passed", [(d.name, d.errors) for d in summary.details if d.status != "passed"]
    names = [d.name for d in summary.details]
    assert any("Reproduce test outputs" in name for name in names)  # the test tensors were really compared


def test_package_describes_the_model(package_2d, model_2d):
    rdf = _rdf(package_2d)
    assert rdf["name"] == "test nuclei" and rdf["authors"] == [{"name": "A. Tester"}]
    assert rdf["cite"][0]["doi"] == "10.1007/978-3-319-24574-4_28"
    (raw,) = rdf["inputs"]
    scale_range = next(step for step in raw["preprocessing"] if step["id"] == "scale_range")["kwargs"]
    norm = model_2d.config.normalization
    assert (scale_range["min_percentile"], scale_range["max_percentile"]) == (norm.low_percentile, norm.high_percentile)
    assert scale_range["axes"] == ["y", "x"]
    (output,) = rdf["outputs"]
    assert [a.get("id", a["type"]) for a in output["axes"]] == ["batch", "channel", "y", "x"]
    assert output["axes"][1]["channel_names"] == ["background", "class_2"]
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "unet_from_kwargs"
    assert rdf["config"]["napari_unet"]["network"]["base_channels"] == 8
    with zipfile.ZipFile(package_2d) as archive:
        files = set(archive.namelist())
        assert {"cover.png", "README.md", "network.py", "weights.pt", "test_input.npy", "test_output.npy"} <= files
        assert "## Training runs" in archive.read("README.md").decode()


def test_imported_package_predicts_exactly_like_the_original(package_2d, model_2d, nuclei_2d):
    imported = open_model(package_2d)
    assert imported.config.to_dict() == model_2d.config.to_dict()
    expected = predict(model_2d, nuclei_2d.image, device="cpu", probabilities=True).probabilities
    np.testing.assert_allclose(
        predict(imported, nuclei_2d.image, device="cpu", probabilities=True).probabilities, expected, atol=1e-5
    )


def test_imported_package_fine_tunes(package_2d, nuclei_2d):
    model = train(nuclei_2d.image, nuclei_2d.strokes, init=package_2d, steps=2, device="cpu")
    assert len(model.config.history) == 2


def test_anisotropic_3d_package_passes_test_model(nuclei_3d, tmp_path):
    from bioimageio.core import test_model

    model = train(
        nuclei_3d.image, nuclei_3d.strokes, spacing=(3.0, 1.0, 1.0), steps=2, base_channels=4, depth=3, device="cpu"
    )
    assert model.config.network.pool_strides[0] == [1, 2, 2]
    out = export_bioimageio(model, tmp_path / "volume.zip", image=nuclei_3d.image[None])
    summary = test_model(str(out))
    assert summary.status == "passed", [(d.name, d.errors) for d in summary.details if d.status != "passed"]
    rdf = _rdf(out)
    assert [a["scale"] for a in rdf["inputs"][0]["axes"][2:]] == [3.0, 1.0, 1.0]
    assert len(rdf["cite"]) == 2  # U-Net and 3D U-Net


def test_test_crop_fits_the_declared_sizes(model_2d):
    multiple = model_2d.config.network.size_multiple[0]
    for shape in [(1, 500, 37), (1, 9, 9), (1, 256, 1000)]:
        crop = example_crop(model_2d, np.zeros(shape, np.uint8))
        for size in crop.shape[1:]:
            assert size % multiple == 0 and 4 * multiple <= size <= 256


def test_foreign_package_is_refused_with_one_line(tmp_path):
    rdf = {"type": "model", "weights": {"pytorch_state_dict": {"architecture": {"callable": "StarDist"}}}}
    path = tmp_path / "foreign.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rdf.yaml", yaml.safe_dump(rdf))
    with pytest.raises(UserInputError, match=r"not exported by napari-unet.*StarDist") as error:
        load_bioimageio(path)
    assert "\n" not in str(error.value)


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(UserInputError, match=r"not a readable bioimage\.io package"):
        open_model(path)


def test_bad_output_paths_write_nothing(model_2d, tmp_path):
    with pytest.raises(UserInputError, match=r"must end in \.zip"):
        export_bioimageio(model_2d, tmp_path / "model.tar", validate=False)
    with pytest.raises(UserInputError, match="does not exist"):
        export_bioimageio(model_2d, tmp_path / "missing" / "model.zip", validate=False)
    with pytest.raises(UserInputError, match="channel"):
        export_bioimageio(model_2d, tmp_path / "model.zip", image=np.zeros((3, 64, 64)), validate=False)
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_an_existing_package_only_when_complete(model_2d, tmp_path):
    out = tmp_path / "model.zip"
    out.write_bytes(b"previous package")
    with pytest.raises(UserInputError):
        export_bioimageio(model_2d, out, image=np.zeros((1, 64)), validate=False)
    assert out.read_bytes() == b"previous package"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]
