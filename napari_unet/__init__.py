"""napari-unet: train a 2D/3D U-Net from a few painted strokes, in napari or headless.

Public API (imported lazily, so ``import napari_unet`` is fast)::

    model = napari_unet.train(image, strokes, time_budget=30)
    labels = napari_unet.predict(model, image).labels
    model.save("my_model"); model = napari_unet.load_model("my_model")
    napari_unet.predict_to_zarr("my_model", "big.ome.zarr", "big.ome.zarr/labels/unet")  # out of core
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("napari-unet")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

_LAZY = {
    "train": "napari_unet.core.api",
    "predict": "napari_unet.core.api",
    "load_model": "napari_unet.core.api",
    "instances_from_labels": "napari_unet.core.instances.postprocess",
    "certainty": "napari_unet.core.instances.postprocess",
    "predict_to_zarr": "napari_unet.core.infer.zarr_output",
    "write_label_image": "napari_unet.core.io.label_writer",
    "Model": "napari_unet.core.models.model",
    "Prediction": "napari_unet.core.infer.inference",
    "UserInputError": "napari_unet.core.errors",
}

__all__ = [
    "Model",
    "Prediction",
    "UserInputError",
    "__version__",
    "certainty",
    "instances_from_labels",
    "load_model",
    "predict",
    "predict_to_zarr",
    "train",
    "write_label_image",
]

if TYPE_CHECKING:
    from .core.api import load_model, predict, train
    from .core.errors import UserInputError
    from .core.infer.inference import Prediction
    from .core.infer.zarr_output import predict_to_zarr
    from .core.instances.postprocess import certainty, instances_from_labels
    from .core.io.label_writer import write_label_image
    from .core.models.model import Model


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_unet' has no attribute {name!r}")
