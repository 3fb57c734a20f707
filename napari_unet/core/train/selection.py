"""Which mask the user sees: the pixel classifier first, then the blend with the U-Net (or the U-Net) when
held-out strokes say so (see :mod:`.holdout` and :func:`best_candidate`); a trained start as it is while
it gets every painted voxel right (:meth:`Selection.keep_start`), and a start that gets most of them right
gives the U-Net more weight in the blend (:data:`START_TRUSTED`). Used by the trainer; the choice is stored
in the model. Candidates are chosen on the blend at
:data:`~napari_unet.core.models.model.BLEND_WEIGHT`; :meth:`Selection.score_of` gives the one shown.

The pixel classifier is fitted twice: on the training share (to score it) and on every stroke (the one
shown and kept: cheap, and never worse than the forest a user would otherwise run). The U-Net trains on
the training share only, so its score is honest; it is scored on small windows around the held-out voxels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..infer.inference import labels_from_probabilities, predict_normalized
from ..infer.predictor import tile_predictor
from ..infer.specks import without_specks
from ..models.model import BLEND, BLEND_WEIGHT, PIXEL_CLASSIFIER, START, UNET, Model
from ..models.precision import resolve_precision
from .features import Interrupted, check
from .holdout import held_out_score, held_out_windows, split_strokes
from .pixel_classifier import (
    PREDICT_BLOCK,
    PixelClassifier,
    PixelClassifierConfig,
    feature_map,
    features_at,
    subsample_painted,
)
from .pseudo_labels import start_contradicted

# voxels × network channels up to which all features are computed once and kept (~0.5 GB; ~1.5 GB for an RGB
# image the network sees as grey, whose classifier has three channels' features)
FEATURE_MAP_VOXELS = 6_000_000
MARGIN = 0.1  # held-out balanced accuracy another candidate must gain over the pixel classifier to replace it
GUIDED_TOLERANCE = 0.02  # ...or, for a U-Net trained on its pseudo-labels, what the blend may lose and still win,
MIN_LEAD_VOXELS = 5  # ...or lose by fewer held-out voxels than this (a sign test's p ≈ 0.03 at 5 to 0)
WHOLE_MAP_SHARE = 0.75  # once the previews since a fit add up to this share of the image, it is mapped whole
# A trained start is kept as it is while it gets this share of every class's painted voxels right: all of them. It
# never trained on a stroke, so every stroke checks it; fine-tuning that the strokes do not ask for lowered a
# good start on some real images (docs/benchmarks.md), and a stroke that corrects it (one voxel is enough) lets
# the fine-tuned candidates take over...
START_AGREEMENT = 1.0
# ...unless the pixel classifier calls more than this share of the start's confident objects background (see
# .pseudo_labels.start_contradicted): on brightfield the start paints whole cells, yet a few strokes can all agree
START_CONTRADICTED_MAX = 0.1
# A classifier fitted on fewer training voxels of an object class than this does not judge the start's objects of
# that class: a handful of voxels is no evidence (9774c8239632 seed 1: fitted on 2 nucleus voxels, it called 46% of
# a start's nuclei background, and the start was right; the brightfield crop the gate is for has 7)
MIN_JUDGING_VOXELS = 5
# A start that gets at least this share of every class's strokes right (and is not contradicted, as above)
# vouches for the fine-tuned U-Net while the U-Net's objects overlap the start's by at least
# NETWORK_START_AGREEMENT (IoU on the held-out windows): the blend then gives the U-Net VOUCHED_BLEND_WEIGHT,
# so the pixel classifier's errors where no stroke reaches (stain between nuclei) weigh less. Not the U-Net
# alone: its sharper probabilities split touching nuclei worse (--instances; docs/benchmarks.md)
START_TRUSTED = 0.9
NETWORK_START_AGREEMENT = 0.85
VOUCHED_BLEND_WEIGHT = 0.65
VOUCHED_UNET_TOLERANCE = 0.02  # ...and only while the U-Net's held-out score is at most this below the blend's


class Selection:
    """Candidates, their held-out scores and the current choice for one training image.

    ``normalized`` is the ``(C, *spatial)`` training image, ``annotations`` every stroke;
    ``classifier_image`` what the pixel classifier sees of it (see :meth:`Model.classifier_input`; None:
    ``normalized``). With
    ``training_map``, the training-share classifier's map of the whole image is available too
    (:meth:`training_probabilities`, for pseudo-labels; not for images too big for one feature map).
    ``interrupted`` may end the first fit early (:class:`.features.Interrupted`).
    """

    def __init__(
        self,
        model: Model,
        normalized: np.ndarray,
        annotations: np.ndarray,
        seed: int | None,
        training_map: bool = False,
        interrupted: Callable[[], bool] | None = None,
        classifier_image: np.ndarray | None = None,
    ) -> None:
        self.model, self.normalized, self.training_map = model, normalized, training_map
        self.classifier_image = normalized if classifier_image is None else classifier_image
        self.config = PixelClassifierConfig.for_dim(model.dim)
        self._start_labels: np.ndarray | None = None  # (*spatial) a trained start's mask, see keep_start
        self._start_contradicted: float | None = None  # see judge_start
        self._start_weights: dict[str, torch.Tensor] | None = None
        self._start_classes = 0  # the start's output classes: a network grown since cannot be given back
        self._features: np.ndarray | None = None  # (*spatial, F): every voxel's features, for small images
        if normalized.size <= FEATURE_MAP_VOXELS:
            self._features = feature_map(self.classifier_image, model.dim, self.config, interrupted)
        self.update(annotations, seed, interrupted)

    def update(
        self,
        annotations: np.ndarray,
        seed: int | None,
        interrupted: Callable[[], bool] | None = None,
        num_classes: int | None = None,
    ) -> None:
        """New strokes: split them, fit the pixel classifier over ``num_classes`` classes (None: the model's)
        and score it; the U-Net's score is stale. ``interrupted``: see :mod:`.features`; when it stops an
        update, nothing has changed (the previous fit stays). A trained start waits for :meth:`judge_start`."""
        model, config = self.model, self.config
        split = split_strokes(annotations, seed)
        voxels = np.union1d(subsample_painted(annotations, config.max_voxels_per_class, config.seed), split.voxels)
        if self._features is not None:
            features = self._features.reshape(-1, self._features.shape[-1])[voxels]
        else:
            features = features_at(self.classifier_image, voxels, model.dim, config, interrupted)
        labels = annotations.ravel()[voxels]
        training = split.training.ravel()[voxels] > 0
        held = np.isin(voxels, split.voxels)
        options = {"dim": model.dim, "num_classes": num_classes or model.num_classes, "config": config}
        check(interrupted)
        classifier = PixelClassifier(features[labels > 0], labels[labels > 0], **options)
        check(interrupted)
        scored = PixelClassifier(features[training], labels[training], **options) if held.any() else classifier
        check(interrupted)
        forest_held = scored.probabilities_of(features[held], interrupted)
        fitted = labels[training] if held.any() else labels[labels > 0]  # what the judging classifier saw
        self._judge_counts = np.bincount(fitted, minlength=options["num_classes"] + 1)  # (see judge_start)
        self.split, self.classifier, self.forest_held, self.held_labels = split, classifier, forest_held, labels[held]
        self.windows = held_out_windows(split.voxels, self.normalized.shape[1:], model.dim)
        self.scores: dict[str, float | None] = {PIXEL_CLASSIFIER: held_out_score(self.forest_held, self.held_labels)}
        self.scores[UNET] = self.scores[BLEND] = None
        self.classifier_lead: int | None = None  # held-out voxels the classifier gets right beyond the blend
        self.network_start_agreement: float | None = None  # see START_TRUSTED (None: no objects to compare)
        self._vouched_blend_score: float | None = None  # the blend's held-out score at VOUCHED_BLEND_WEIGHT
        self._painted = np.flatnonzero(annotations), annotations[annotations > 0]  # (voxels, values), flat order
        if self._start_labels is not None:
            self.scores[START] = self._start_agreement()
        self._start_contradicted = None  # until the new classifier judges the start
        self.start_unjudged: list[int] = []  # object classes it saw too few voxels of to judge (MIN_JUDGING_VOXELS)
        self.chosen, self.start_vouched, self.blend_weight = PIXEL_CLASSIFIER, False, BLEND_WEIGHT
        self._forest_map: np.ndarray | None = None  # the classifier's map of the whole image, once worth it
        self._mapped_alone = 0  # voxels of the regions mapped on their own since the fit
        self._training_map: np.ndarray | None = None
        self._training_fit: PixelClassifier | None = None  # made into the map on demand
        if self._features is not None and self.training_map:
            self._training_fit = scored

    def training_probabilities(self, interrupted: Callable[[], bool] | None = None) -> np.ndarray | None:
        """The training-share classifier's ``(K, *spatial)`` probabilities of the whole image (it never saw
        the held-out strokes), computed on the first call after :meth:`update`; None when not kept.
        ``interrupted`` as in :mod:`.features` (a later call computes the map again)."""
        scored = self._training_fit
        if scored is not None:
            if scored is self.classifier:
                whole = tuple(slice(0, s) for s in self.normalized.shape[1:])
                self._training_map = self.forest_probabilities(whole, interrupted)
            else:
                self._training_map = self._map_of(scored, self._features, interrupted)
            self._training_fit = None
        return self._training_map

    def _map_of(
        self, classifier: PixelClassifier, features: np.ndarray, interrupted: Callable[[], bool] | None = None
    ) -> np.ndarray:
        """``(K, *shape)`` probabilities from ``(*shape, F)`` features, a slab of about :data:`PREDICT_BLOCK`
        voxels along the first axis at a time (a region's features, a view, are never copied whole)."""
        shape = features.shape[:-1]
        out = np.empty((self.model.num_classes, *shape), np.float32)
        step = max(1, PREDICT_BLOCK // max(1, math.prod(shape[1:])))
        for start in range(0, shape[0], step):
            slab = features[start : start + step]
            flat = classifier.probabilities_of(slab.reshape(-1, slab.shape[-1]), interrupted)
            out[:, start : start + step] = flat.reshape(-1, *slab.shape[:-1])
        return out

    def score_unet(self, device, precision: str) -> None:
        """Score the U-Net and the blend on the held-out voxels and update the choice (one inference copy
        of the network predicts every window)."""
        if not len(self.held_labels):
            return
        spatial = self.normalized.shape[1:]
        unet = np.empty_like(self.forest_held)
        overlap = np.zeros(2, np.int64)  # the U-Net's and the start's objects in the windows: (both, either)
        coords = np.unravel_index(self.split.voxels, spatial)  # flat order, as forest_held
        device = torch.device(device)
        predictor = tile_predictor(self.model.network, device, resolve_precision(precision, device))
        for window in self.windows:
            inside = np.all([(c >= w.start) & (c < w.stop) for c, w in zip(coords, window)], axis=0)
            crop = self.normalized[(slice(None), *window)]
            probabilities = predict_normalized(
                self.model, crop, device=device, precision=precision, predictor=predictor
            )
            local = tuple(c[inside] - w.start for c, w in zip(coords, window))
            unet[:, inside] = probabilities[(slice(None), *local)]
            if self._start_labels is not None:
                overlap += object_overlap(probabilities.argmax(0) + 1, self._start_labels[window])
        blend = self.model.combine(self.forest_held, unet, BLEND_WEIGHT)
        self.scores[UNET] = held_out_score(unet, self.held_labels)
        self.scores[BLEND] = held_out_score(blend, self.held_labels)
        self.classifier_lead = lead_in_voxels(self.forest_held, blend, self.held_labels)
        if self._start_labels is not None:
            self.network_start_agreement = float(overlap[0] / overlap[1]) if overlap[1] else None
            vouched_blend = self.model.combine(self.forest_held, unet, VOUCHED_BLEND_WEIGHT)
            self._vouched_blend_score = held_out_score(vouched_blend, self.held_labels)
        self._choose()

    def _choose(self) -> None:
        best = best_candidate(self.scores, guided=self.guided, classifier_lead=self.classifier_lead)
        self.chosen = START if self._start_agrees else best
        self.start_vouched = self.chosen == BLEND and self._vouched_by_start
        self.blend_weight = VOUCHED_BLEND_WEIGHT if self.start_vouched else BLEND_WEIGHT

    def keep_start(self, labels: np.ndarray, network: torch.nn.Module) -> None:
        """A trained start's ``spatial`` mask (annotation values) and a copy of its weights, before any
        update: it is the candidate shown while it gets every painted voxel right (:data:`START_AGREEMENT`),
        and :meth:`restore_start` gives it back unchanged. Only for a start that never trained on strokes
        (the caller's check): one trained on these strokes before would check itself on them."""
        self._start_labels, self._start_classes = labels, self.model.num_classes
        self._start_weights = {name: value.detach().clone() for name, value in network.state_dict().items()}
        self.scores[START] = self._start_agreement()

    def judge_start(self, classifier_labels: np.ndarray, start_labels: np.ndarray) -> None:
        """Measure how much of the start's confident objects the current classifier calls background (see
        :data:`START_CONTRADICTED_MAX`; ``spatial`` confident labels of each, 0 = not confident), leaving out
        objects of a class it saw too few voxels of (:data:`MIN_JUDGING_VOXELS`), and choose again."""
        counts = self._judge_counts
        self.start_unjudged = [k for k in range(2, len(counts)) if counts[k] < MIN_JUDGING_VOXELS]
        judged = np.where(np.isin(start_labels, self.start_unjudged), 0, start_labels)
        self._start_contradicted = start_contradicted(classifier_labels, judged)
        self._choose()

    def restore_start(self, network: torch.nn.Module) -> bool:
        """Put the start's weights back into ``network`` when the start is the choice; whether it was."""
        if self.chosen != START:
            return False
        network.load_state_dict(self._start_weights)
        return True

    def _start_agreement(self) -> float:
        """The smallest share of a class's painted voxels that the start's mask gets right."""
        voxels, values = self._painted
        right = self._start_labels.ravel()[voxels] == values
        return float(min(right[values == value].mean() for value in np.unique(values)))

    @property
    def start_candidate(self) -> bool:
        """Whether a trained start is a candidate as it is (see :meth:`keep_start`): only then is it judged."""
        return self._start_labels is not None

    def score_of(self, name: str) -> float | None:
        """A candidate's held-out score as shown: the blend's at the weight it is shown with."""
        return self._vouched_blend_score if name == BLEND and self.start_vouched else self.scores.get(name)

    @property
    def _start_uncontradicted(self) -> bool:
        """Whether a trained start is a candidate, judged and not contradicted (see :meth:`judge_start`),
        with the classes it was trained for (a network grown for a new class since cannot be compared)."""
        contradicted = self._start_contradicted
        judged = contradicted is not None and contradicted <= START_CONTRADICTED_MAX
        return judged and self.model.num_classes == self._start_classes

    @property
    def _start_agrees(self) -> bool:
        agreement = self.scores.get(START)
        return self._start_uncontradicted and agreement is not None and agreement >= START_AGREEMENT

    @property
    def _vouched_by_start(self) -> bool:
        """Whether the start vouches for the U-Net (see :data:`START_TRUSTED`); its held-out score must stay
        within :data:`VOUCHED_UNET_TOLERANCE` of the blend's."""
        if not self._start_uncontradicted:
            return False
        start, unet, blend = (self.scores.get(name) for name in (START, UNET, BLEND))
        agreement = self.network_start_agreement
        if None in (start, unet, blend, agreement):
            return False
        return (
            start >= START_TRUSTED and agreement >= NETWORK_START_AGREEMENT and unet >= blend - VOUCHED_UNET_TOLERANCE
        )

    @property
    def features_kept(self) -> bool:
        """Whether every voxel's features are kept (images up to :data:`FEATURE_MAP_VOXELS`): then the
        classifier's map of the whole image is cheap."""
        return self._features is not None

    @property
    def guided(self) -> bool:
        """Whether the U-Net trains on the pixel classifier's pseudo-labels too (see :mod:`.pseudo_labels`)."""
        return self._training_map is not None or self._training_fit is not None

    def forest_probabilities(
        self, region: tuple[slice, ...], interrupted: Callable[[], bool] | None = None
    ) -> np.ndarray:
        """The all-strokes pixel classifier's ``(K, *region)`` probabilities: with kept features, from its map
        of the whole image (made once the regions asked for since the fit add up to :data:`WHOLE_MAP_SHARE`
        of the image, then kept: later previews cost nothing; until then each region, such as one plane of
        a 3D box, is mapped alone), else computed for the region. ``interrupted`` as in :mod:`.features`
        (the map is then not kept)."""
        if self._features is None:
            return self.classifier.probabilities(self.classifier_image, region, interrupted)
        if self._forest_map is None:
            features = self._features[region]
            voxels = math.prod(features.shape[:-1])
            if self._mapped_alone + voxels <= WHOLE_MAP_SHARE * math.prod(self._features.shape[:-1]):
                probabilities = self._map_of(self.classifier, features, interrupted)
                self._mapped_alone += voxels
                return probabilities
            self._forest_map = self._map_of(self.classifier, self._features, interrupted)
        return self._forest_map[(slice(None), *region)]

    def labels_of(
        self, region: tuple[slice, ...], device, precision: str, interrupted: Callable[[], bool] | None = None
    ) -> np.ndarray | None:
        """The chosen candidate's labels of ``region`` (annotation values, less the specks the region shows, as
        ``predict`` gives them); None when ``interrupted`` (see
        :mod:`.features`) while the pixel classifier's part was computed."""
        if self.chosen == START:
            return without_specks(self._start_labels[region], self.model.dim)
        try:
            forest = self.forest_probabilities(region, interrupted) if self.chosen != UNET else None
        except Interrupted:
            return None
        if self.chosen == PIXEL_CLASSIFIER:
            return labels_from_probabilities(forest, dim=self.model.dim)
        crop = self.normalized[(slice(None), *region)]
        probabilities = predict_normalized(self.model, crop, device=device, precision=precision)
        if self.chosen == BLEND:
            probabilities = self.model.combine(forest, probabilities, self.blend_weight)
        return labels_from_probabilities(probabilities, dim=self.model.dim)

    def record(self) -> dict:
        """What ``config.json`` keeps about the choice. A start kept as it is predicts as the U-Net (it is one);
        its score is the smallest share of a class's strokes it gets right, over every stroke, and the
        fine-tuned candidates' scores are left out (their weights are not kept)."""
        kept = self.chosen == START
        scores = {k: self.score_of(k) for k in self.scores if not (kept and k in (UNET, BLEND))}
        return {
            "chosen": UNET if kept else self.chosen,
            "start_kept": kept,
            "start_vouched": self.start_vouched,
            "start_contradicted": None if self._start_contradicted is None else round(self._start_contradicted, 4),
            "start_unjudged_classes": self.start_unjudged,
            "held_out_accuracy": {k: None if v is None else round(v, 4) for k, v in scores.items()},
            "held_out_voxels": len(self.held_labels),
            "classifier_lead_voxels": self.classifier_lead,
            "network_start_agreement": None
            if self.network_start_agreement is None
            else round(self.network_start_agreement, 4),
            "blend_weight": self.blend_weight,
            "pseudo_labels": self.guided,
        }


def best_candidate(scores: dict[str, float | None], guided: bool = False, classifier_lead: int | None = None) -> str:
    """The candidate to show and return, from held-out balanced accuracies.

    Held-out voxels lie inside strokes, far from the edges where masks differ most, so they saturate
    (often 1.0 for every candidate) and a small lead there says little. A U-Net trained on the strokes
    alone is shown only when it (or its blend with the pixel classifier) leads by :data:`MARGIN`: early
    and flooding ones scored close to the classifier yet drew worse masks. One ``guided`` by the pixel
    classifier's pseudo-labels made better masks on the real dev images (docs/benchmarks.md), so its blend
    is shown unless it scores more than :data:`GUIDED_TOLERANCE` below the classifier and the classifier
    gets at least :data:`MIN_LEAD_VOXELS` more held-out voxels right (``classifier_lead``, None: not
    counted): with 20–90 held-out voxels, one or two voxels decided against blends 0.06–0.23 IoU better.
    """
    base = scores.get(PIXEL_CLASSIFIER)
    if base is None:
        return PIXEL_CLASSIFIER
    blend = scores.get(BLEND)
    if guided and blend is not None:
        close = blend >= base - GUIDED_TOLERANCE
        if close or (classifier_lead is not None and classifier_lead < MIN_LEAD_VOXELS):
            return BLEND
    for name in (BLEND, UNET):
        score = scores.get(name)
        if score is not None and score >= base + MARGIN:
            return name
    return PIXEL_CLASSIFIER


def object_overlap(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``(both, either)``: voxels that two ``spatial`` label maps (annotation values, 1 = background) give the
    same object class, and voxels that either gives an object."""
    both = int(((first == second) & (first > 1)).sum())
    return np.array([both, int(((first > 1) | (second > 1)).sum())], np.int64)


def lead_in_voxels(first: np.ndarray, second: np.ndarray, labels: np.ndarray) -> int:
    """Held-out voxels ``first`` gets right and ``second`` wrong, less the other way round (``(K, N)``
    probabilities, ``labels`` the annotation values)."""
    right_first, right_second = first.argmax(0) + 1 == labels, second.argmax(0) + 1 == labels
    return int((right_first & ~right_second).sum()) - int((right_second & ~right_first).sum())
