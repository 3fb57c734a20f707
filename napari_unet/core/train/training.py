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
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from torch.optim.swa_utils import update_bn

from ..errors import UserInputError
from ..infer.inference import labels_from_probabilities, predict_normalized
from ..models.config import TrainConfig, to_dict
from ..models.devices import resolve_device
from ..models.model import BLEND, PIXEL_CLASSIFIER, Model
from ..models.precision import autocast, precision_name, resolve_precision, use_fixed_shape_tuning
from ..validation import check_annotations
from .augment import augment
from .features import Interrupted
from .losses import sparse_loss
from .messages import Message, NewAnnotations, Preview, PreviewRequest, Report, StopTraining
from .patch_plan import default_batch_size, default_patch_size, region_block
from .pseudo_labels import pseudo_targets
from .region_prior import brightness_separation, scaled_region_weight
from .run_record import history_entry, painted_counts
from .sampling import PatchSampler
from .schedule import learning_rate_at, with_learning_rate
from .selection import FEATURE_MAP_VOXELS, Selection

MAX_NON_FINITE_STEPS = 5  # then training stops, keeping the last good weights
NORM_RECALIBRATION_BATCHES = 25  # training-like batches that re-estimate batch-norm statistics at the end
RECALIBRATION_COST = 0.4  # one such batch (forward only) costs about this share of a training step
MIN_RECALIBRATION_BATCHES = 5  # fewer give noisier statistics than training's running ones: then none
SCORE_INTERVAL_S = 2.0  # the U-Net is scored on the held-out strokes at most this often...
SCORE_SHARE = 0.1  # ...and with at most this share of the time
MIN_SCORED_UPDATES = 100  # a U-Net with fewer updates is not scored (nor shown): early ones won on held-out strokes
# yet drew worse masks than the forest; so did the pretrained start on brightfield (docs/benchmarks.md)


class _Run:
    """The state of one training run: network, optimiser, sampler and pending requests.

    With ``settings.prefetch`` (default: on GPUs), the next batch is sampled and augmented in a
    background thread while the network trains on the current one, so strokes sent in reach the
    batch after next; :meth:`close` ends that thread. On CPU cores the thread only competes with the
    network's own threads (measured 25-30% fewer steps/s on 2 cores), so batches are made in turn.
    """

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
        self.device = resolve_device(settings.device)
        self.precision = resolve_precision(settings.precision, self.device)
        self.starting_precision = self.precision  # differs from the final one after a fall-back to float32
        use_fixed_shape_tuning(self.device)
        rng = np.random.default_rng(settings.seed)
        self.generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        self.normalized = model.normalize(image)
        self.spatial = self.normalized.shape[1:]
        self.extra_axes = len(self.spatial) - model.dim
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
        )
        self.sampler = PatchSampler(
            self.normalized, self.selection.split.training, self.patch, rng, settings.uniform_patch_share
        )
        self.painted = painted_counts(annotations)
        self.scored_at, self.scoring = -math.inf, 0.0  # when the U-Net was last scored, and what it took
        self._weigh_region_term()
        self._prefetch: ThreadPoolExecutor | None = None
        self._next_batch: Future | None = None
        self.start_background: np.ndarray | None = None  # set in begin()
        self.preview_region: tuple[slice, ...] | None = None
        self.preview_wanted = self.stop_requested = False
        self.stop_within: float | None = None  # seconds the end pass may take after a Stop (None: all it needs)
        self.bad_steps = 0  # non-finite losses in a row
        self.updates = 0  # optimiser steps taken
        batch_norms = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.network.modules())
        self.recalibration_batches = NORM_RECALIBRATION_BATCHES if batch_norms else 0

    def begin(self) -> None:
        """Make the optimiser and start any prefetching (after the pixel classifier's first report:
        the optimiser's first import takes seconds, and pseudo-labels take a pass of the pixel classifier)."""
        self._new_optimizer()
        self.start_background = self._start_background()
        self._update_targets()
        prefetch = self.settings.prefetch if self.settings.prefetch is not None else self.device.type != "cpu"
        if prefetch:
            self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="napari-unet-batches")
            self._next_batch = self._prefetch.submit(self._cpu_batch)

    def _update_targets(self) -> None:
        """Train on the training strokes, plus the pixel classifier's confident voxels as pseudo-labels
        when ``pseudo_label_weight`` asks for them (see :mod:`.pseudo_labels`)."""
        strokes = self.selection.split.training
        probabilities, targets = self.selection.training_probabilities(), None
        if probabilities is not None:
            confidence = self.settings.pseudo_label_confidence
            targets = pseudo_targets(strokes, probabilities, confidence, self.start_background)
        self.sampler.update(strokes, targets)

    def _start_background(self) -> np.ndarray | None:
        """A trained start's background probability over the image, before any update (it vetoes the pixel
        classifier's object pseudo-labels, see :mod:`.pseudo_labels`); None for a new network, or without
        pseudo-labels."""
        if not self.model.config.history or self.selection.training_probabilities() is None:
            return None
        return predict_normalized(self.model, self.normalized, device=self.device, precision=self.settings.precision)[0]

    def _weigh_region_term(self) -> None:
        """The region term's weight for the current strokes (see :mod:`.region_prior`)."""
        self.separation = brightness_separation(self.normalized, self.sampler.voxels_by_class)
        self.region_weight = scaled_region_weight(
            self.separation, self.settings.region_weight, self.normalized.shape[0]
        )

    def _new_optimizer(self) -> None:
        self.network = self.model.network.place(self.device).train()
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay
        )
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == torch.float16 else None

    def _cpu_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented ``(B, C, *patch)`` images and ``(B, *patch)`` strokes in host memory (prefetch thread)."""
        images, targets = self.sampler.sample(self.batch_size)  # safe beside update(): see PatchSampler
        images_t, targets_t = torch.from_numpy(images), torch.from_numpy(targets)
        if self.extra_axes:  # a 2D model trained on planes of a stack: patches are (1, P, P)
            images_t = images_t.reshape(images_t.shape[:2] + images_t.shape[2 + self.extra_axes :])
            targets_t = targets_t.reshape(targets_t.shape[:1] + targets_t.shape[1 + self.extra_axes :])
        settings = self.settings
        if settings.augment:
            chances = settings.elastic_probability, settings.intensity_probability
            images_t, targets_t = augment(images_t, targets_t, self.generator, *chances)
        if self.device.type == "cuda":
            images_t, targets_t = images_t.pin_memory(), targets_t.pin_memory()
        return images_t, targets_t

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch on the device; a prefetched one is cut to the batch size (which may have just
        halved) and the one after it starts preparing at once."""
        if self._prefetch is None:
            images, targets = self._cpu_batch()
        else:
            images, targets = self._next_batch.result()
            self._next_batch = self._prefetch.submit(self._cpu_batch)
        images, targets = images[: self.batch_size], targets[: self.batch_size]
        return images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)

    def close(self) -> None:
        """Stop the prefetch thread, if any (after the batch it may be preparing)."""
        if self._prefetch is not None:
            self._prefetch.shutdown(wait=True, cancel_futures=True)

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
        region, pseudo = (self.region_weight, self.region_block), self.settings.pseudo_label_weight
        return sparse_loss(logits.float(), targets, images, *smoothness, *region, pseudo)

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

    def preview(self) -> Preview | None:
        """The requested region's prediction by the best candidate so far, if one was asked for since
        the last report."""
        if not self.preview_wanted:
            return None
        self.preview_wanted = False
        return self.predict_region(self.preview_region or tuple(slice(0, s) for s in self.spatial))

    def predict_region(self, region: tuple[slice, ...]) -> Preview:
        """The currently chosen candidate's labels of ``region`` of the training image."""
        chosen = self.selection.chosen
        if chosen == PIXEL_CLASSIFIER:
            return Preview(region, labels_from_probabilities(self.selection.forest_probabilities(region)))
        probabilities = predict_normalized(
            self.model,
            self.normalized[(slice(None), *region)],
            device=self.device,
            precision=precision_name(self.precision),
        )
        if chosen == BLEND:
            probabilities = self.model.combine(self.selection.forest_probabilities(region), probabilities)
        return Preview(region, labels_from_probabilities(probabilities))

    def score(self, elapsed: float, final: bool = False) -> None:
        """Score the U-Net on the held-out strokes when due (every :data:`SCORE_INTERVAL_S`, within
        :data:`SCORE_SHARE` of the time), or now when ``final``; never before :data:`MIN_SCORED_UPDATES`."""
        due = elapsed - self.scored_at >= max(SCORE_INTERVAL_S, self.scoring / SCORE_SHARE)
        if not (final or due) or self.updates < MIN_SCORED_UPDATES:
            return
        started = time.perf_counter()
        self.selection.score_unet(self.device, precision_name(self.precision))
        self.scored_at, self.scoring = elapsed, time.perf_counter() - started

    @property
    def showing(self) -> tuple[str, float | None]:
        """The chosen candidate and its held-out score."""
        chosen = self.selection.chosen
        return chosen, self.selection.scores[chosen]

    def receive_all(self, received: Message | Sequence[Message] | None) -> None:
        """Act on what the caller sent into the generator: one message, a list of them, or None."""
        for message in received if isinstance(received, (list, tuple)) else [received]:
            self.receive(message)

    def receive(self, message: Message | None) -> None:
        if isinstance(message, NewAnnotations):
            annotations = check_annotations(np.array(message.annotations, copy=True), self.spatial)
            if annotations.max() > self.model.num_classes:  # a new class was painted: widen the output layer
                self.model.grow_to(int(annotations.max()))
                self._new_optimizer()
            self.selection.update(annotations, self.settings.seed)
            self.painted = painted_counts(annotations)
            self._update_targets()
            self._weigh_region_term()
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
) -> Generator[Report, Message | Sequence[Message] | None, Model | None]:
    """Train ``model`` in place on painted voxels of ``image``; returns it when a stop condition hits.

    ``image`` is the raw ``(C, *spatial)`` image, ``annotations`` the strokes (0 = unpainted,
    1 = background, 2..K). With neither ``steps`` nor ``time_budget`` it runs until sent
    :class:`StopTraining` (or closed). ``send()`` takes one message or a list of them.
    ``interrupted`` is asked while the pixel classifier's features are computed, before the first report
    (seconds on a big 3D box, when no message can arrive): when it says so, the generator returns None at
    once and ``model`` is unchanged. A Stop received with the first report ends the run without any step.

    When it stops (not when closed), the batch-norm statistics are re-estimated for the final
    weights (see :meth:`_Run.recalibrate_norm_statistics`); a time budget includes that pass.
    """
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    step, loss, start, stopped = 0, float("nan"), time.perf_counter(), ""
    settings = with_learning_rate(settings, model)
    try:
        run = _Run(model, image, annotations, settings, interrupted)  # fits the pixel classifier: in the budget
    except Interrupted:
        return None
    stepping = 0.0  # seconds spent in optimiser steps (not in previews or the caller)
    try:
        whole = tuple(slice(0, s) for s in run.spatial)
        stopping = interrupted is not None and interrupted()  # then the Stop comes with this report's reply
        first = run.predict_region(whole) if run.normalized.size <= FEATURE_MAP_VOXELS and not stopping else None
        received = yield Report(0, loss, time.perf_counter() - start, 0.0, 0.0, str(run.device), first, *run.showing)
        run.receive_all(received)
        run.stop_requested |= interrupted is not None and interrupted()  # a Stop on its way: no set-up
        if not run.stop_requested:
            run.begin()
        setup = time.perf_counter() - start  # the U-Net's learning-rate schedule starts now
        while not run.stop_requested:
            elapsed = time.perf_counter() - start
            steps_done = settings.steps is not None and step >= settings.steps
            reserved = RECALIBRATION_COST * run.recalibration_batches * stepping / step if step else 0.0
            time_done = settings.time_budget is not None and elapsed + reserved >= settings.time_budget
            if steps_done or time_done:
                break
            learning_rate = learning_rate_at(settings, step, elapsed - setup)
            stepped_at = time.perf_counter()
            loss = run.step(learning_rate)
            stepping += time.perf_counter() - stepped_at
            step += 1
            run.score(time.perf_counter() - start)
            elapsed = time.perf_counter() - start
            rate = step / max(elapsed, 1e-9)
            report = Report(step, loss, elapsed, rate, learning_rate, str(run.device), run.preview(), *run.showing)
            run.receive_all((yield report))
            if run.bad_steps >= MAX_NON_FINITE_STEPS:
                stopped = f"stopped: the loss was not finite {run.bad_steps} steps in a row; kept the last good weights"
                warnings.warn(f"training {stopped} (check the image and strokes)", RuntimeWarning, stacklevel=2)
                break
        run.finish(time.perf_counter() - start, stepping / step if step else 0.0)
    finally:
        run.close()
    run.network.eval()
    model.pixel_classifier = run.selection.classifier
    model.config.pixel_classifier = to_dict(run.selection.config)
    model.config.selection = run.selection.record()
    model.config.history.append(
        history_entry(run, image, settings, started_at, step, loss, time.perf_counter() - start, stopped)
    )
    return model
