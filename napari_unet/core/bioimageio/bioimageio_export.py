"""bioimage.io model packages: export any model (the ones napari-unet exported are imported again
by :mod:`.bioimageio_import`).

The package holds the PyTorch state dict with ``network.py`` as the architecture source (it
imports only torch), the normalisation as a ``scale_range`` pre-processing step (the same
percentiles, per image and channel), softmax as post-processing, a test input and output, a
cover, the model card as documentation and the U-Net citations. The full napari-unet config
rides along under ``config.napari_unet``, which is what makes a package importable again.

The weights come twice: as the state dict (with ``network.py``) and as TorchScript traced on the
size grid the package declares (see :mod:`.bioimageio_trace`). Exporting needs ``bioimageio.core``
(both are tested with it before the package is kept): ``pip install 'napari-unet[bioimageio]'``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ..errors import UserInputError
from ..io.atomic import atomic_target
from ..io.io import check_output_folder
from ..io.ownership import PACKAGE, check_replaceable
from ..models import network as network_module
from ..models.model import UNET, Model
from ..models.model_card import model_card
from .bioimageio_import import CONFIG_KEY
from .bioimageio_trace import example_crop, min_size, package_halo, reference_output, trace

log = logging.getLogger(__name__)

CITATIONS = (
    (
        "Ronneberger, Fischer, Brox: U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI 2015.",
        "10.1007/978-3-319-24574-4_28",
    ),
    (
        "Çiçek et al.: 3D U-Net: Learning Dense Volumetric Segmentation from Sparse Annotation. MICCAI 2016.",
        "10.1007/978-3-319-46723-8_49",
    ),
)
INSTALL_HINT = "pip install 'napari-unet[bioimageio]'"


def _cover(crop: np.ndarray, probabilities: np.ndarray, path: Path) -> None:
    """A 2:1 PNG: the (normalised) input on the left, the foreground probability on the right."""
    from skimage.io import imsave
    from skimage.transform import resize

    def plane(array: np.ndarray) -> np.ndarray:
        return array[array.shape[0] // 2] if array.ndim == 3 else array

    image = plane(crop[0])
    lo, hi = np.percentile(image, [1, 99.8])
    image = np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1)
    foreground = plane(1 - probabilities[0, 0])
    gray = np.stack([image] * 3, -1)
    overlay = 0.5 * gray + 0.5 * np.stack([foreground, 0.2 * foreground, 0.8 * foreground], -1)
    side = resize(np.concatenate([gray, overlay], axis=1), (256, 512), order=1)
    imsave(path, (np.clip(side, 0, 1) * 255).astype(np.uint8), check_contrast=False)


def _documentation(model: Model) -> str:
    return (
        model_card(model.config)
        + "\n## Use\n\n"
        + "Input: raw intensities (any dtype, read as float32), normalised in the package by the same per-image "
        + "percentiles napari-unet uses. Output: per-class softmax probabilities; the class of a pixel is the "
        + "channel with the highest probability, class k being annotation value k + 1.\n\n"
        + "In napari-unet: `napari-unet predict --model THIS.zip --image IMG --out OUT.tif`, or use it as the "
        + "starting point of fine-tuning with `--init THIS.zip`.\n"
    )


def _write_files(model: Model, folder: Path, crop: np.ndarray) -> None:
    """The files a package holds, into ``folder``: test input and output, cover, documentation,
    the architecture source, the state dict and its TorchScript trace."""
    np.save(folder / "test_input.npy", crop[None])
    np.save(folder / "test_output.npy", reference_output(model, crop))
    _cover(crop, np.load(folder / "test_output.npy"), folder / "cover.png")
    (folder / "README.md").write_text(_documentation(model))
    (folder / "network.py").write_text(Path(network_module.__file__).read_text())
    state = {k: v.detach().cpu().contiguous() for k, v in model.network.state_dict().items()}
    torch.save(state, folder / "weights.pt")
    trace(model, crop, folder / "weights.torchscript.pt")


def _spatial_axes(model: Model) -> tuple[list[str], list[int], list[float]]:
    """Per spatial axis: its name, the output halo the package declares, and the voxel size."""
    dim = model.dim
    spacing = (model.config.spacing or [1.0] * dim)[-dim:]
    return (["y", "x"] if dim == 2 else ["z", "y", "x"]), package_halo(model.config.network), spacing


def _input_descr(spec, model: Model, folder: Path):
    """The ``raw`` input: any size on the network's grid, normalised by napari-unet's percentiles."""
    spatial, halos, spacing = _spatial_axes(model)
    norm = model.config.normalization
    axes = [
        spec.BatchAxis(),
        spec.ChannelAxis(channel_names=[spec.Identifier(f"channel{c}") for c in range(model.in_channels)]),
        *[
            spec.SpaceInputAxis(
                id=spec.AxisId(axis), size=spec.ParameterizedSize(min=min_size(m, h), step=m), scale=float(s)
            )
            for axis, m, h, s in zip(spatial, model.config.network.size_multiple, halos, spacing)
        ],
    ]
    scale_range = spec.ScaleRangeKwargs(
        axes=[spec.AxisId(a) for a in spatial],
        min_percentile=norm.low_percentile,
        max_percentile=norm.high_percentile,
        eps=1e-12,  # as napari-unet's normalisation
    )
    return spec.InputTensorDescr(
        id=spec.TensorId("raw"),
        description="raw image, any intensity range",
        axes=axes,
        test_tensor=spec.FileDescr(source=folder / "test_input.npy"),
        preprocessing=[
            spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32")),
            spec.ScaleRangeDescr(kwargs=scale_range),
        ],
    )


def _output_descr(spec, model: Model, folder: Path):
    """The ``probabilities`` output: one softmax channel per class, the input's size, with a halo."""
    spatial, halos, spacing = _spatial_axes(model)
    axes = [
        spec.BatchAxis(),
        spec.ChannelAxis(channel_names=[spec.Identifier(n) for n in _identifiers(model.config.class_names)]),
        *[
            spec.SpaceOutputAxisWithHalo(
                id=spec.AxisId(axis),
                halo=h,
                size=spec.SizeReference(tensor_id=spec.TensorId("raw"), axis_id=spec.AxisId(axis)),
                scale=float(s),
            )
            for axis, h, s in zip(spatial, halos, spacing)
        ],
    ]
    return spec.OutputTensorDescr(
        id=spec.TensorId("probabilities"),
        description="softmax probability per class (channel k = annotation value k + 1)",
        axes=axes,
        test_tensor=spec.FileDescr(source=folder / "test_output.npy"),
        postprocessing=[spec.SoftmaxDescr(kwargs=spec.SoftmaxKwargs(axis=spec.AxisId("channel")))],
    )


def _weights_descr(spec, model: Model, folder: Path):
    """The state dict with ``network.py`` as its architecture, and the TorchScript trace of it."""
    version = spec.Version(torch.__version__.split("+")[0])
    architecture = spec.ArchitectureFromFileDescr(
        source=folder / "network.py", callable=spec.Identifier("unet_from_kwargs"), kwargs=_network_kwargs(model)
    )
    return spec.WeightsDescr(
        pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
            source=folder / "weights.pt", architecture=architecture, pytorch_version=version
        ),
        torchscript=spec.TorchscriptWeightsDescr(
            source=folder / "weights.torchscript.pt", pytorch_version=version, parent="pytorch_state_dict"
        ),
    )


def _description(model: Model, folder: Path, crop: np.ndarray, *, name: str, authors: list[str], license: str):
    """The ``bioimageio.spec`` v0.5 model description of ``model``, files written into ``folder``."""
    from bioimageio.spec.model import v0_5 as spec

    _write_files(model, folder, crop)
    dim = model.dim
    return spec.ModelDescr(
        name=name,
        description=f"{dim}D U-Net trained with napari-unet from sparse strokes; classes: "
        + ", ".join(model.config.class_names),
        authors=[spec.Author(name=a) for a in authors],
        cite=[spec.CiteEntry(text=text, doi=spec.Doi(doi)) for text, doi in CITATIONS[: 1 if dim == 2 else 2]],
        license=spec.LicenseId(license),
        tags=["napari-unet", "unet", f"{dim}d", "segmentation", "semantic-segmentation", "pytorch"],
        documentation=spec.FileDescr(source=folder / "README.md"),
        covers=[spec.FileDescr(source=folder / "cover.png")],
        inputs=[_input_descr(spec, model, folder)],
        outputs=[_output_descr(spec, model, folder)],
        weights=_weights_descr(spec, model, folder),
        config={CONFIG_KEY: {**model.config.to_dict(), "pixel_classifier": None, "selection": None}},  # the U-Net
    )


def _identifiers(names: list[str]) -> list[str]:
    """Class names as distinct bioimage.io identifiers (letters, digits and underscores)."""
    identifiers: list[str] = []
    for name in names:
        cleaned = "".join(c if c.isalnum() else "_" for c in name).strip("_") or "class"
        cleaned = cleaned if cleaned[0].isalpha() else f"c_{cleaned}"
        identifier, number = cleaned, 2
        while identifier in identifiers:
            identifier, number = f"{cleaned}_{number}", number + 1
        identifiers.append(identifier)
    return identifiers


def _network_kwargs(model: Model) -> dict:
    network = model.config.network
    return {
        "dim": network.dim,
        "in_channels": network.in_channels,
        "num_classes": network.num_classes,
        "base_channels": network.base_channels,
        "depth": network.depth,
        "norm": network.norm,
        "pool_strides": network.pool_strides,
    }


def export_bioimageio(
    model: Model,
    out: str | os.PathLike,
    *,
    image: np.ndarray | None = None,
    name: str | None = None,
    authors: list[str] | None = None,
    license: str = "CC-BY-4.0",
    validate: bool = True,
    overwrite: bool = False,
    inputs: Iterable = (),
) -> Path:
    """Write ``model`` as a bioimage.io package ``out`` (.zip); returns its path.

    ``image`` ``(C, *spatial)`` gives the test input and cover (a crop of its centre); without it
    the bundled sample nuclei are used. With ``validate``, ``bioimageio.core.test_model`` runs on
    the description first and any failure is a one-line error with nothing written. ``out`` may
    replace only a package napari-unet exported (anything else only with ``overwrite``, and never
    one of ``inputs``: see :mod:`.ownership`).
    """
    out = _check_out(Path(out), overwrite, inputs)
    if model.chosen != UNET:
        warnings.warn(
            f"this model's masks come from its {model.chosen}, which scored better on the held-out strokes; "
            "the bioimage.io package holds its U-Net only, whose masks differ",
            UserWarning,
            stacklevel=2,
        )
    _check_license(license)
    import pydantic
    from bioimageio.spec import save_bioimageio_package

    image = _example_image(model, image)
    with tempfile.TemporaryDirectory(prefix="napari-unet-bioimageio-") as scratch:
        folder = Path(scratch)
        try:
            description = _description(
                model,
                folder,
                example_crop(model, image),
                name=name or f"napari-unet {model.dim}D U-Net",
                authors=authors or ["napari-unet user"],
                license=license,
            )
        except pydantic.ValidationError as error:
            raise UserInputError(_field_message(error)) from None
        with atomic_target(out, PACKAGE, overwrite=overwrite, inputs=inputs) as tmp:
            save_bioimageio_package(description, output_path=tmp)
            if validate:
                _validate(tmp)
    return out


def _check_out(out: Path, overwrite: bool, inputs: Iterable) -> Path:
    """Refuse, before any work, a package path that cannot be written or may not be replaced."""
    if out.suffix != ".zip":
        raise UserInputError(f"{out} must end in .zip (a bioimage.io package is a zip file)")
    check_output_folder(out)
    if out.is_dir():
        raise UserInputError(f"{out} is a folder: choose a .zip file path")
    check_replaceable(out, PACKAGE, overwrite=overwrite, inputs=inputs)
    return out


def _check_license(license: str) -> None:
    """Refuse a missing bioimageio.core (the package is tested with it before it is kept) and a
    license that is not an SPDX id, in one line each."""
    try:
        import pydantic
        from bioimageio.core import test_model  # noqa: F401
        from bioimageio.spec.model.v0_5 import LicenseId
    except ImportError:
        raise UserInputError(f"bioimage.io export needs bioimageio.core: {INSTALL_HINT}") from None
    try:
        LicenseId(license)
    except pydantic.ValidationError:
        hint = "use e.g. CC-BY-4.0, MIT or BSD-3-Clause"
        raise UserInputError(f"license {license!r} is not an SPDX id: {hint}") from None


def _example_image(model: Model, image: np.ndarray | None) -> np.ndarray:
    """The image ``(C, *spatial)`` the test input is cut from: ``image``, checked to fit the model,
    or the bundled sample nuclei."""
    if image is None:
        from ..data.synthetic import nuclei_sample

        sample = nuclei_sample(model.dim).image
        return np.repeat(sample[None], model.in_channels, axis=0)
    if image.shape[0] != model.in_channels or image.ndim - 1 != model.dim:
        raise UserInputError(
            f"the example image has shape {image.shape} (C, *spatial) but the model takes {model.in_channels} "
            f"channel(s) in {model.dim}D"
        )
    return image


def _field_message(error) -> str:
    """One line for a name, author or license bioimage.io refuses."""
    fields = {str(e["loc"][0]) for e in error.errors() if e.get("loc")}
    if "name" in fields:
        return "the model name may contain only letters, digits, spaces and _ + - ( ), at most 128 characters"
    if "authors" in fields:
        return "author names must not be empty"
    return "bioimage.io refused the description: " + " ".join(str(error).split())[:300]


def _validate(package: Path) -> None:
    """Run ``bioimageio.core.test_model`` on the written ``package`` (on the CPU, as the test output
    was computed there); a failed check raises a one-line :class:`UserInputError`."""
    from bioimageio.core import test_model

    for weight_format in ("pytorch_state_dict", "torchscript"):
        log.info("testing the %s weights of %s with bioimageio.core", weight_format, package)
        _check(test_model(str(package), weight_format=weight_format, devices=["cpu"]))


def _check(summary) -> None:
    if summary.status != "passed":
        failed = [d for d in summary.details if d.status == "failed"]
        first = failed[0] if failed else None
        reason = f"{first.name}: {first.errors[0].msg if first.errors else ''}" if first else summary.status
        reason = " ".join(reason.split())[:300]
        raise UserInputError(f"the bioimage.io package failed its own test ({reason}); nothing was written")
