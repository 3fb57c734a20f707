"""The command line's input checks: every number a user can type, channels from metadata, hand-edited
configs; each bad input exits 2 with one line and writes nothing."""

import json
import time

import numpy as np
import pytest
import tifffile
import zarr
from cli_helpers import refused, run_train, train_argv

from napari_unet.cli import main


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--time-budget", "nan"], "time budget (--time-budget, seconds) must be a finite number above 0, got nan"),
        (["--time-budget", "inf"], "--time-budget"),
        (["--time-budget", "-1"], "--time-budget"),
        (["--steps", "0"], "--steps"),
        (["--spacing", "-2", "1"], "spacing (--spacing) must be finite voxel sizes above 0"),
        (["--spacing", "nan", "1"], "--spacing"),
        (["--spacing", "2", "1", "1"], "one value per spatial axis"),
        (["--batch-size", "100000"], "--batch-size 100000 does not fit in free memory"),
        (["--batch-size", "0"], "--batch-size"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**32)], "--seed"),
        (["--intensity-augmentation", "nan"], "--intensity-augmentation"),
        (["--dim", "3"], "a 3D model needs a 3D (ZYX) image"),
    ],
)
def test_bad_numbers_for_train_exit_2_in_one_line(files, capsys, extra, message):
    refused(
        capsys,
        files,
        train_argv(files, "--model", files / "m", "--device", "cpu", *extra),
        message,
    )


@pytest.fixture
def one_channel_model(files, capsys):
    assert run_train(files, "--model", files / "m", "--steps", 1, "--device", "cpu") == 0
    capsys.readouterr()
    return files / "m"


@pytest.mark.parametrize(
    ("options", "source"),
    [
        ({"imagej": True, "metadata": {"channels": 2}}, "its ImageJ metadata"),
        ({"ome": True, "metadata": {"axes": "CYX"}}, "its OME-XML"),
    ],
)
def test_a_two_channel_tiff_is_never_read_as_planes(files, nuclei_2d, capsys, one_channel_model, options, source):
    two = np.stack([nuclei_2d.image, nuclei_2d.image]).astype(np.float32)
    tifffile.imwrite(files / "two.tif", two, **options)
    predict = ["predict", "--model", one_channel_model, "--image", files / "two.tif", "--device", "cpu"]
    refused(
        capsys,
        files,
        [*predict, "--out", files / "out.tif"],
        "the model takes 1 channel but the image has 2 (axis 0, from " + source,
        "2-channel images",
    )
    refused(capsys, files, [*predict, "--out", files / "out.zarr"], "the model takes 1 channel but the image has 2")
    refused(capsys, files, [*predict, "--out", files / "out.tif", "--channel-axis", "1"], "contradicts " + source)


def test_predict_does_not_advise_options_it_lacks(files, nuclei_3d, capsys, one_channel_model):
    tifffile.imwrite(files / "volume.tif", nuclei_3d.image, metadata={"axes": "ZYX"})
    tifffile.imwrite(files / "volume_strokes.tif", nuclei_3d.strokes, metadata={"axes": "ZYX"})
    train = ["train", "--image", files / "volume.tif", "--labels", files / "volume_strokes.tif", "--device", "cpu"]
    assert main([str(a) for a in [*train, "--model", files / "m3", "--steps", 1]]) == 0
    capsys.readouterr()
    predict = ["predict", "--model", files / "m3", "--image", files / "image.tif", "--out", files / "out.tif"]
    refused(capsys, files, predict, "a 3D model needs a 3D (ZYX) image", "use a 2D model")
    assert "--dim" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--overlap", "nan"], "--overlap"),
        (["--overlap", "1"], "--overlap"),
        (["--tile-size", "0"], "--tile-size"),
        (["--batch-size", "0"], "--batch-size"),
        (["--out-zarr", "--block-size", "0"], "--block-size"),
    ],
)
def test_bad_numbers_for_predict_exit_2_in_one_line(files, capsys, one_channel_model, extra, message):
    out = files / ("out.zarr" if "--out-zarr" in extra else "out.tif")
    extra = [a for a in extra if a != "--out-zarr"]
    predict = ["predict", "--model", one_channel_model, "--image", files / "image.tif", "--out", out]
    refused(capsys, files, [*predict, *extra], message)


def test_a_config_with_wrong_types_is_refused_before_training(files, capsys, one_channel_model):
    config = json.loads((one_channel_model / "config.json").read_text())
    config["history"] = {"steps": 1}  # a hand edit that used to fail only when training had ended
    (one_channel_model / "config.json").write_text(json.dumps(config))
    started = time.perf_counter()
    refused(
        capsys,
        files,
        train_argv(files, "--model", files / "tuned", "--init", one_channel_model, "--steps", 50),
        "config.json cannot be read: history must be a list of objects",
    )
    assert time.perf_counter() - started < 20


def test_a_missing_pyramid_level_is_one_line_naming_it(files, capsys, one_channel_model, nuclei_2d):
    root = zarr.open_group(str(files / "img.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("s1", data=nuclei_2d.image[::2, ::2])
    axes = [{"name": n, "type": "space"} for n in "yx"]
    transforms = [{"type": "scale", "scale": [1.0, 1.0]}]
    datasets = [{"path": p, "coordinateTransformations": transforms} for p in ("s0", "s1")]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    predict = ["predict", "--model", one_channel_model, "--image", files / "img.ome.zarr", "--device", "cpu"]
    for out in ("out.tif", "out.zarr"):
        refused(capsys, files, [*predict, "--out", files / out], "pyramid level 's0'", "img.ome.zarr")


@pytest.mark.parametrize("budget", ["nan", "inf", "0"])
def test_demo_refuses_a_bad_time_budget_before_making_its_folder(tmp_path, capsys, budget):
    refused(capsys, tmp_path, ["demo", "--time-budget", budget, "--out", tmp_path / "demo"], "--time-budget")


def test_an_all_nan_image_trains_with_a_one_line_warning(files, capsys, nuclei_2d):
    tifffile.imwrite(files / "nan.tif", np.full(nuclei_2d.image.shape, np.nan, np.float32))
    code = main(
        [
            "train",
            "--image",
            str(files / "nan.tif"),
            "--labels",
            str(files / "strokes.tif"),
            "--model",
            str(files / "m"),
            "--steps",
            "1",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    warned = [line for line in err.splitlines() if "warning" in line]
    assert warned == [
        "napari-unet: warning: the image holds no finite value (all NaN or infinite): there is "
        "nothing in it to learn or segment"
    ]
