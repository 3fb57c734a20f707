"""The one training loop: a generator that yields :class:`Report` s and takes messages via ``send()``.

Used unchanged by the Python API, the CLI and the napari widget (which runs it in a worker
thread and sends new strokes or preview requests into it).
"""

from __future__ import annotations

import datetime
import math
import time
import warnings
from collections.abc import Callable, Generator, Sequence

import numpy as np
import torch
from torch.optim.swa_utils import update_bn

from ..errors import UserInputError
from ..models.config import TrainConfig
from ..models.devices import resolve_device
from ..models.model import Model
from ..models.precision import autocast, precision_name, resolve_precision, use_fixed_shape_tuning
from ..validation import check_annotations, check_region
from .batches import BatchSource
from .features import Interrupted
from .losses import sparse_loss
from .messages import Message, NewAnnotations, Preview, PreviewRequest, Report, StopTraining
from .optimizer import AdamW
from .patch_plan import default_batch_size, default_patch_size, region_block
from .pseudo_labels import StartLabels, confident_labels, pseudo_targets, start_labels
from .region_prior import brightness_separation, scaled_region_weight
from .run_record import history_entry, keep_run, painted_counts
from .sampling import PatchSampler
from .schedule import learning_rate_at, with_learning_rate
from .selection import Selection

MAX_NON_FINITE_STEPS = 5  # then training stops, keeping the last good weights
NORM_RECALIBRATION_BATCHES = 25  # training-like batches that re-estimate batch-norm statistics at the end
RECALIBRATION_COST = 0.4  # one such batch (forward only) costs about this share of a training step
MIN_RECALIBRATION_BATCHES = 5  # fewer give noisier statistics than training's running ones: then none
SCORE_INTERVAL_S = 2.0  # the U-Net is scored on the held-out strokes at most this often...
SCORE_SHARE = 0.1  # ...and with at most this share of the time
MIN_SCORED_UPDATES = 100  # a U-Net with fewer updates is not scored (nor shown): early ones won on held-out strokes
# yet drew worse masks than the forest; so did the pretrained start on brightfield (docs/benchmarks.md)


class _Run:
    """The state of one training run: network, optimiser, sampler, batches (:mod:`.batches`; :meth:`close`
    ends their prefetch thread, if any) and pending requests."""

    def __init__(
        self,
        model: Model,
        image: np.ndarray,
        annotations: np.ndarray,
        settings: TrainConfig,
        interrupted: Callable[[], bool] | None = None,
    ) -> None:
        self.model, self.settings = model, settings
        self.network = model.network  # placed on the device, in training mode, by begin()
        self.interrupted = interrupted
        self.device = resolve_device(settings.device)
        self.precision = resolve_precision(settings.precision, self.device)
        self.starting_precision = self.precision  # differs from the final one after a fall-back to float32
        use_fixed_shape_tuning(self.device)
        rng = np.random.default_rng(settings.seed)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        self.normalized = model.normalize(image)
        self.spatial = self.normalized.shape[1:]
        self.patch = tuple(settings.patch_size or default_patch_size(model, self.spatial))
        self.batch_size = settings.batch_size or default_batch_size(model)
        self.region_block = region_block(model)
        self.selection = Selection(
            model,
            self.normalized,
            annotations,
            settings.seed,
            training_map=settings.pseudo_label_weight > 0,
            interrupted=interrupted,
            classifier_image=model.classifier_input(image, self.normalized, fitting=True),
        )
        self.sampler = PatchSampler(
            self.normalized, self.selection.split.training, self.patch, rng, settings.uniform_patch_share
        )
        self.batches = BatchSource(self.sampler, settings, self.device, generator, len(self.spatial) - model.dim)
        self.painted = painted_counts(annotations)
        self.scored_at, self.scoring = -math.inf, 0.0  # when the U-Net was last scored, and what it took
        self._weigh_region_term()
        self.start: StartLabels | None = None  # set in begin()
        self.preview_region: tuple[slice, ...] | None = None
        self.preview_wanted = self.stop_requested = False
        self.refit_seconds = self.preview_seconds = 0.0  # what strokes and previews cost since the last report
        self.stop_within: float | None = None  # seconds the end pass may take after a Stop (None: all it needs)
        self.bad_steps = 0  # non-finite losses in a row
        self.updates = 0  # optimiser steps taken
        batch_norms = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.network.modules())
        self.recalibration_batches = NORM_RECALIBRATION_BATCHES if batch_norms else 0

    def begin(self) -> None:
        """After the first report: the pseudo-labels' pass of the pixel classifier (a Stop may interrupt it:
        the run then ends without a step), the optimiser, a trained start's labels, any prefetching."""
        try:
            self.selection.training_probabilities(self.interrupted)
        except Interrupted:
            self.stop_requested = True
            return
        self._new_optimizer()
        if self.selection.training_probabilities() is not None:  # what a trained start knew, for pseudo-labels
            self.start = start_labels(self.model, self.normalized, self.settings, self.device)
            if self.start is not None and not self.model.config.selection:  # never trained on strokes: a
                self.selection.keep_start(self.start.labels, self.network)  # candidate as it is (keep_start)
        self._update_targets()
        prefetch = self.settings.prefetch if self.settings.prefetch is not None else self.device.type != "cpu"
        if prefetch:
            self.batches.start_prefetch(self.batch_size)

    def _update_targets(self, interrupted: Callable[[], bool] | None = None) -> None:
        """Train on the training strokes, plus the pixel classifier's confident voxels as pseudo-labels
        when ``pseudo_label_weight`` asks for them (see :mod:`.pseudo_labels`); ``interrupted`` as in
        :mod:`.features`."""
        strokes = self.selection.split.training
        probabilities, targets = self.selection.training_probabilities(interrupted), None
        if probabilities is not None:
            confidence, fill = self.settings.pseudo_label_confidence, self.settings.start_label_weight > 0
            targets = pseudo_targets(strokes, probabilities, confidence, self.start, fill)
            if self.selection.start_candidate:  # still one as it is? (see Selection.judge_start)
                self.selection.judge_start(confident_labels(probabilities, confidence), self.start.confident)
        self.sampler.update(strokes, targets)

    def _weigh_region_term(self) -> None:
        """The region term's weight for the current strokes (see :mod:`.region_prior`)."""
        self.separation = brightness_separation(self.normalized, self.sampler.voxels_by_class)
        self.region_weight = scaled_region_weight(
            self.separation, self.settings.region_weight, self.normalized.shape[0]
        )

    def _new_optimizer(self) -> None:
        self.network = self.model.network.place(self.device).train()
        self.optimizer = AdamW(
            self.network.parameters(), lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay
        )
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == torch.float16 else None

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches.next(self.batch_size)

    def close(self) -> None:
        self.batches.close()

    def step(self, learning_rate: float) -> float:
        """One optimiser step; returns the loss (NaN for a skipped step). Out of device memory, the
        step is retried with half the patches, with a warning."""
        buffers = [buffer.clone() for buffer in self.network.buffers()]  # norm statistics: a few kB
        try:
            return self._step(learning_rate, buffers)
        except torch.cuda.OutOfMemoryError:
            self._restore(buffers)
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if self.batch_size == 1:
                raise UserInputError(
                    f"out of {self.device.type} memory even for one patch of {'×'.join(map(str, self.patch))}: "
                    "close other programs or train on the CPU"
                ) from None
            self.batch_size //= 2
            warnings.warn(
                f"out of {self.device.type} memory: training goes on with {self.batch_size} patches per step",
                RuntimeWarning,
                stacklevel=2,
            )
            return self.step(learning_rate)

    def _step(self, learning_rate: float, buffers: list[torch.Tensor]) -> float:
        images, targets = self._batch()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        loss = self._backward(images, targets)
        if loss is None and self.precision != torch.float32:
            self._restore(buffers)
            self._fall_back_to_float32()
            loss = self._backward(images, targets)
        if loss is None:  # skip the update and undo the statistics: the last good model stays
            self._restore(buffers)
            self.bad_steps += 1
            return float("nan")
        self.bad_steps = 0
        if self.scaler is None:
            self.optimizer.step()
        else:  # overflowing gradients: the scaler skips the step and lowers the scale
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scaler.get_scale() < 1:  # overflow even unscaled: float16 cannot hold these gradients
                self._fall_back_to_float32()
        self.updates += 1
        return loss

    def _backward(self, images: torch.Tensor, targets: torch.Tensor) -> float | None:
        """The gradients of one batch; returns its loss, or None (and no gradients) when the loss or
        the gradients are not finite."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(images, targets)
        if self.scaler is None:
            loss.backward()
            gradients = [p.grad for p in self.network.parameters() if p.grad is not None]
            finite = torch.isfinite(loss) & torch.isfinite(torch.nn.utils.get_total_norm(gradients))
        else:  # float16: scaled gradients (overflow is handled by the scaler, see _step)
            self.scaler.scale(loss).backward()
            finite = torch.isfinite(loss)
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        return float(loss.detach())

    def _loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The sparse loss of one batch: the network in ``self.precision``, the loss in float32."""
        with autocast(self.device, self.precision):
            logits = self.network(images)
        smoothness = self.settings.smoothness_weight, self.settings.smoothness_sigma
        region = self.region_weight, self.region_block
        pseudo = self.settings.pseudo_label_weight, self.settings.start_label_weight
        return sparse_loss(logits.float(), targets, images, *smoothness, *region, *pseudo)

    def _fall_back_to_float32(self) -> None:
        """A non-finite loss or gradient in reduced precision: the rest of the run computes in float32."""
        message = f"training overflowed {precision_name(self.precision)}: it goes on in float32"
        warnings.warn(message, RuntimeWarning, stacklevel=4)
        self.precision, self.scaler = torch.float32, None

    def recalibrate_norm_statistics(self, batches: int | None = None) -> None:
        """Re-estimate the batch-norm running statistics for the final weights ("precise BN").

        During training they are a moving average over weights that kept changing; prediction (in
        eval mode) is better served by their plain average over ``recalibration_batches`` fresh
        training-like batches (sampled and augmented as in training) through the final network,
        without gradients. A network without batch norm has none to re-estimate.
        """
        batches = self.recalibration_batches if batches is None else batches
        if batches:
            with autocast(self.device, self.precision):
                update_bn((self._batch()[0] for _ in range(batches)), self.network)

    def finish(self, elapsed: float, seconds_per_step: float) -> None:
        """The end pass: batch-norm statistics for the final weights, then the final held-out score. The
        statistics take at most what is left of a time budget, and half of ``stop_within`` after a Stop, which
        also skips the final score when the last one took longer (see :class:`.messages.StopTraining`)."""
        batches = self.recalibration_batches if self.updates else 0
        allowance = math.inf if self.stop_within is None else self.stop_within / 2
        if self.settings.time_budget is not None:
            allowance = min(allowance, max(0.0, self.settings.time_budget - elapsed))
        if math.isfinite(allowance):
            affordable = int(allowance / max(RECALIBRATION_COST * seconds_per_step, 1e-9))
            batches = min(batches, affordable) if affordable >= MIN_RECALIBRATION_BATCHES else 0
        if batches:
            self.recalibrate_norm_statistics(batches)
        if self.stop_within is None or self.scoring <= self.stop_within / 2:
            self.score(elapsed, final=True)

    def _restore(self, buffers: list[torch.Tensor]) -> None:
        for buffer, saved in zip(self.network.buffers(), buffers):
            buffer.copy_(saved)

    def report(self, step: int, loss: float, elapsed: float, learning_rate: float, preview: Preview | None) -> Report:
        """The report after ``step``, with what the last strokes and ``preview`` cost."""
        rate = step / max(elapsed, 1e-9)
        showing = self.selection.chosen  # and its held-out score
        score = self.selection.score_of(showing)
        costs = {"refit_seconds": self.refit_seconds, "preview_seconds": self.preview_seconds}
        self.refit_seconds = self.preview_seconds = 0.0
        return Report(step, loss, elapsed, rate, learning_rate, str(self.device), preview, showing, score, **costs)

    def preview(self) -> Preview | None:
        """The requested region's prediction by the best candidate so far, if one was asked for since
        the last report."""
        if not self.preview_wanted:
            return None
        self.preview_wanted = False
        started = time.perf_counter()
        preview = self.predict_region(self.preview_region or tuple(slice(0, s) for s in self.spatial))
        self.preview_seconds = time.perf_counter() - started
        return preview

    def predict_region(self, region: tuple[slice, ...]) -> Preview | None:
        """The chosen candidate's labels of ``region``; None when a Stop interrupted them (it comes with the
        reply to this report)."""
        labels = self.selection.labels_of(region, self.device, precision_name(self.precision), self.interrupted)
        return None if labels is None else Preview(region, labels)

    def score(self, elapsed: float, final: bool = False) -> None:
        """Score the U-Net on the held-out strokes when due (every :data:`SCORE_INTERVAL_S`, within
        :data:`SCORE_SHARE` of the time), or now when ``final``; never before :data:`MIN_SCORED_UPDATES`."""
        due = elapsed - self.scored_at >= max(SCORE_INTERVAL_S, self.scoring / SCORE_SHARE)
        if not (final or due) or self.updates < MIN_SCORED_UPDATES:
            return
        started = time.perf_counter()
        self.selection.score_unet(self.device, precision_name(self.precision))
        self.scored_at, self.scoring = elapsed, time.perf_counter() - started

    def receive_all(self, received: Message | Sequence[Message] | None) -> None:
        """Act on what the caller sent into the generator: one message, a list of them, or None."""
        for message in received if isinstance(received, (list, tuple)) else [received]:
            self.receive(message)

    def _take_strokes(self, annotations: np.ndarray) -> None:
        """Refit on new strokes. ``interrupted`` may stop the refit (:class:`.features.Interrupted`) before
        anything changed, or while the pseudo-labels are remade: the classifier, the split and any new class
        are then the new strokes', the training targets still the previous ones."""
        classes = max(self.model.num_classes, int(annotations.max()))
        self.selection.update(annotations, self.settings.seed, self.interrupted, classes)
        if classes > self.model.num_classes:  # a new class was painted: widen the output layer
            self.model.grow_to(classes)
            self._new_optimizer()
        self.painted = painted_counts(annotations)
        self._update_targets(self.interrupted)
        self._weigh_region_term()

    def receive(self, message: Message | None) -> None:
        if isinstance(message, NewAnnotations):
            started = time.perf_counter()
            try:
                self._take_strokes(check_annotations(np.array(message.annotations, copy=True), self.spatial))
            except Interrupted:  # a Stop during the refit: the previous strokes' fit stays, and no end pass
                self.stop_requested = True  # (the Stop's own message, with its deadline, has not arrived)
                self.stop_within = 0.0 if self.stop_within is None else self.stop_within
            self.refit_seconds += time.perf_counter() - started
        elif isinstance(message, PreviewRequest):
            self.preview_region, self.preview_wanted = message.region, True
        elif isinstance(message, StopTraining):
            self.stop_requested, self.stop_within = True, message.within


def train_steps(
    model: Model,
    image: np.ndarray,
    annotations: np.ndarray,
    settings: TrainConfig,
    interrupted: Callable[[], bool] | None = None,
    preview_region: tuple[slice, ...] | None = None,
) -> Generator[Report, Message | Sequence[Message] | None, Model | None]:
    """Train ``model`` in place on painted voxels of ``image``; returns it when a stop condition hits.

    ``image`` is the raw ``(C, *spatial)`` image, ``annotations`` the strokes (0 = unpainted,
    1 = background, 2..K). With neither ``steps`` nor ``time_budget`` it runs until sent
    :class:`StopTraining` (or closed). ``send()`` takes one message or a list of them.
    ``interrupted`` is asked while the first report is made (seconds on a big 3D box, when no message can
    arrive): if it says so before the pixel classifier is fitted, the generator returns None and ``model``
    is unchanged; later, the run ends without a step. When it stops (not when closed), the batch-norm
    statistics are re-estimated for the final weights; a time budget includes that pass. The first report
    carries a preview of ``preview_region`` (spatial slices), or else of the whole image when that is cheap
    (its pixel-classifier features are kept), or else none.
    """
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    step, loss, start, stopped = 0, float("nan"), time.perf_counter(), ""
    settings = with_learning_rate(settings, model)
    check_region(preview_region, image.shape[1:], "preview region")
    try:
        run = _Run(model, image, annotations, settings, interrupted)  # fits the pixel classifier: in the budget
    except Interrupted:
        return None
    fastest_step = math.inf  # an optimiser step's seconds, the fastest seen (the first carries one-time costs)
    try:
        run.preview_region = preview_region
        run.preview_wanted = preview_region is not None or run.selection.features_kept
        run.receive_all((yield run.report(0, loss, time.perf_counter() - start, 0.0, run.preview())))
        run.stop_requested |= interrupted is not None and interrupted()  # a Stop on its way: no set-up
        if not run.stop_requested:
            run.begin()
        setup = time.perf_counter() - start  # the U-Net's learning-rate schedule starts now
        while not run.stop_requested:
            elapsed = time.perf_counter() - start
            steps_done = settings.steps is not None and step >= settings.steps
            reserved = RECALIBRATION_COST * run.recalibration_batches * fastest_step if step > 1 else 0.0
            time_done = settings.time_budget is not None and elapsed + reserved >= settings.time_budget
            if steps_done or time_done:
                break
            learning_rate = learning_rate_at(settings, step, elapsed - setup)
            stepped_at = time.perf_counter()
            loss = run.step(learning_rate)
            fastest_step = min(fastest_step, time.perf_counter() - stepped_at)
            step += 1
            run.score(time.perf_counter() - start)
            preview = run.preview()
            run.receive_all((yield run.report(step, loss, time.perf_counter() - start, learning_rate, preview)))
            if run.bad_steps >= MAX_NON_FINITE_STEPS:
                stopped = f"stopped: the loss was not finite {run.bad_steps} steps in a row; kept the last good weights"
                warnings.warn(f"training {stopped} (check the image and strokes)", RuntimeWarning, stacklevel=2)
                break
        run.finish(time.perf_counter() - start, fastest_step if step else 0.0)
        run.selection.restore_start(model.network)  # the start, unchanged, when it is the choice
    finally:
        run.close()
    run.network.eval()
    keep_run(
        model, run, history_entry(run, image, settings, started_at, step, loss, time.perf_counter() - start, stopped)
    )
    return model
