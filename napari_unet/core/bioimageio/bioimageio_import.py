"""Rebuild a model from a bioimage.io package napari-unet exported (needs neither bioimage.io
library: the package's description carries the napari-unet config next to the weights)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import torch

from ..errors import UserInputError
from ..models.config import ModelConfig
from ..models.model import Model
from ..models.network import UNet

CONFIG_KEY = "napari_unet"  # where the full napari-unet config rides along in the description's ``config``
DESCRIPTION_FILES = ("rdf.yaml", "bioimageio.yaml")  # what a package's description file may be called


def load_bioimageio(path: str | os.PathLike) -> Model:
    """A model from a bioimage.io package (.zip) that napari-unet exported.

    Only such packages can be rebuilt: they carry the napari-unet config next to the weights.
    Packages of other architectures (any format version) are refused with a one-line
    :class:`UserInputError`, as are damaged ones.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as package:
            rdf = _read_description(package)
            ours = _get(rdf, "config", CONFIG_KEY)
            if not isinstance(ours, dict):
                raise UserInputError(_foreign_package_message(path, rdf))
            weights_file = _get(rdf, "weights", "pytorch_state_dict", "source")
            if not isinstance(weights_file, str) or weights_file not in package.namelist():
                raise UserInputError(f"{path} names no weights file it holds; export the model again")
            data = package.read(weights_file)
    except (zipfile.BadZipFile, OSError) as error:
        raise UserInputError(f"{path} is not a readable zip file ({type(error).__name__}); export it again") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged or foreign files
        raise UserInputError(f"the weights in {path} are damaged ({type(error).__name__}); export it again") from None
    try:
        config = ModelConfig.from_dict(ours)
        network = UNet(config.network)
        network.load_state_dict(state)
    except (ValueError, TypeError, KeyError, RuntimeError, AttributeError) as error:
        reason = " ".join(str(error).split())[:200]
        raise UserInputError(f"{path}: the napari-unet model inside cannot be rebuilt ({reason})") from None
    network.eval()
    return Model(network, config)


def _read_description(package: zipfile.ZipFile) -> dict:
    import yaml

    names = set(package.namelist())
    found = next((name for name in DESCRIPTION_FILES if name in names), None)
    if found is None:
        raise UserInputError(f"{package.filename} holds no rdf.yaml: it is not a bioimage.io package")
    try:
        description = yaml.safe_load(package.read(found))
    except yaml.YAMLError:
        raise UserInputError(f"{package.filename}: its {found} is not valid YAML") from None
    if not isinstance(description, dict):
        raise UserInputError(f"{package.filename}: its {found} does not describe a model")
    return description


def _get(mapping, *keys):
    """``mapping[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _foreign_package_message(path: Path, rdf: dict) -> str:
    weights = rdf.get("weights") if isinstance(rdf.get("weights"), dict) else {}
    architecture = _get(weights, "pytorch_state_dict", "architecture")
    # format 0.5: {"callable": ..., "source": ...}; format 0.4: "file.py:Callable"
    what = architecture.get("callable") if isinstance(architecture, dict) else architecture
    what = str(what or ", ".join(map(str, weights)) or "unknown weights")
    return (
        f"{path.name} was not exported by napari-unet (its network is {what}); only packages napari-unet "
        "exported can be used here: start from scratch, a pretrained name or a napari-unet model"
    )
