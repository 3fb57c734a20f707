"""The napari-unet command line end to end on small files; bad input exits 2 and writes nothing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from cli_helpers import run_train, snapshot

from napari_unet import load_model
from napari_unet.cli import main
from napari_unet.core.io.io import read_image

CONSOLE_SCRIPT = Path(sys.executable).parent / "napari-unet"


def test_train_then_predict_with_the_console_script(files):
    train = [
        CONSOLE_SCRIPT,
        "train",
        "--image",
        files / "image.tif",
        "--labels",
        files / "strokes.tif",
        "--model",
        files / "model",
        "--steps",
        "3",
        "--device",
        "cpu",
        "--seed",
        "1",
    ]
    done = subprocess.run([str(a) for a in train], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "trained 3 steps" in done.stdout
    predict = [
        CONSOLE_SCRIPT,
        "--verbose",  # the package's log on stderr
        "predict",
        "--model",
        files / "model",
        "--image",
        files / "image.tif",
        "--out",
        files / "masks.zarr",
        "--probabilities",
        "--device",
        "cpu",
    ]
    done = subprocess.run([str(a) for a in predict], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "napari-unet: predicting (128, 160) in 1 blocks" in done.stderr
    labels = read_image(files / "masks.zarr")
    probabilities = read_image(files / "masks_probabilities.zarr").data
    assert labels.data.shape == (128, 160) and set(np.unique(labels.data)) <= {1, 2}
    assert labels.ome is not None and labels.ome.version == "0.4"  # an OME-Zarr label image
    assert probabilities.shape == (2, 128, 160)


def test_predict_on_a_dask_cluster_matches_the_local_run(files):
    from distributed import LocalCluster

    assert run_train(files, "--model", files / "m", "--steps", 3, "--seed", 0) == 0
    predict = ["predict", "--model", str(files / "m"), "--image", str(files / "image.tif"), "--device", "cpu"]
    assert main([*predict, "--out", str(files / "local.zarr")]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        assert main([*predict, "--out", str(files / "cluster.zarr"), "--scheduler", cluster.scheduler_address]) == 0
    np.testing.assert_array_equal(read_image(files / "cluster.zarr").data, read_image(files / "local.zarr").data)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "out.zarr", "--scheduler", "tcp://127.0.0.1:9"], "cannot reach the dask scheduler"),
        (["--out", "out.tif", "--scheduler", "tcp://127.0.0.1:9"], "need a .zarr --out"),
        (["--out", "out.tif/labels/x"], "use one of"),
    ],
)
def test_bad_out_of_core_options_exit_2_and_write_nothing(files, capsys, monkeypatch, extra, message):
    monkeypatch.setattr("napari_unet.cli.SCHEDULER_TIMEOUT", "1s")  # nothing listens there: fail fast
    assert run_train(files, "--model", files / "m", "--steps", 1) == 0
    capsys.readouterr()
    before = snapshot(files)
    extra = [str(files / a) if a.startswith("out") else a for a in extra]
    code = main(["predict", "--model", str(files / "m"), "--image", str(files / "image.tif"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert snapshot(files) == before


def test_fine_tune_from_a_model(files):
    assert run_train(files, "--steps", 2, "--model", files / "a") == 0
    assert run_train(files, "--steps", 2, "--model", files / "b", "--init", files / "a", "--time-budget", 0.5) == 0
    assert (files / "b" / "config.json").exists()


def _write(path, array):
    tifffile.imwrite(path, array)
    return str(path)


@pytest.mark.parametrize(
    ("make_labels", "message"),
    [
        (lambda s: s.astype(np.float32), "integers"),
        (lambda s: s[:, :-1], "does not match"),
        (lambda s: np.zeros_like(s), "nothing is painted"),
        (lambda s: np.where(s == 2, 0, s).astype(np.uint8), "only class 1"),
    ],
)
def test_bad_strokes_exit_2_and_leave_nothing(files, nuclei_2d, capsys, make_labels, message):
    labels = _write(files / "bad.tif", make_labels(nuclei_2d.strokes))
    before = snapshot(files)
    code = main(["train", "--image", str(files / "image.tif"), "--labels", labels, "--model", str(files / "m")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert snapshot(files) == before


def test_missing_files_and_damaged_models_exit_2(files, capsys):
    before = snapshot(files)
    assert (
        main(
            [
                "train",
                "--image",
                str(files / "nope.tif"),
                "--labels",
                str(files / "strokes.tif"),
                "--model",
                str(files / "m"),
            ]
        )
        == 2
    )
    assert "file not found" in capsys.readouterr().err
    (files / "fake_model").mkdir()
    (files / "fake_model" / "config.json").write_text("{}")
    (files / "fake_model" / "weights.pt").write_bytes(b"\x80\x04 truncated")
    before = snapshot(files)
    assert (
        main(
            [
                "predict",
                "--model",
                str(files / "fake_model"),
                "--image",
                str(files / "image.tif"),
                "--out",
                str(files / "out.tif"),
            ]
        )
        == 2
    )
    assert "cannot be read" in capsys.readouterr().err
    assert snapshot(files) == before


def test_truncated_weights_exit_2_without_traceback(files):
    assert run_train(files, "--model", files / "m", "--steps", 1) == 0
    weights = files / "m" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:100])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_unet.cli",
            "predict",
            "--model",
            str(files / "m"),
            "--image",
            str(files / "image.tif"),
            "--out",
            str(files / "out.tif"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and "checkpoint" in done.stderr
    assert not (files / "out.tif").exists()


def test_bad_output_path_is_refused_before_predicting(files, capsys):
    assert run_train(files, "--model", files / "m", "--steps", 1) == 0
    code = main(
        [
            "predict",
            "--model",
            str(files / "m"),
            "--image",
            str(files / "image.tif"),
            "--out",
            str(files / "no_folder" / "out.tif"),
        ]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_demo_runs_headless_and_reports_metrics(tmp_path, capsys):
    assert main(["demo", "--time-budget", "2", "--out", str(tmp_path / "demo"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "foreground_iou" in out and "instance_f1" in out
    assert {p.name for p in (tmp_path / "demo").iterdir()} == {"model", "image.tif", "strokes.tif", "prediction.tif"}


@pytest.mark.parametrize("option, value", [("--batch-size", 0), ("--intensity-augmentation", 1.5)])
def test_bad_training_settings_exit_2(files, capsys, option, value):
    code = run_train(files, "--model", files / "m", option, value)
    assert code == 2 and option in capsys.readouterr().err
    assert not (files / "m").exists()


def test_intensity_augmentation_is_recorded_in_the_model(files):
    assert (
        run_train(files, "--model", files / "m", "--steps", 2, "--intensity-augmentation", 0.5, "--device", "cpu") == 0
    )
    assert load_model(files / "m").config.history[-1]["settings"]["intensity_probability"] == 0.5


def test_predict_instances_writes_object_ids(files, nuclei_2d):
    from napari_unet.core.instances.metrics import instance_f1

    assert run_train(files, "--model", files / "m", "--steps", 40, "--seed", 0, "--device", "cpu") == 0
    predict = ["predict", "--model", str(files / "m"), "--image", str(files / "image.tif"), "--device", "cpu"]
    assert main([*predict, "--out", str(files / "objects.tif"), "--instances"]) == 0
    assert main([*predict, "--out", str(files / "objects.zarr"), "--instances"]) == 0
    in_memory = read_image(files / "objects.tif").data
    streamed = read_image(files / "objects.zarr").data
    assert in_memory.dtype == np.int32 and in_memory.max() > 3
    assert instance_f1(streamed, in_memory) > 0.95


def test_a_folder_named_labels_is_an_ordinary_output_folder(files):
    assert run_train(files, "--model", files / "m", "--steps", 1) == 0
    (files / "labels").mkdir()
    predict = ["predict", "--model", str(files / "m"), "--image", str(files / "image.tif"), "--device", "cpu"]
    assert main([*predict, "--out", str(files / "labels" / "mask.tif")]) == 0
    assert main([*predict, "--out", str(files / "labels" / "mask.zarr")]) == 0
    assert read_image(files / "labels" / "mask.zarr").data.shape == read_image(files / "labels" / "mask.tif").data.shape


def test_export_to_bioimageio_then_predict_and_fine_tune_from_the_package(files, capsys):
    assert run_train(files, "--model", files / "model", "--steps", 2, "--device", "cpu") == 0
    export = ["export", "--model", str(files / "model"), "--format", "bioimageio", "--out", str(files / "m.zip")]
    assert main([*export, "--image", str(files / "image.tif"), "--author", "Ada"]) == 0
    assert "passed" not in capsys.readouterr().err
    predicted = main(
        [
            "predict",
            "--model",
            str(files / "m.zip"),
            "--image",
            str(files / "image.tif"),
            "--out",
            str(files / "from_package.tif"),
            "--device",
            "cpu",
        ]
    )
    assert predicted == 0
    assert read_image(files / "from_package.tif").data.shape == read_image(files / "image.tif").data.shape
    assert run_train(files, "--model", files / "tuned", "--init", files / "m.zip", "--steps", 1, "--device", "cpu") == 0


def test_export_refuses_bad_input_and_writes_nothing(files, capsys):
    assert run_train(files, "--model", files / "model", "--steps", 1, "--device", "cpu") == 0
    before = snapshot(files)
    assert main(["export", "--model", str(files / "model"), "--out", str(files / "m.tar")]) == 2
    assert "must end in .zip" in capsys.readouterr().err
    assert main(["export", "--model", str(files / "nothing"), "--out", str(files / "m.zip")]) == 2
    assert "not found" in capsys.readouterr().err
    assert snapshot(files) == before


def test_train_from_a_pretrained_name(files, capsys):
    code = run_train(files, "--model", files / "tuned", "--init", "nuclei-2d", "--steps", 1, "--device", "cpu")
    assert code == 0, capsys.readouterr().err
    history = read_model_history(files / "tuned")
    assert len(history) > 1  # the pretraining rounds, then this run
    assert run_train(files, "--model", files / "other", "--init", "nuclei-9d", "--steps", 1) == 2
    assert "pretrained name (nuclei-2d, nuclei-3d, nuclei-2d-dsb)" in capsys.readouterr().err
    assert not (files / "other").exists()


def test_rgb_image_fine_tunes_and_predicts_from_the_real_data_start(files, nuclei_2d, capsys):
    rgb = np.stack([nuclei_2d.image] * 3, axis=-1)
    tifffile.imwrite(files / "rgb.tif", rgb)
    image = ["--image", str(files / "rgb.tif"), "--channel-axis", "2", "--device", "cpu"]
    tuned, out = str(files / "tuned"), files / "masks.tif"
    labels = ["--labels", str(files / "strokes.tif")]
    code = main(["train", *image, *labels, "--model", tuned, "--init", "nuclei-2d-dsb", "--steps", "1"])
    assert code == 0, capsys.readouterr().err
    assert main(["predict", *image, "--model", tuned, "--out", str(out)]) == 0, capsys.readouterr().err
    assert tifffile.imread(out).shape == nuclei_2d.image.shape


def read_model_history(path):

    return json.loads((path / "config.json").read_text())["history"]


# --- input checks (issue 22): exit 2, one line, no traceback, nothing written ---


def test_train_starts_from_the_default_start_unless_told_none(files, capsys):
    assert run_train(files, "--model", files / "auto", "--steps", 1, "--device", "cpu") == 0, capsys.readouterr().err
    assert len(read_model_history(files / "auto")) > 1  # nuclei-2d-dsb's rounds, then this run
    assert run_train(files, "--model", files / "new", "--init", "none", "--steps", 1, "--device", "cpu") == 0
    assert len(read_model_history(files / "new")) == 1
