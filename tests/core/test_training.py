"""The training generator: reports, stop conditions, new strokes and previews via send(), fine-tuning."""

import numpy as np
import pytest
import torch

from napari_unet.core.api import predict, prepare_model, train
from napari_unet.core.errors import UserInputError
from napari_unet.core.instances.metrics import foreground_iou
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.train.messages import NewAnnotations, PreviewRequest, Report, StopTraining
from napari_unet.core.train.training import train_steps

FAST = {"batch_size": 2, "patch_size": None, "device": "cpu", "seed": 0}


def _loop(sample, steps=3, **settings):
    image = sample.image[None]
    model, strokes = prepare_model(image, sample.strokes)
    config = TrainConfig(steps=steps, time_budget=None, **{**FAST, **settings})
    return model, train_steps(model, image, strokes, config)


def test_generator_yields_reports_and_returns_the_model(nuclei_2d):
    model, loop = _loop(nuclei_2d, steps=3)
    reports = []
    with pytest.raises(StopIteration) as finished:
        while True:
            reports.append(next(loop))
    assert [r.step for r in reports] == [0, 1, 2, 3]  # step 0: the pixel classifier, before any U-Net step
    assert all(isinstance(r, Report) and r.device == "cpu" for r in reports)
    assert all(np.isfinite(r.loss) for r in reports[1:])
    assert finished.value.value is model
    assert model.config.history[-1]["steps"] == 3
    assert model.config.history[-1]["painted_voxels"].keys() == {"1", "2"}


def test_interrupted_while_the_first_fit_is_made_returns_none_and_leaves_the_model(nuclei_2d):
    image = nuclei_2d.image[None]
    model, strokes = prepare_model(image, nuclei_2d.strokes, init=None)
    weights = [p.detach().clone() for p in model.network.parameters()]
    loop = train_steps(model, image, strokes, TrainConfig(steps=3, **FAST), interrupted=lambda: True)
    with pytest.raises(StopIteration) as finished:
        next(loop)
    assert finished.value.value is None
    assert model.config.history == [] and model.pixel_classifier is None
    assert all(torch.equal(p, w) for p, w in zip(model.network.parameters(), weights))


def test_stop_with_the_first_report_ends_without_a_step(nuclei_2d):
    model, loop = _loop(nuclei_2d, steps=None)
    assert next(loop).step == 0
    with pytest.raises(StopIteration) as finished:
        loop.send(StopTraining())
    assert finished.value.value is model
    assert model.config.history[-1]["steps"] == 0
    assert model.pixel_classifier is not None  # the first mask's classifier is kept


def test_time_budget_stops_training(nuclei_2d):
    model = train(nuclei_2d.image, nuclei_2d.strokes, time_budget=1.5, steps=None, **FAST)
    # the budget includes the final pass that re-estimates batch-norm statistics (its time is estimated)
    assert 1.0 <= model.config.history[-1]["seconds"] < 10


def test_preview_request_returns_the_region(nuclei_2d):
    _, loop = _loop(nuclei_2d, steps=5)
    first = next(loop)  # the pixel classifier's mask of the whole image, at once
    assert first.step == 0 and first.preview.labels.shape == nuclei_2d.image.shape
    assert next(loop).preview is None
    region = (slice(10, 50), slice(20, 90))
    report = loop.send(PreviewRequest(region))
    assert report.preview is not None and report.preview.region == region
    assert report.preview.labels.shape == (40, 70) and set(np.unique(report.preview.labels)) <= {1, 2}
    assert next(loop).preview is None  # one request, one preview


@pytest.mark.parametrize("prefetch", [False, True])
def test_new_strokes_are_used_without_restarting(nuclei_2d, prefetch):
    model, loop = _loop(nuclei_2d, steps=50, prefetch=prefetch)
    next(loop)
    more = nuclei_2d.strokes.copy()
    more[:3, :3] = 3  # a third class painted during training
    loop.send(NewAnnotations(more))
    more[:3, :3] = 0  # the trainer keeps its own copy
    report = next(loop)
    assert loop.gi_frame.f_locals["run"].sampler.classes == [1, 2, 3]
    assert np.isfinite(report.loss)
    assert model.num_classes == 3 and model.network.head.out_channels == 3
    next(loop)  # the batch prefetched before the new strokes is used up; this one has them
    loop.close()


def test_a_stop_during_a_refit_ends_the_run_with_the_previous_fit(nuclei_2d):
    """The refit hears the Stop (the caller's ``interrupted``) and gives up before changing anything: the
    new class is not added, the classifier of the earlier strokes is kept, and the run ends."""
    image = nuclei_2d.image[None]
    model, strokes = prepare_model(image, nuclei_2d.strokes)
    stopping = []
    config = TrainConfig(steps=None, time_budget=None, **FAST)
    loop = train_steps(model, image, strokes, config, interrupted=lambda: bool(stopping))
    next(loop)
    next(loop)
    run = loop.gi_frame.f_locals["run"]
    classifier, split = run.selection.classifier, run.selection.split
    more = nuclei_2d.strokes.copy()
    more[:3, :3] = 3
    stopping.append(True)  # Stop pressed: the dock's event is set before its message arrives
    with pytest.raises(StopIteration) as finished:
        loop.send(NewAnnotations(more))
    assert finished.value.value is model
    assert model.num_classes == 2 and run.selection.classifier is classifier and run.selection.split is split
    assert run.stop_within == 0.0  # no end pass: the Stop's own message, with its deadline, was not read
    assert model.config.history[-1]["painted_voxels"].keys() == {"1", "2"}


def test_bad_strokes_sent_during_training_are_refused(nuclei_2d):
    _, loop = _loop(nuclei_2d, steps=50)
    next(loop)
    with pytest.raises(UserInputError, match="nothing is painted"):
        loop.send(NewAnnotations(np.zeros_like(nuclei_2d.strokes)))


def test_learns_bright_objects_from_a_few_strokes(nuclei_2d):
    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=60, time_budget=None, **FAST)
    from napari_unet.core.api import predict

    labels = predict(model, nuclei_2d.image, device="cpu").labels
    assert foreground_iou(labels == 2, nuclei_2d.instances > 0) > 0.6


def test_3d_and_2d_on_stack(nuclei_3d):
    model3d = train(nuclei_3d.image, nuclei_3d.strokes, spacing=nuclei_3d.spacing, steps=2, time_budget=None, **FAST)
    assert model3d.dim == 3 and model3d.config.network.pool_strides[0] == [2, 2, 2]
    coarse_z = train(nuclei_3d.image, nuclei_3d.strokes, spacing=(5.0, 1.0, 1.0), steps=1, time_budget=None, **FAST)
    assert coarse_z.config.network.pool_strides[0] == [1, 2, 2]
    model2d = train(nuclei_3d.image, nuclei_3d.strokes, dim=2, steps=2, time_budget=None, **FAST)
    assert model2d.dim == 2 and model2d.config.history[-1]["patch_size"][0] == 1


def test_fine_tuning_adapts_the_class_count(nuclei_2d, tmp_path):
    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=2, time_budget=None, **FAST)
    model.save(tmp_path / "start")
    strokes = nuclei_2d.strokes.copy()
    strokes[:2, :2] = 3
    tuned = train(nuclei_2d.image, strokes, init=tmp_path / "start", steps=2, time_budget=None, **FAST)
    assert tuned.num_classes == 3 and len(tuned.config.history) == len(model.config.history) + 1
    with pytest.raises(UserInputError, match="dim"):
        train(nuclei_2d.image, strokes, init=tmp_path / "start", dim=3, steps=1, time_budget=None)


def test_training_needs_a_stop_condition(nuclei_2d):
    with pytest.raises(UserInputError, match="give steps"):
        train(nuclei_2d.image, nuclei_2d.strokes, steps=None, time_budget=None)


def test_multichannel_training(nuclei_2d):
    image = np.stack([nuclei_2d.image, nuclei_2d.image[::-1]], axis=-1)
    model = train(image, nuclei_2d.strokes, channel_axis=-1, steps=2, time_budget=None, **FAST)
    assert model.in_channels == 2 and len(model.config.normalization.fitted) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 0, "time_budget": None}, "steps"),
        ({"time_budget": 0}, "time budget"),
        ({"batch_size": 0}, "batch size"),
    ],
)
def test_impossible_stop_conditions_are_refused(nuclei_2d, options, message):
    with pytest.raises(UserInputError, match=message):
        train(nuclei_2d.image, nuclei_2d.strokes, **options)


def test_default_batch_size_depends_on_the_network(nuclei_2d, nuclei_3d):
    two_d = train(nuclei_2d.image, nuclei_2d.strokes, steps=1, time_budget=None, device="cpu")
    three_d = train(nuclei_3d.image, nuclei_3d.strokes, spacing=nuclei_3d.spacing, steps=1, time_budget=None)
    assert two_d.config.history[-1]["batch_size"] == 8 and three_d.config.history[-1]["batch_size"] == 4


def test_the_same_seed_gives_the_same_model(nuclei_2d):
    import torch

    from napari_unet.core.api import train

    first = train(nuclei_2d.image, nuclei_2d.strokes, steps=3, seed=5, base_channels=4, depth=2, device="cpu")
    torch.manual_seed(123)  # whatever ran before must not matter
    second = train(nuclei_2d.image, nuclei_2d.strokes, steps=3, seed=5, base_channels=4, depth=2, device="cpu")
    for a, b in zip(first.network.state_dict().values(), second.network.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_batch_norm_statistics_are_re_estimated_for_the_final_weights(nuclei_2d, monkeypatch):
    """Precise BN: after the last step, the running statistics are a plain average over fresh
    training-like batches; the weights are untouched and the norms' momentum is restored."""
    import torch

    from napari_unet.core.train import training

    def trained(batches: int):
        monkeypatch.setattr(training, "NORM_RECALIBRATION_BATCHES", batches)
        return train(nuclei_2d.image, nuclei_2d.strokes, steps=3, seed=5, base_channels=4, depth=2, device="cpu")

    plain, precise = trained(0), trained(7)

    def batch_norms(model):
        return [m for m in model.network.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    norms = batch_norms(precise)
    assert norms and all(int(n.num_batches_tracked) == 7 and n.momentum == 0.1 for n in norms)
    for a, b in zip(plain.network.parameters(), precise.network.parameters()):
        torch.testing.assert_close(a, b)
    moved = [not torch.allclose(a.running_var, b.running_var) for a, b in zip(batch_norms(plain), norms)]
    assert any(moved) and not precise.network.training
    labels = predict(precise, nuclei_2d.image, device="cpu").labels
    assert labels.shape == nuclei_2d.image.shape and set(np.unique(labels)) <= {1, 2}


def test_prefetching_batches_in_a_thread_gives_the_same_model(nuclei_2d):
    """The GPU default (next batch made in a background thread) draws the same batches in the same order."""
    import threading

    import torch

    from napari_unet.core.api import train

    def trained(prefetch: bool):
        return train(
            nuclei_2d.image,
            nuclei_2d.strokes,
            steps=4,
            seed=5,
            base_channels=4,
            depth=2,
            device="cpu",
            prefetch=prefetch,
        )

    threads_before = threading.active_count()
    with_thread, in_turn = trained(True), trained(False)
    for a, b in zip(with_thread.network.state_dict().values(), in_turn.network.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert threading.active_count() == threads_before  # the prefetch thread ended with training


def test_non_finite_losses_are_skipped_then_training_stops_with_the_last_good_weights(nuclei_2d, monkeypatch):
    import torch

    from napari_unet.core.api import train
    from napari_unet.core.train import training

    real_loss = training.sparse_loss
    calls = {"n": 0}
    snapshots = []

    def failing_after_three_steps(*args, **kwargs):  # e.g. an fp16 overflow or corrupt data
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss if calls["n"] <= 3 else loss * float("nan")

    def record(report):
        snapshots.append({k: v.clone() for k, v in model_ref["model"].network.state_dict().items()})

    monkeypatch.setattr(training, "sparse_loss", failing_after_three_steps)
    model_ref = {}
    real_run = training._Run

    class Recording(real_run):
        def __init__(self, model, *args):
            model_ref["model"] = model
            super().__init__(model, *args)

    monkeypatch.setattr(training, "_Run", Recording)
    with pytest.warns(RuntimeWarning, match="not finite 5 steps in a row"):
        model = train(
            nuclei_2d.image,
            nuclei_2d.strokes,
            steps=50,
            base_channels=4,
            depth=2,
            device="cpu",
            precision="fp32",  # bfloat16 would first redo the step in float32 (test_precision.py)
            callback=record,
        )
    assert calls["n"] == 3 + training.MAX_NON_FINITE_STEPS  # stopped early, not after 50 steps
    for later in snapshots[4:]:  # snapshots[0]: the report before the first step
        for name, value in later.items():
            torch.testing.assert_close(value, snapshots[3][name])  # no update from a non-finite loss
    assert "kept the last good weights" in model.config.history[-1]["stopped"]
    assert all(torch.isfinite(v).all() for v in model.network.state_dict().values() if v.is_floating_point())


def test_out_of_memory_in_training_halves_the_batch_and_goes_on(nuclei_2d, monkeypatch):
    import torch

    from napari_unet.core.api import train
    from napari_unet.core.train import training

    batches = []
    real_run = training._Run

    class SmallGpu(real_run):  # fakes a device that holds two patches at a time
        def _batch(self):
            images, targets = super()._batch()
            batches.append(images.shape[0])
            if images.shape[0] > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (faked)")
            return images, targets

    monkeypatch.setattr(training, "_Run", SmallGpu)
    with pytest.warns(RuntimeWarning, match="training goes on with 2 patches per step"):
        model = train(nuclei_2d.image, nuclei_2d.strokes, steps=5, base_channels=4, depth=2, device="cpu")
    assert batches[:3] == [8, 4, 2] and set(batches[3:]) == {2}
    assert model.config.history[-1]["steps"] == 5 and model.config.history[-1]["batch_size"] == 2


def test_a_stop_with_a_deadline_cuts_the_end_pass(nuclei_2d, monkeypatch):
    """StopTraining(within=...) skips the batch-norm recalibration it cannot afford; a plain Stop keeps it."""
    from napari_unet.core.train import training

    recalibrated = []
    original = training._Run.recalibrate_norm_statistics
    monkeypatch.setattr(
        training._Run,
        "recalibrate_norm_statistics",
        lambda run, batches=None: recalibrated.append(batches) or original(run, batches),
    )
    image = nuclei_2d.image[None]
    for stop, expected in ((StopTraining(), [25]), (StopTraining(within=1e-6), [])):
        model, strokes = prepare_model(image, nuclei_2d.strokes, base_channels=4, depth=2)
        loop = train_steps(model, image, strokes, TrainConfig(time_budget=None, device="cpu", seed=0, batch_size=2))
        for _ in range(3):
            next(loop)
        with pytest.raises(StopIteration):
            loop.send(stop)
        assert recalibrated == expected
        recalibrated.clear()
