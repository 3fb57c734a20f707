"""Plain dataclasses describing a network and a training run, with to/from dict for JSON."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .network import NetworkConfig

FORMAT_VERSION = 1


@dataclass
class NormalizationConfig:
    """Robust per-channel intensity scaling: ``(x - p_low) / (p_high - p_low)`` per image.

    ``fitted`` keeps the percentile values of the training image, for the record and for
    images too flat to give their own (constant images). ``rgb_weights`` (a 1-channel model only):
    an RGB image given to the model becomes one channel, this weighted sum of R, G and B, before scaling.
    """

    low_percentile: float = 1.0
    high_percentile: float = 99.8
    fitted: list[list[float]] = field(default_factory=list)
    rgb_weights: list[float] | None = None

    def __post_init__(self) -> None:
        low, high = self.low_percentile, self.high_percentile
        if not 0 <= low < high <= 100:
            raise ValueError(
                f"low_percentile and high_percentile must satisfy 0 <= low < high <= 100, got {low!r} and {high!r}"
            )
        for pair in self.fitted:
            if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
                raise ValueError(f"fitted must hold [low, high] pairs of finite numbers, got {pair!r}")


@dataclass
class TrainConfig:
    """Settings of one training run; ``steps`` and ``time_budget`` (seconds) both stop it.

    ``smoothness_weight``/``smoothness_sigma`` weigh the edge-aware smoothness term (0, the default,
    turns it off: on real images it made the U-Net flood the background, docs/benchmarks.md);
    ``region_weight`` the region term, scaled down to 0 when the painted classes do not differ in
    brightness or the image has several channels (see :mod:`.region_prior`). ``pseudo_label_weight``
    weighs the pixel classifier's confident voxels (top probability ≥ ``pseudo_label_confidence``) as
    extra targets, which keeps the U-Net from growing objects into the unpainted band between strokes
    (0 turns it off; see :mod:`.pseudo_labels`), except object labels where a trained start's background
    probability is at least ``start_veto``; ``start_label_weight`` weighs a trained start's own confident
    voxels where neither strokes nor classifier label one (unless the classifier contradicts the start's
    objects; this keeps fine-tuning from unlearning the start). ``uniform_patch_share`` places that share
    of each batch's patches anywhere in the image rather than around strokes. ``batch_size`` None
    means the default for the model (8 patches in 2D, 4 in 3D). With ``augment``, every batch is
    flipped and rotated, elastically deformed with ``elastic_probability``, and each patch gets random
    contrast, brightness and noise with ``intensity_probability`` (default 0: the fastest fit to the
    painted image; 1 for a model meant for images that look different, see docs/benchmarks.md).
    """

    steps: int | None = None
    time_budget: float | None = 60.0
    batch_size: int | None = None
    patch_size: list[int] | None = None
    learning_rate: float | None = None  # None: 2e-3 for a new network, 5e-4 from a trained one (schedule.py)
    weight_decay: float = 1e-4
    augment: bool = True
    elastic_probability: float = 0.25
    intensity_probability: float = 0.0
    smoothness_weight: float = 0.0  # 3 until 2026-12-01: it flooded real images (docs/benchmarks.md)
    smoothness_sigma: float = 0.05
    region_weight: float = 2.0  # the region term's weight when strokes differ clearly in brightness
    pseudo_label_weight: float = 0.5  # the pixel classifier's confident voxels as targets (see .pseudo_labels)
    pseudo_label_confidence: float = 0.8  # ...where its top class probability is at least this
    start_veto: float = 0.5  # ...but no object label where a trained start's background probability is at least this
    start_label_weight: float = 0.5  # a trained start's confident voxels as targets where the above label none
    uniform_patch_share: float = 0.0  # share of each batch's patches placed anywhere, not around strokes
    seed: int | None = None
    device: str = "auto"
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), fp32, bf16, fp16
    image_name: str | None = None  # recorded in the model card (a file name or a layer name)
    prefetch: bool | None = None  # make the next batch in a background thread; None: on GPUs only


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict."""
    return dataclasses.asdict(obj)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type ``hint`` names (int is not bool; a float may be an int)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or dataclasses.is_dataclass(hint):  # nested dataclasses: checked by their own from_dict
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_fits(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any, plural: bool = False) -> str:
    """``hint`` in words: "a list of whole numbers", "a number or null"..."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg, plural) for arg in args)
    if origin is list:
        return f"{'lists' if plural else 'a list'} of {_describe(args[0], plural=True)}"
    words = {int: "whole number", float: "number", str: "string", bool: "true or false", type(None): "null"}
    word = words.get(hint, "object")
    if hint in (bool, type(None)):
        return word
    return f"{word}s" if plural else f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build ``cls`` from ``data`` (parsed JSON), refusing unknown keys (a config from a newer
    version), missing required ones and values of the wrong type, with a message naming the field
    (``where``: the path of ``data`` in the file, e.g. ``network``). Nested dataclasses are built too."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__} must be a JSON object, got {data!r:.60}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, spec in fields.items():
        if name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ValueError(f"{prefix}{name} is missing")
            continue
        value, hint = data[name], hints[name]
        if not _fits(value, hint):
            raise ValueError(f"{prefix}{name} must be {_describe(hint)}, got {value!r:.60}")
        values[name] = from_dict(hint, value, prefix + name) if dataclasses.is_dataclass(hint) else value
    try:
        return cls(**values)
    except ValueError as error:  # range checks of the dataclass itself
        raise ValueError(f"{prefix}{error}" if prefix and not str(error).startswith(prefix) else str(error)) from None


@dataclass
class ModelConfig:
    """Everything ``config.json`` of a saved model holds besides the weights (``description``: what
    the model is and how it was made, in Markdown, shown in its model card)."""

    network: NetworkConfig
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    class_names: list[str] = field(default_factory=list)
    spacing: list[float] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    pixel_classifier: dict[str, Any] | None = None  # its settings (PixelClassifierConfig), when the model has one
    selection: dict[str, Any] | None = None  # the chosen candidate and the held-out scores (see .selection)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "napari-unet-model", "version": FORMAT_VERSION, **to_dict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Read parsed ``config.json``: every field's type and range is checked, and the fields
        against each other (class names and fitted ranges per class and channel, spacing per axis)."""
        if not isinstance(data, dict):
            raise ValueError(f"it must hold a JSON object, got {data!r:.60}")
        data = dict(data)
        if data.pop("format", None) != "napari-unet-model":
            raise ValueError("config.json is not a napari-unet model config")
        version = data.pop("version", None)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"the model format version must be a whole number, got {version!r}")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"model format version {version} is newer than this napari-unet reads ({FORMAT_VERSION}): "
                "update napari-unet"
            )
        if version < 1:
            raise ValueError(f"model format version {version} is unknown: versions start at 1")
        config = from_dict(cls, data)
        config.check_consistency()
        return config

    def check_consistency(self) -> None:
        """Fields that must agree: a name per class, a fitted range per input channel (or none yet),
        one finite voxel size above 0 per spatial axis, and a blend weight (the U-Net's share, which
        predictions use) from 0 to 1."""
        network = self.network
        if len(self.class_names) != network.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names for network.num_classes {network.num_classes}"
            )
        fitted = self.normalization.fitted
        if fitted and len(fitted) != network.in_channels:
            raise ValueError(
                f"normalization.fitted has {len(fitted)} ranges for network.in_channels {network.in_channels}"
            )
        spacing = self.spacing
        if spacing is not None and (
            len(spacing) != network.dim or not all(math.isfinite(s) and s > 0 for s in spacing)
        ):
            raise ValueError(
                f"spacing must be {network.dim} finite voxel sizes above 0 (network.dim {network.dim}), got {spacing!r}"
            )
        weight = (self.selection or {}).get("blend_weight", 0.5)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ValueError(f"selection.blend_weight must be a number from 0 to 1, got {weight!r}")
