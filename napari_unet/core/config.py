"""Plain dataclasses describing a network and a training run, with to/from dict for JSON."""

from __future__ import annotations

import dataclasses
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


@dataclass
class TrainConfig:
    """Settings of one training run; ``steps`` and ``time_budget`` (seconds) both stop it.

    ``smoothness_weight``/``smoothness_sigma`` weigh the edge-aware smoothness term (0 turns it
    off); ``region_weight`` the region term, scaled down to 0 when the painted classes do not
    differ in brightness (see :mod:`.region_prior`). ``batch_size`` None means the default for the
    model (8 patches in 2D, 4 in 3D). With ``augment``, every batch is flipped and rotated, elastically
    deformed with ``elastic_probability``, and each patch gets random contrast, brightness and noise with
    ``intensity_probability`` (default 0: the fastest fit to the painted image; 1 for a model meant for
    images that look different, see docs/benchmarks.md).
    """

    steps: int | None = None
    time_budget: float | None = 60.0
    batch_size: int | None = None
    patch_size: list[int] | None = None
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True
    elastic_probability: float = 0.25
    intensity_probability: float = 0.0
    smoothness_weight: float = 3.0
    smoothness_sigma: float = 0.05
    region_weight: float = 2.0  # the region term's weight when strokes differ clearly in brightness
    seed: int | None = None
    device: str = "auto"
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), fp32, bf16, fp16
    image_name: str | None = None  # recorded in the model card (a file name or a layer name)
    prefetch: bool | None = None  # make the next batch in a background thread; None: on GPUs only


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict."""
    return dataclasses.asdict(obj)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build ``cls`` from ``data``, refusing unknown keys (a config from a newer version)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}")
    return cls(**data)


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

    def to_dict(self) -> dict[str, Any]:
        return {"format": "napari-unet-model", "version": FORMAT_VERSION, **to_dict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        if data.pop("format", None) != "napari-unet-model":
            raise ValueError("config.json is not a napari-unet model config")
        version = data.pop("version", None)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"model format version {version!r} is newer than this napari-unet reads ({FORMAT_VERSION})"
            )
        return cls(
            network=from_dict(NetworkConfig, data.pop("network")),
            normalization=from_dict(NormalizationConfig, data.pop("normalization")),
            **data,
        )
