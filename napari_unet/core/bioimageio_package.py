"""bioimage.io model packages: export any model, import the ones napari-unet exported.

The package holds the PyTorch state dict with ``network.py`` as the architecture source (it
imports only torch), the normalisation as a ``scale_range`` pre-processing step (the same
percentiles, per image and channel), softmax as post-processing, a test input and output, a
cover, the model card as documentation and the U-Net citations. The full napari-unet config
rides along under ``config.napari_unet``, which is what makes a package importable again.

The weights come twice: as the state dict (with ``network.py``) and as TorchScript traced on the
size grid the package declares (no padding happens on it, so the trace holds for every allowed
size), for runners without Python such as deepImageJ. Exporting needs ``bioimageio.core`` (both
are tested with it before the package is kept): ``pip install 'napari-unet[bioimageio]'``.
Importing needs neither.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from . import network as network_module
from .atomic import atomic_target
from .config import ModelConfig
from .errors import UserInputError
from .model import UNET, Model
from .model_card import model_card
from .network import NetworkConfig, UNet
from .normalization import percentile_ranges
from .ownership import PACKAGE, check_replaceable

CONFIG_KEY = "napari_unet"
DESCRIPTION_FILES = ("rdf.yaml", "bioimageio.yaml")  # what a package's description file may be called
HALO_FRACTION = 0.75  # of the receptive-field radius: the reach where an input voxel still matters
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


def example_crop(model: Model, image: np.ndarray) -> np.ndarray:
    """A crop of ``image`` ``(C, *spatial)`` whose sizes the package accepts (float32).

    Each axis is cut to a multiple of the network's size multiple, at most 256 (2D) or the minimum
    size (3D), and at least the package's minimum size (edge-padded when the image is smaller). Of
    the windows at the start, centre and end of each axis, the one with the widest intensity range
    is taken (a flat window cannot be normalised the same way everywhere); if all are flat, a one-line
    :class:`UserInputError` asks for another image.
    """
    network = model.config.network
    sizes, starts_per_axis, padding = [], [], [(0, 0)]
    for size, m, halo in zip(image.shape[1:], network.size_multiple, package_halo(network)):
        minimum = _min_size(m, halo)
        want = max(minimum, min(256 if model.dim == 2 else minimum, size) // m * m)
        sizes.append(want)
        starts_per_axis.append(sorted({0, max(0, (size - want) // 2), max(0, size - want)}))
        padding.append((0, max(0, want - size)))
    best, best_range = None, 0.0
    norm = model.config.normalization
    for corner in itertools.product(*starts_per_axis):
        box = (slice(None), *(slice(c, c + w) for c, w in zip(corner, sizes)))
        crop = np.asarray(image[box], np.float32)
        ranges = percentile_ranges(crop, norm.low_percentile, norm.high_percentile)
        spread = min(hi - lo for lo, hi in ranges)
        if spread > best_range:
            best, best_range = crop, spread
    if best is None:
        raise UserInputError(
            "the example image is flat (no intensity range) where the package needs a test input: "
            "give an image with structure (--image)"
        )
    return np.pad(best, padding, mode="edge") if any(p for _, p in padding) else best


def receptive_radius(network: NetworkConfig) -> list[int]:
    """Per spatial axis, how many voxels away an input voxel can still change an output voxel."""
    radii = []
    for axis in range(network.dim):
        scale, radius = 1, 0
        for strides in network.pool_strides:
            stride = strides[axis]
            radius += 4 * scale + 2 * (stride - 1) * scale  # two 3-wide convs down and up; pool and up-conv
            scale *= stride
        radii.append(radius + 2 * scale)  # the bottom block
    return radii


def package_halo(network: NetworkConfig) -> list[int]:
    """The output halo declared per axis: most of the receptive-field radius, on the size grid, so a
    runner that tiles with it matches the untiled prediction away from the image border."""
    return [
        math.ceil(HALO_FRACTION * radius / m) * m for radius, m in zip(receptive_radius(network), network.size_multiple)
    ]


def _min_size(multiple: int, halo: int) -> int:
    return 2 * halo + multiple


def _cpu_copy(model: Model) -> UNet:
    """The model's network as a runner loads it: a fresh module on the CPU, default layout, eval mode."""
    network = UNet(model.config.network)
    network.load_state_dict(model.network.state_dict())
    return network.eval()


def reference_output(model: Model, crop: np.ndarray) -> np.ndarray:
    """``(1, K, *spatial)`` softmax probabilities of ``crop`` ``(C, *spatial)``, computed the way a
    bioimage.io runner does: normalise the whole crop, one forward pass on the CPU."""
    network = _cpu_copy(model)
    with torch.inference_mode():
        logits = network(torch.from_numpy(model.normalize(crop))[None])
    return torch.softmax(logits, dim=1).numpy()


def _trace(model: Model, crop: np.ndarray, path: Path) -> None:
    """TorchScript of the network (CPU, default layout), traced on ``crop``'s normalised shape."""
    network = _cpu_copy(model)
    example = torch.from_numpy(model.normalize(crop))[None]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the padding branch, never taken on the grid
        traced = torch.jit.trace(network, example, check_trace=False)
    traced.save(str(path))


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


def _description(model: Model, folder: Path, crop: np.ndarray, *, name: str, authors: list[str], license: str):
    """The ``bioimageio.spec`` v0.5 model description of ``model``, files written into ``folder``."""
    from bioimageio.spec.model import v0_5 as spec

    dim, network = model.dim, model.config.network
    spatial = ["y", "x"] if dim == 2 else ["z", "y", "x"]
    np.save(folder / "test_input.npy", crop[None])
    np.save(folder / "test_output.npy", reference_output(model, crop))
    _cover(crop, np.load(folder / "test_output.npy"), folder / "cover.png")
    (folder / "README.md").write_text(_documentation(model))
    source = folder / "network.py"
    source.write_text(Path(network_module.__file__).read_text())
    weights = folder / "weights.pt"
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.network.state_dict().items()}, weights)
    _trace(model, crop, folder / "weights.torchscript.pt")

    spacing = (model.config.spacing or [1.0] * dim)[-dim:]
    halos = package_halo(network)
    input_axes = [
        spec.BatchAxis(),
        spec.ChannelAxis(channel_names=[spec.Identifier(f"channel{c}") for c in range(model.in_channels)]),
        *[
            spec.SpaceInputAxis(
                id=spec.AxisId(axis),
                size=spec.ParameterizedSize(min=_min_size(m, h), step=m),
                scale=float(s),
            )
            for axis, m, h, s in zip(spatial, network.size_multiple, halos, spacing)
        ],
    ]
    output_axes = [
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
    norm = model.config.normalization
    inputs = spec.InputTensorDescr(
        id=spec.TensorId("raw"),
        description="raw image, any intensity range",
        axes=input_axes,
        test_tensor=spec.FileDescr(source=folder / "test_input.npy"),
        preprocessing=[
            spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32")),
            spec.ScaleRangeDescr(
                kwargs=spec.ScaleRangeKwargs(
                    axes=[spec.AxisId(a) for a in spatial],
                    min_percentile=norm.low_percentile,
                    max_percentile=norm.high_percentile,
                    eps=1e-12,  # as napari-unet's normalisation
                )
            ),
        ],
    )
    outputs = spec.OutputTensorDescr(
        id=spec.TensorId("probabilities"),
        description="softmax probability per class (channel k = annotation value k + 1)",
        axes=output_axes,
        test_tensor=spec.FileDescr(source=folder / "test_output.npy"),
        postprocessing=[spec.SoftmaxDescr(kwargs=spec.SoftmaxKwargs(axis=spec.AxisId("channel")))],
    )
    weights_descr = spec.WeightsDescr(
        pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
            source=weights,
            architecture=spec.ArchitectureFromFileDescr(
                source=source, callable=spec.Identifier("unet_from_kwargs"), kwargs=_network_kwargs(model)
            ),
            pytorch_version=spec.Version(torch.__version__.split("+")[0]),
        ),
        torchscript=spec.TorchscriptWeightsDescr(
            source=folder / "weights.torchscript.pt",
            pytorch_version=spec.Version(torch.__version__.split("+")[0]),
            parent="pytorch_state_dict",
        ),
    )
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
        inputs=[inputs],
        outputs=[outputs],
        weights=weights_descr,
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
    out = Path(out)
    if out.suffix != ".zip":
        raise UserInputError(f"{out} must end in .zip (a bioimage.io package is a zip file)")
    if not out.parent.is_dir():
        raise UserInputError(f"folder {out.parent} does not exist: create it or choose another output path")
    if not os.access(out.parent, os.W_OK):
        raise UserInputError(f"folder {out.parent} is not writable: choose another output path")
    if out.is_dir():
        raise UserInputError(f"{out} is a folder: choose a .zip file path")
    check_replaceable(out, PACKAGE, overwrite=overwrite, inputs=inputs)
    if model.chosen != UNET:
        warnings.warn(
            f"this model's masks come from its {model.chosen}, which scored better on the held-out strokes; "
            "the bioimage.io package holds its U-Net only, whose masks differ",
            UserWarning,
            stacklevel=2,
        )
    try:
        import pydantic
        from bioimageio.core import test_model  # noqa: F401 (the package is tested before it is kept)
        from bioimageio.spec import save_bioimageio_package
    except ImportError:
        raise UserInputError(f"bioimage.io export needs bioimageio.core: {INSTALL_HINT}") from None
    from bioimageio.spec.model.v0_5 import LicenseId

    try:
        LicenseId(license)
    except pydantic.ValidationError:
        hint = "use e.g. CC-BY-4.0, MIT or BSD-3-Clause"
        raise UserInputError(f"license {license!r} is not an SPDX id: {hint}") from None
    if image is None:
        image = _sample_image(model)
    elif image.shape[0] != model.in_channels or image.ndim - 1 != model.dim:
        raise UserInputError(
            f"the example image has shape {image.shape} (C, *spatial) but the model takes {model.in_channels} "
            f"channel(s) in {model.dim}D"
        )
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


def _field_message(error) -> str:
    """One line for a name, author or license bioimage.io refuses."""
    fields = {str(e["loc"][0]) for e in error.errors() if e.get("loc")}
    if "name" in fields:
        return "the model name may contain only letters, digits, spaces and _ + - ( ), at most 128 characters"
    if "authors" in fields:
        return "author names must not be empty"
    return "bioimage.io refused the description: " + " ".join(str(error).split())[:300]


def _sample_image(model: Model) -> np.ndarray:
    from .synthetic import nuclei_sample

    sample = nuclei_sample(model.dim).image
    return np.repeat(sample[None], model.in_channels, axis=0)


def _validate(package: Path) -> None:
    """Run ``bioimageio.core.test_model`` on the written ``package`` (on the CPU, as the test output
    was computed there); a failed check raises a one-line :class:`UserInputError`."""
    from bioimageio.core import test_model

    for weight_format in ("pytorch_state_dict", "torchscript"):
        _check(test_model(str(package), weight_format=weight_format, devices=["cpu"]))


def _check(summary) -> None:
    if summary.status != "passed":
        failed = [d for d in summary.details if d.status == "failed"]
        first = failed[0] if failed else None
        reason = f"{first.name}: {first.errors[0].msg if first.errors else ''}" if first else summary.status
        reason = " ".join(reason.split())[:300]
        raise UserInputError(f"the bioimage.io package failed its own test ({reason}); nothing was written")


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
