"""A trained model as one object: network + normalisation + classes, saved as a directory.

On disk: ``config.json`` (:class:`ModelConfig`) and ``weights.pt`` (a state_dict, read with
``torch.load(weights_only=True)`` so no pickled code ever runs), and for a model the trainer made,
``pixel_classifier.npz`` (arrays only, see :mod:`.pixel_classifier`).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import UserInputError
from ..io.atomic import atomic_target, interrupted_swap_leftover
from ..io.ownership import MODEL
from ..train.pixel_classifier import CLASSIFIER_FILE, PixelClassifier, PixelClassifierConfig
from .config import ModelConfig, NetworkConfig, NormalizationConfig
from .model_card import model_card
from .network import UNet, pool_strides_for_spacing
from .normalization import colour_channels, normalize, percentile_ranges, reduce_rgb, usable_ranges

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
CARD_FILE = "MODEL_CARD.md"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, CLASSIFIER_FILE)  # all a model folder holds (see .ownership)
UNET, PIXEL_CLASSIFIER, BLEND = "unet", "pixel classifier", "blend"  # what predictions come from
START = "start"  # a trained start shown (and returned) unchanged while it gets every stroke right
BLEND_WEIGHT = 0.5  # the U-Net's share of the blend's probabilities


class Model:
    """A U-Net with what is needed to apply it to a raw image, and the pixel classifier fitted beside it.

    ``network`` takes ``(B, C, *spatial)`` normalised float32 and returns ``(B, K, *spatial)``
    logits; output channel ``k`` is annotation value ``k + 1`` (1 = background, 2.. = objects).
    :attr:`chosen` says which candidate predictions come from (see :mod:`.selection`).
    """

    def __init__(self, network: UNet, config: ModelConfig, pixel_classifier: PixelClassifier | None = None) -> None:
        self.network = network
        self.config = config
        self.pixel_classifier = pixel_classifier

    @property
    def chosen(self) -> str:
        """``"unet"``, ``"pixel classifier"`` or ``"blend"``: the candidate the held-out strokes chose (see
        :func:`~napari_unet.core.train.selection.best_candidate`; the U-Net for a model without a classifier)."""
        if self.pixel_classifier is None or not self.config.selection:
            return UNET
        return self.config.selection["chosen"]

    @property
    def classifier_halo(self) -> int:
        """Voxels of image context per side (along its filtered axes) that the pixel classifier's features
        need when predictions use it; 0 when they come from the U-Net alone."""
        return 0 if self.chosen == UNET else self.pixel_classifier.config.halo

    @property
    def blend_weight(self) -> float:
        """The U-Net's share of the blend: the one the trainer chose (see
        :data:`~napari_unet.core.train.selection.VOUCHED_BLEND_WEIGHT`), else :data:`BLEND_WEIGHT`."""
        return (self.config.selection or {}).get("blend_weight", BLEND_WEIGHT)

    def combine(self, classifier: np.ndarray, unet: np.ndarray, weight: float | None = None) -> np.ndarray:
        """The blend of two ``(K, ...)`` probability arrays, with the U-Net's share ``weight`` (None: the
        model's :attr:`blend_weight`)."""
        weight = self.blend_weight if weight is None else weight
        return (1 - weight) * classifier + weight * unet

    @classmethod
    def create(
        cls,
        *,
        dim: int,
        in_channels: int = 1,
        num_classes: int = 2,
        spacing: Sequence[float] | None = None,
        base_channels: int = 16,
        depth: int = 4,
        norm: str = "batch",
    ) -> Model:
        """A freshly initialised model; ``spacing`` (per spatial axis) plans anisotropic pooling."""
        spacing = list(spacing) if spacing is not None else [1.0] * dim
        network_config = NetworkConfig(
            dim=dim,
            in_channels=in_channels,
            num_classes=num_classes,
            base_channels=base_channels,
            depth=depth,
            norm=norm,
            pool_strides=pool_strides_for_spacing(spacing[-dim:], depth),
        )
        class_names = ["background"] + [f"class {k}" for k in range(2, num_classes + 1)]
        config = ModelConfig(
            network=network_config, class_names=class_names, spacing=[float(s) for s in spacing[-dim:]]
        )
        return cls(UNet(network_config), config)

    @property
    def dim(self) -> int:
        return self.config.network.dim

    @property
    def in_channels(self) -> int:
        return self.config.network.in_channels

    @property
    def num_classes(self) -> int:
        return self.config.network.num_classes

    def accepts_channels(self, channels: int) -> bool:
        """Whether an image with ``channels`` channels fits: the model's own count, or 3 (RGB) for a
        1-channel model that records ``normalization.rgb_weights``."""
        rgb = self.in_channels == 1 and self.config.normalization.rgb_weights is not None
        return channels == self.in_channels or (rgb and channels == 3)

    def normalize(self, image: np.ndarray, ranges: list[list[float]] | None = None) -> np.ndarray:
        """``(C, *spatial)`` raw image → float32 normalised as at training (``ranges``: the
        per-channel percentile ranges of the whole image, when ``image`` is one block of it).
        An RGB image for a model with ``rgb_weights`` becomes one channel first."""
        norm = self.config.normalization
        return normalize(reduce_rgb(image, norm.rgb_weights), norm, ranges)

    def classifier_input(
        self,
        raw: np.ndarray,
        normalized: np.ndarray,
        ranges: list[list[float]] | None = None,
        fitting: bool = False,
    ) -> np.ndarray:
        """What the pixel classifier sees of a ``(C, *spatial)`` raw image whose network input is
        ``normalized`` (made with ``ranges``; None: the image's own): an RGB image the network sees as one
        grey channel (``rgb_weights``) in colour (:func:`.normalization.colour_channels`: stains differ by
        colour more than by grey level), anything else as the network does. ``fitting``: for a classifier
        about to be fitted (colour for an RGB image); otherwise the fitted classifier's channel count decides
        (a grey image is given to a colour one as three equal channels; a model saved before classifiers saw
        colour keeps its grey one), and a model that predicts with its U-Net alone gets ``normalized``."""
        if normalized.shape[0] != 1:
            return normalized
        fitted_on_colour = self.chosen != UNET and self.pixel_classifier.channels == 3
        if not (raw.shape[0] == 3 if fitting else fitted_on_colour):
            return normalized
        grey_range = usable_ranges(self.intensity_ranges(raw) if ranges is None else ranges, self.config.normalization)
        rgb = raw if raw.shape[0] == 3 else np.repeat(np.asarray(raw), 3, axis=0)
        return colour_channels(rgb, grey_range[0])

    def intensity_ranges(self, image) -> list[list[float]]:
        """Per-channel percentile ranges of a ``(C, *spatial)`` image (array or on-disk view; an RGB one
        for a model with ``rgb_weights`` is read whole and reduced to one channel)."""
        norm = self.config.normalization
        return percentile_ranges(reduce_rgb(image, norm.rgb_weights), norm.low_percentile, norm.high_percentile)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, inputs: Iterable = ()) -> Path:
        """Write the model directory atomically (a crash leaves any previous model intact). Only a
        model folder napari-unet wrote is replaced, never one of ``inputs`` (see :mod:`.ownership`)."""
        path = Path(path)
        with atomic_target(path, MODEL, overwrite=overwrite, inputs=inputs) as tmp:
            tmp.mkdir(parents=True)
            state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
            torch.save(state, tmp / WEIGHTS_FILE)
            if self.pixel_classifier is not None:
                self.pixel_classifier.save(tmp)
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2))
            (tmp / CARD_FILE).write_text(model_card(self.config))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Model:
        """Read a model directory; every kind of damage is a one-line :class:`UserInputError`."""
        path = Path(path)
        leftover = interrupted_swap_leftover(path)
        if leftover is not None:
            raise UserInputError(
                f"{path} is missing but an interrupted save left its previous version in {leftover}: "
                f"rename that folder to {path.name} (saving the model again also restores it)"
            )
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise UserInputError(
                f"{path} is not a napari-unet model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
                "train one with 'napari-unet train'"
            )
        try:
            config = ModelConfig.from_dict(json.loads((path / CONFIG_FILE).read_text()))
        except (ValueError, TypeError, KeyError) as error:
            raise UserInputError(f"{path / CONFIG_FILE} cannot be read: {error}") from None
        try:
            state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for truncated or foreign files
            raise UserInputError(
                f"{path / WEIGHTS_FILE} is not a readable napari-unet checkpoint ({type(error).__name__}); "
                "re-save or re-train the model"
            ) from None
        try:
            network = UNet(config.network)
        except (ValueError, TypeError, IndexError) as error:
            raise UserInputError(f"{path / CONFIG_FILE} describes no valid network: {error}") from None
        if not isinstance(state, dict):
            raise UserInputError(f"{path / WEIGHTS_FILE} does not hold a state_dict; re-save the model")
        try:
            network.load_state_dict(state)
        except RuntimeError:
            raise UserInputError(
                f"{path / WEIGHTS_FILE} does not match the architecture in {CONFIG_FILE}; re-save the model"
            ) from None
        return cls(network, config, _load_classifier(path, config))

    def adapted_to(self, num_classes: int, in_channels: int) -> Model:
        """This model as a starting point for ``num_classes`` classes (the fine-tuning policy).

        Same class count: this model itself, every weight kept. Another class count: a copy whose
        final 1×1 layer keeps the weights of the classes both share and starts fresh for new ones, and
        no pixel classifier (fitted on the old classes); its ``selection`` record stays, so a model trained on
        strokes is never taken for a start that saw none. The input channel count must match (or be RGB,
        see :meth:`accepts_channels`).
        """
        if not self.accepts_channels(in_channels):
            raise UserInputError(
                f"the initial model takes {self.in_channels} channel(s) but the image has {in_channels}; "
                "start from scratch or pick a model trained on the same channels"
            )
        if num_classes == self.num_classes:
            return self
        network_config = NetworkConfig(**{**vars(self.config.network), "num_classes": num_classes})
        network = UNet(network_config)
        state = network.state_dict()
        shared = min(num_classes, self.num_classes)
        for key, value in self.network.state_dict().items():
            if key.startswith("head."):
                state[key][:shared] = value[:shared]
            else:
                state[key] = value
        network.load_state_dict(state)
        names = self.config.class_names[:shared] + [f"class {k}" for k in range(shared + 1, num_classes + 1)]
        config = ModelConfig(
            network=network_config,
            normalization=NormalizationConfig(**vars(self.config.normalization)),
            class_names=names,
            spacing=self.config.spacing,
            history=list(self.config.history),
            description=self.config.description,
            selection=copy.deepcopy(self.config.selection),
        )
        return Model(network, config)

    def grow_to(self, num_classes: int) -> None:
        """Add output classes in place (strokes of a new class painted while training runs); the pixel
        classifier, fitted on the old classes, is dropped (the trainer fits its own)."""
        grown = self.adapted_to(num_classes, self.in_channels)
        self.network, self.config, self.pixel_classifier = grown.network, grown.config, None


def _load_classifier(path: Path, config: ModelConfig) -> PixelClassifier | None:
    """The pixel classifier a model folder holds, refitted from its arrays (None for older models)."""
    if config.pixel_classifier is None:
        return None
    try:
        settings = PixelClassifierConfig(**config.pixel_classifier)
        network = config.network
        return PixelClassifier.load(path, dim=network.dim, num_classes=network.num_classes, config=settings)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserInputError(
            f"{path / CLASSIFIER_FILE} cannot be read ({type(error).__name__}); re-save or re-train the model"
        ) from None
