"""bioimage.io export (checked by bioimageio.core itself) and import of what we exported."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import yaml

from napari_unet.core.api import predict, train
from napari_unet.core.bioimageio.bioimageio_export import export_bioimageio
from napari_unet.core.bioimageio.bioimageio_import import load_bioimageio
from napari_unet.core.bioimageio.bioimageio_trace import example_crop, package_halo, receptive_radius, reference_output
from napari_unet.core.errors import UserInputError
from napari_unet.core.infer.inference import predict_normalized
from napari_unet.core.models.model import PIXEL_CLASSIFIER, UNET
from napari_unet.core.models.model_sources import open_model


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
    for weights in ("pytorch_state_dict", "torchscript"):  # the test tensors were really compared, for both
        assert any(f"Reproduce test outputs from test inputs ({weights})" in name for name in names)


def test_torchscript_weights_hold_for_sizes_other_than_the_traced_one(package_2d, model_2d, tmp_path):
    import torch

    with zipfile.ZipFile(package_2d) as archive:
        (tmp_path / "ts.pt").write_bytes(archive.read("weights.torchscript.pt"))
    scripted = torch.jit.load(str(tmp_path / "ts.pt"))
    multiple = model_2d.config.network.size_multiple[0]
    minimum = 2 * package_halo(model_2d.config.network)[0] + multiple
    x = torch.rand(2, 1, minimum + 3 * multiple, minimum + 7 * multiple)
    model_2d.network.eval()
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model_2d.network(x), atol=1e-4, rtol=1e-4)


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


def test_imported_package_predicts_exactly_like_the_original_unet(package_2d, model_2d, nuclei_2d):
    imported = open_model(package_2d)  # the package holds the U-Net only, not the pixel classifier
    assert imported.chosen == UNET and imported.pixel_classifier is None
    assert imported.config.to_dict() == {**model_2d.config.to_dict(), "pixel_classifier": None, "selection": None}
    expected = predict_normalized(model_2d, model_2d.normalize(nuclei_2d.image[None]), device="cpu")
    np.testing.assert_allclose(
        predict(imported, nuclei_2d.image, device="cpu", probabilities=True).probabilities, expected, atol=1e-5
    )


def test_exporting_a_model_that_shows_its_pixel_classifier_warns_once(model_2d, tmp_path):
    selection = model_2d.config.selection
    model_2d.config.selection = {**selection, "chosen": PIXEL_CLASSIFIER}
    try:
        with pytest.warns(UserWarning, match="holds its U-Net only"):
            export_bioimageio(model_2d, tmp_path / "m.zip", validate=False)
    finally:
        model_2d.config.selection = selection
    assert (tmp_path / "m.zip").is_file()


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


def test_example_crop_fits_the_declared_sizes_and_avoids_flat_windows(model_2d):
    multiple = model_2d.config.network.size_multiple[0]
    minimum = 2 * package_halo(model_2d.config.network)[0] + multiple
    rng = np.random.default_rng(0)
    for shape in [(1, 500, 37), (1, 9, 9), (1, 256, 1000)]:
        crop = example_crop(model_2d, rng.integers(0, 255, shape).astype(np.uint8))
        for size in crop.shape[1:]:
            assert size % multiple == 0 and minimum <= size <= 256
    mostly_empty = np.zeros((1, 600, 600), np.uint16)
    mostly_empty[0, 500:, 500:] = rng.integers(0, 1000, (100, 100))  # only a corner has structure
    assert example_crop(model_2d, mostly_empty).max() > 0
    with pytest.raises(UserInputError, match="flat"):
        example_crop(model_2d, np.full((1, 300, 300), 7, np.uint16))


def test_halo_covers_the_reach_of_the_network(package_2d, model_2d, nuclei_2d):
    """A runner that tiles with the declared halo gives the untiled result away from the border."""
    import bioimageio.core
    from bioimageio.spec.model.v0_5 import TensorId

    image = nuclei_2d.image[None, None].astype(np.float32)
    sample = bioimageio.core.predict(model=str(package_2d), inputs={TensorId("raw"): image}, blocksize_parameter=2)
    tiled = sample.members[TensorId("probabilities")].data.to_numpy()[0]
    whole = reference_output(model_2d, nuclei_2d.image[None])[0]
    border = package_halo(model_2d.config.network)[0]
    inner = (slice(None), slice(border, -border), slice(border, -border))
    assert np.abs(tiled[inner] - whole[inner]).max() < 0.05
    top_two = np.sort(whole[inner], axis=0)[-2:]
    decisive = top_two[1] - top_two[0] >= 0.02  # near-ties flip with another CPU's float summation order
    assert (tiled[inner].argmax(0) == whole[inner].argmax(0))[decisive].mean() > 0.999


def test_receptive_radius_of_the_default_networks():
    from napari_unet.core.models.network import NetworkConfig

    assert receptive_radius(NetworkConfig(dim=2, in_channels=1, num_classes=2)) == [58, 58]
    anisotropic = NetworkConfig(dim=3, in_channels=1, num_classes=2, pool_strides=[[1, 2, 2], [1, 2, 2], [2, 2, 2]])
    assert receptive_radius(anisotropic) == [18, 58, 58]


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
    with pytest.raises(UserInputError, match="not a readable zip file"):
        open_model(path)


@pytest.mark.parametrize(
    ("rdf", "message"),
    [
        (
            {"format_version": "0.4.10", "weights": {"pytorch_state_dict": {"architecture": "unet.py:UNet2d"}}},
            "its network is unet.py:UNet2d",
        ),
        ([1, 2, 3], "does not describe a model"),
        ({"config": {"napari_unet": {}}, "weights": {"pytorch_state_dict": {"source": "w.pt"}}}, "no weights file"),
    ],
)
def test_other_packages_are_refused_in_one_line(tmp_path, rdf, message):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bioimageio.yaml", yaml.safe_dump(rdf))
    with pytest.raises(UserInputError, match=message) as error:
        open_model(path)
    assert "\n" not in str(error.value)


def test_damaged_weights_inside_a_package_are_one_line(package_2d, tmp_path):
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(package_2d) as source, zipfile.ZipFile(damaged, "w") as target:
        for name in source.namelist():
            target.writestr(name, b"garbage" if name == "weights.pt" else source.read(name))
    with pytest.raises(UserInputError, match=r"weights in .* are damaged") as error:
        open_model(damaged)
    assert "weights_only" not in str(error.value)  # no unsafe advice from torch


@pytest.mark.parametrize(
    ("option", "message"), [({"name": "nuclei v1.0"}, "model name may contain"), ({"license": "Apache 2.0"}, "SPDX")]
)
def test_names_and_licenses_bioimageio_refuses_are_one_line(model_2d, tmp_path, option, message):
    with pytest.raises(UserInputError, match=message):
        export_bioimageio(model_2d, tmp_path / "m.zip", validate=False, **option)
    assert list(tmp_path.iterdir()) == []


def test_bad_output_paths_write_nothing(model_2d, tmp_path):
    with pytest.raises(UserInputError, match=r"must end in \.zip"):
        export_bioimageio(model_2d, tmp_path / "model.tar", validate=False)
    with pytest.raises(UserInputError, match="does not exist"):
        export_bioimageio(model_2d, tmp_path / "missing" / "model.zip", validate=False)
    with pytest.raises(UserInputError, match="channel"):
        export_bioimageio(model_2d, tmp_path / "model.zip", image=np.zeros((3, 64, 64)), validate=False)
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_an_existing_package_only_when_complete(model_2d, package_2d, tmp_path):
    out = tmp_path / "model.zip"
    shutil.copy(package_2d, out)  # a package napari-unet exported: it may be replaced
    previous = out.read_bytes()
    with pytest.raises(UserInputError, match="channel"):
        export_bioimageio(model_2d, out, image=np.zeros((1, 64)), validate=False)
    assert out.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]


def test_export_refuses_another_tools_file_unless_asked(model_2d, tmp_path):
    other = tmp_path / "other.zip"
    other.write_bytes(b"another tool's package")
    with pytest.raises(UserInputError, match=r"not written by napari-unet.*--overwrite"):
        export_bioimageio(model_2d, other, validate=False)
    assert other.read_bytes() == b"another tool's package"
    assert export_bioimageio(model_2d, other, validate=False, overwrite=True) == other
    assert zipfile.is_zipfile(other)
