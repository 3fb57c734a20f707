"""Model directories: round trip, atomic replace, and clear errors for damaged or foreign files."""

import json
import pickle
import re

import numpy as np
import pytest
import torch

from napari_unet.core.errors import UserInputError
from napari_unet.core.models.model import CONFIG_FILE, WEIGHTS_FILE, Model


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = Model.create(dim=3, in_channels=2, num_classes=3, spacing=(3.0, 1.0, 1.0), base_channels=4, depth=3)
    model.config.normalization.fitted = [[1.0, 9.0], [0.0, 5.0]]
    model.config.history.append({"steps": 5})
    model.network.eval()
    return model


def test_round_trip_keeps_weights_and_config(tmp_path, model):
    path = model.save(tmp_path / "m")
    loaded = Model.load(path)
    assert loaded.config == model.config
    assert loaded.config.network.pool_strides == [[1, 2, 2], [2, 2, 2]]
    x = torch.randn(1, 2, 6, 16, 16)
    loaded.network.eval()
    assert torch.equal(model.network(x), loaded.network(x))


def test_saving_over_a_model_replaces_it_and_leaves_no_temporaries(tmp_path, model):
    model.save(tmp_path / "m")
    model.config.history.append({"steps": 7})
    model.save(tmp_path / "m")
    assert Model.load(tmp_path / "m").config.history[-1] == {"steps": 7}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_save_keeps_the_previous_model(tmp_path, model, monkeypatch):
    model.save(tmp_path / "m")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(UserInputError, match=r"cannot write .*: disk full"):  # one line, not a traceback
        model.save(tmp_path / "m")
    assert Model.load(tmp_path / "m").config == model.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_refuses_to_replace_a_folder_that_is_not_a_model(tmp_path, model):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.tif").write_bytes(b"x")
    with pytest.raises(UserInputError, match=r"precious\.tif\): napari-unet never replaces such a folder"):
        model.save(tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / "precious.tif").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path, model):
    path = model.save(tmp_path / "m")
    data = (path / WEIGHTS_FILE).read_bytes()
    (path / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match="not a readable napari-unet checkpoint"):
        Model.load(path)


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_code_never_runs(tmp_path, model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = model.save(tmp_path / "m")
    (path / WEIGHTS_FILE).write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(UserInputError):
        Model.load(path)
    assert not (tmp_path / "PWNED").exists()


def test_foreign_state_dict_is_a_clear_error(tmp_path, model):
    path = model.save(tmp_path / "m")
    torch.save({"conv.weight": torch.zeros(3)}, path / WEIGHTS_FILE)
    with pytest.raises(UserInputError, match="does not match the architecture"):
        Model.load(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(version=99), "version 99 is newer than this napari-unet reads"),
        (lambda c: c.update(version="1"), "version must be a whole number, got '1'"),
        (lambda c: c.update(version=0), "version 0 is unknown"),
        (lambda c: c.update(format="something-else"), "not a napari-unet"),
        (lambda c: c["network"].update(colour="blue"), "unknown"),
        # wrongly typed fields (issue 22): named at load time, not after training
        (lambda c: c["network"].update(dim="3"), "network.dim must be a whole number, got '3'"),
        (lambda c: c["network"].update(dim=4), "network.dim must be 2 or 3, got 4"),
        (lambda c: c["network"].update(in_channels=2.0), "network.in_channels must be a whole number"),
        (lambda c: c["network"].update(num_classes=True), "network.num_classes must be a whole number"),
        (lambda c: c["network"].update(base_channels=0), "network.base_channels must be a whole number of at least 1"),
        (lambda c: c["network"].update(norm="layer"), "network.norm must be one of"),
        (lambda c: c["network"].update(pool_strides=[[1, 2, "2"], [2, 2, 2]]), "network.pool_strides must be a list"),
        (lambda c: c["network"].update(pool_strides=[[1, 2, 0], [2, 2, 2]]), "pool_strides must hold whole numbers"),
        (lambda c: c["network"].pop("num_classes"), "network.num_classes is missing"),
        (lambda c: c.pop("network"), "network is missing"),
        (lambda c: c.update(network=[3]), "network must be a JSON object"),
        (lambda c: c["normalization"].update(high_percentile="99.8"), "normalization.high_percentile must be a num"),
        (lambda c: c["normalization"].update(low_percentile=100), "normalization.low_percentile and high_percentile"),
        (lambda c: c["normalization"].update(fitted=[[1.0, 9.0]]), "fitted has 1 ranges for network.in_channels 2"),
        (lambda c: c["normalization"].update(fitted=[1.0, 9.0]), "normalization.fitted must be a list of lists"),
        (lambda c: c.update(class_names="background"), "class_names must be a list of strings"),
        (
            lambda c: c.update(class_names=["background", "class 2"]),
            "class_names has 2 names for network.num_classes 3",
        ),
        (lambda c: c.update(spacing=[3.0, -1.0, 1.0]), "spacing must be 3 finite voxel sizes above 0"),
        (lambda c: c.update(spacing=[1.0, 1.0]), "spacing must be 3 finite voxel sizes"),
        (lambda c: c.update(spacing="1 1 1"), "spacing must be a list of numbers or null"),
        (lambda c: c.update(history={"steps": 5}), "history must be a list of objects"),
        (lambda c: c.update(selection={"blend_weight": 1.5}), "selection.blend_weight must be a number from 0 to 1"),
        (lambda c: c.update(selection={"blend_weight": None}), "selection.blend_weight must be a number from 0 to 1"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, model, edit, message):
    path = model.save(tmp_path / "m")
    config = json.loads((path / CONFIG_FILE).read_text())
    edit(config)
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(UserInputError, match=re.escape(message)) as refused:
        Model.load(path)
    assert str(refused.value).startswith(f"{path / CONFIG_FILE} cannot be read: ")
    assert "\n" not in str(refused.value)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="not a napari-unet model directory"):
        Model.load(tmp_path / "nope")


def test_adapting_to_another_class_count_keeps_all_but_the_head(model):
    adapted = model.adapted_to(num_classes=5, in_channels=2)
    assert adapted.num_classes == 5
    old, new = model.network.state_dict(), adapted.network.state_dict()
    for key in old:
        if key.startswith("head."):
            assert new[key].shape[0] == 5 and torch.equal(new[key][:3], old[key])
        else:
            assert torch.equal(old[key], new[key])
    assert adapted.config.class_names[:3] == model.config.class_names
    with pytest.raises(UserInputError, match="channel"):
        model.adapted_to(num_classes=3, in_channels=1)
    assert model.adapted_to(num_classes=3, in_channels=2) is model


def test_normalize_scales_percentiles_to_unit_range(model):
    image = np.stack([np.linspace(0, 100, 1000), np.full(1000, 7.0)]).reshape(2, 10, 10, 10)
    normalized = model.normalize(image)
    assert normalized.dtype == np.float32
    assert normalized[0].min() == pytest.approx(-0.0102, abs=1e-3) and normalized[0].max() == pytest.approx(
        1.002, abs=1e-3
    )
    assert np.allclose(normalized[1], (7.0 - 0.0) / 5.0)  # a flat channel falls back to the fitted range


def test_a_crash_between_the_two_renames_is_recovered(tmp_path, model):
    model.save(tmp_path / "m")
    model.save(tmp_path / "my-m")
    # what a crash right after moving the old models aside leaves behind
    (tmp_path / "m").rename(tmp_path / ".napari-unet-tmp-old-1234abcd-m")
    (tmp_path / "my-m").rename(tmp_path / ".napari-unet-tmp-old-5678abcd-my-m")
    with pytest.raises(UserInputError, match="interrupted save"):
        Model.load(tmp_path / "m")  # loading only reads: it names the leftover
    model.config.history.append({"steps": 9})
    model.save(tmp_path / "m")  # the next save puts the old one back, then replaces it
    assert Model.load(tmp_path / "m").config.history[-1] == {"steps": 9}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".napari-unet-tmp-old-5678abcd-my-m", "m"]


def test_config_describing_an_impossible_network_is_a_clear_error(tmp_path, model):
    path = model.save(tmp_path / "m")
    config = json.loads((path / CONFIG_FILE).read_text())
    config["network"]["depth"] = 0
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(UserInputError):
        Model.load(path)


KILLED_SAVER = """
import sys, time, torch
from napari_unet.core.models.model import Model

real_save = torch.save

def slow_save(obj, path, *args, **kwargs):
    real_save(obj, path, *args, **kwargs)
    print("weights written", flush=True)
    time.sleep(60)  # killed here, before the swap

torch.save = slow_save
model = Model.load(sys.argv[1])
for p in model.network.parameters():
    p.data += 1.0
model.save(sys.argv[1])
"""


def test_sigkill_while_saving_keeps_the_previous_model(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    torch.manual_seed(0)
    Model.create(dim=2, base_channels=4, depth=2).save(tmp_path / "m")
    before = Model.load(tmp_path / "m").network.state_dict()
    saver = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVER, str(tmp_path / "m")], stdout=subprocess.PIPE, text=True
    )
    assert saver.stdout.readline().strip() == "weights written"
    os.kill(saver.pid, signal.SIGKILL)
    saver.wait()
    after = Model.load(tmp_path / "m").network.state_dict()
    for name, value in before.items():
        torch.testing.assert_close(after[name], value)
    Model.load(tmp_path / "m").save(tmp_path / "m")  # the next save removes the dead writer's temporary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_the_model_card_records_what_the_model_was_trained_on(tmp_path, nuclei_2d):
    from napari_unet.core.api import train

    model = train(
        nuclei_2d.image, nuclei_2d.strokes, steps=3, seed=4, base_channels=4, depth=2, device="cpu", image_name="a.tif"
    )
    model.save(tmp_path / "m")
    run = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())["history"][-1]
    assert run["image"] == {"name": "a.tif", "shape": [1, *nuclei_2d.image.shape], "dtype": str(nuclei_2d.image.dtype)}
    painted = {str(v): int((nuclei_2d.strokes == v).sum()) for v in (1, 2)}
    assert run["painted_voxels"] == painted and run["steps"] == 3 and run["device"] == "cpu"
    assert run["settings"]["seed"] == 4 and run["versions"]["torch"] == torch.__version__
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "A 2D U-Net (depth 2, 4 base channels" in card and "- 2: class 2" in card
    assert f"| 1 | {run['date']} | a.tif | [1, 128, 160] | 1: {painted['1']}, 2: {painted['2']} | 3 |" in card
