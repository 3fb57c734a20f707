"""``napari-unet`` command line: train, predict, export, demo. Bad input exits 2 with one line, no traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from .core.errors import UserInputError


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to compute")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],  # core.precision.CHOICES, without importing torch here
        help="network arithmetic (default auto: bf16, or fp16 on older GPUs, on CUDA; fp32 elsewhere)",
    )


def _add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output napari-unet did not write (its own outputs are replaced without it; "
        "an input never is)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-unet", description="Train a U-Net from a few painted strokes and segment images with it."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on the painted pixels of a labels image")
    train.add_argument("--image", required=True, help="image file (.tif, .png, .npy, .zarr)")
    train.add_argument(
        "--labels", required=True, help="strokes, same shape: 0 = unpainted, 1 = background, 2.. = objects"
    )
    train.add_argument("--model", required=True, help="model directory to write")
    _add_overwrite(train)
    train.add_argument("--dim", type=int, choices=[2, 3], help="2D or 3D network (default: the image's)")
    train.add_argument("--time-budget", type=float, help="stop after this many seconds (default 60 without --steps)")
    train.add_argument("--steps", type=int, help="stop after this many steps")
    train.add_argument(
        "--init",
        help="start from: a model directory, a bioimage.io .zip napari-unet exported, or a pretrained name "
        "(nuclei-2d, nuclei-3d, nuclei-2d-dsb: real nuclei of every kind, RGB too)",
    )
    _add_device(train)
    train.add_argument("--seed", type=int, help="random seed")
    train.add_argument("--channel-axis", type=int, help="axis holding channels, for multichannel images")
    train.add_argument("--spacing", type=float, nargs="+", help="voxel size per spatial axis, e.g. 2 1 1 for ZYX")
    train.add_argument("--batch-size", type=int, help="patches per step (default 8 in 2D, 4 in 3D)")
    train.add_argument(
        "--intensity-augmentation",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of patches given random contrast, brightness and noise (default 0: the fastest fit to this "
        "image; e.g. 1 for a model meant for images that look different)",
    )

    predict = commands.add_parser("predict", help="segment an image with a trained model")
    predict.add_argument(
        "--model", required=True, help="model directory, bioimage.io .zip napari-unet exported, or pretrained name"
    )
    predict.add_argument("--image", required=True, help="image file (.tif, .png, .npy, .zarr)")
    predict.add_argument(
        "--out",
        required=True,
        help="labels output: .tif or .npy (in memory), .zarr (OME-Zarr labels, streamed block by block), "
        "or IMAGE.zarr/labels/NAME (into an OME-Zarr image's labels)",
    )
    _add_overwrite(predict)
    _add_device(predict)
    predict.add_argument(
        "--probabilities",
        action="store_true",
        help="also write class probabilities next to --out (<name>_probabilities)",
    )
    predict.add_argument("--channel-axis", type=int, help="axis holding channels, for multichannel images")
    predict.add_argument("--tile-size", type=int, help="tile edge in pixels (default 512 in 2D, 128 in 3D)")
    predict.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default 0.25)")
    predict.add_argument("--batch-size", type=int, help="tiles per forward pass (default 1 on CPU, 4 on GPU)")
    predict.add_argument(
        "--instances",
        action="store_true",
        help="write objects (0 = background, 1..N; touching ones split) instead of classes",
    )
    predict.add_argument(
        "--block-size", type=int, help="block edge for .zarr output (default 1152 in 2D, 192 in 3D; less memory)"
    )
    predict.add_argument(
        "--scheduler", help="dask.distributed scheduler address (tcp://HOST:PORT) to run the blocks on; .zarr --out"
    )
    predict.add_argument(
        "--ngff-version", choices=["0.4", "0.5"], help="OME-Zarr version of .zarr output (default: the input's, or 0.4)"
    )

    export = commands.add_parser("export", help="write a model as a bioimage.io package (.zip)")
    export.add_argument("--model", required=True, help="model directory (or pretrained name)")
    export.add_argument("--format", default="bioimageio", choices=["bioimageio"], help="package format")
    export.add_argument("--out", required=True, help="package file to write (.zip)")
    _add_overwrite(export)
    export.add_argument("--image", help="example image for the test input and cover (default: the sample nuclei)")
    export.add_argument("--channel-axis", type=int, help="axis holding channels in --image")
    export.add_argument("--name", help="model name shown on bioimage.io")
    export.add_argument("--author", action="append", help="author name (repeat for several)")
    export.add_argument("--license", default="CC-BY-4.0", help="SPDX license id of the weights (default CC-BY-4.0)")

    demo = commands.add_parser("demo", help="train on the bundled sample data, write masks, print metrics")
    demo.add_argument("--dim", type=int, choices=[2, 3], default=2, help="2D nuclei image or 3D nuclei volume")
    demo.add_argument("--time-budget", type=float, default=30.0, help="training seconds (default 30)")
    demo.add_argument("--out", default="demo_output", help="folder for the model and masks (default demo_output)")
    _add_device(demo)
    demo.add_argument(
        "--gui", action="store_true", help="instead: open napari with the sample and the trainer dock, training live"
    )
    return parser


def _progress_bar(total: float, unit: str, description: str):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        mininterval=0.5,
        unit=unit,
        desc=description,
        leave=False,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}]{postfix}",
    )


def _train_with_progress(image, labels, *, steps, time_budget, **kwargs):
    """``core.api.train`` with a progress bar, opened at the first step (after input checks)."""
    from .core.api import train

    by_steps = steps is not None and time_budget is None
    bars = []

    def update(report) -> None:
        if not bars:
            bars.append(_progress_bar(steps if by_steps else time_budget, "steps" if by_steps else "s", "training"))
        bar = bars[0]
        bar.n = report.step if by_steps else min(report.elapsed, time_budget)
        status = f"step {report.step}, loss {report.loss:.3f}, {report.steps_per_second:.1f} steps/s"
        bar.set_postfix_str(status, refresh=False)
        bar.update(0)  # redraws at most every `mininterval` seconds

    try:
        return train(image, labels, steps=steps, time_budget=time_budget, callback=update, **kwargs)
    finally:
        for bar in bars:
            bar.close()


def _with_progress(predictor, unit: str, *args, **kwargs):
    """``predictor`` with a progress bar, opened at its first report (after input checks)."""
    bars = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(_progress_bar(total, unit, "predicting"))
        bars[0].total, bars[0].n = total, done
        bars[0].refresh()

    try:
        return predictor(*args, progress=update, **kwargs)
    finally:
        for bar in bars:
            bar.close()


def _predict_with_progress(model, image, **kwargs):
    from .core.api import predict

    return _with_progress(predict, "tiles", model, image, **kwargs)


def _train(args: argparse.Namespace) -> None:
    from .core.config import TrainConfig
    from .core.io import read_image
    from .core.ownership import MODEL, check_replaceable
    from .core.rescue import save_or_keep
    from .core.validation import check_train_settings

    model_path = Path(args.model)
    inputs = [args.image, args.labels, args.init]
    check_replaceable(model_path, MODEL, overwrite=args.overwrite, inputs=inputs)
    if not model_path.parent.is_dir():
        raise UserInputError(f"folder {model_path.parent} does not exist: create it first")
    if not os.access(model_path.parent, os.W_OK):
        raise UserInputError(f"folder {model_path.parent} is not writable: choose another --model path")
    time_budget = args.time_budget if args.time_budget is not None else (None if args.steps else 60.0)
    check_train_settings(
        TrainConfig(
            steps=args.steps,
            time_budget=time_budget,
            batch_size=args.batch_size,
            seed=args.seed,
            intensity_probability=args.intensity_augmentation,
        )
    )  # the numbers first, before reading any image (core.api.train checks them all again)
    image = read_image(args.image)
    labels = read_image(args.labels)
    model = _train_with_progress(
        image.data,
        labels.data,
        steps=args.steps,
        time_budget=time_budget,
        dim=args.dim,
        spacing=args.spacing or image.spacing,
        channel_axis=image.resolve_channel_axis(args.channel_axis),
        init=args.init,
        device=args.device,
        precision=args.precision,
        seed=args.seed,
        batch_size=args.batch_size,
        intensity_probability=args.intensity_augmentation,
        image_name=Path(args.image).name,
    )
    save_or_keep(model, model_path, overwrite=args.overwrite, inputs=inputs)
    run = model.config.history[-1]
    summary = f"trained {run['steps']} steps in {run['seconds']:.1f} s on {run['device']} ({run['precision']})"
    held_out = (model.config.selection or {}).get("held_out_accuracy", {}).get(model.chosen)
    chosen = f"masks from the {model.chosen}" + ("" if held_out is None else f", held-out accuracy {held_out:.2f}")
    print(f"{summary} (loss {run['final_loss']:.3f}; {chosen}) → {model_path}")


def _is_zarr_output(out: str) -> bool:
    from .core.zarr_output import is_image_labels_path

    return Path(out).suffix.lower() == ".zarr" or is_image_labels_path(out)


def _connect(address: str):
    from distributed import Client

    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise UserInputError(
            f"cannot reach the dask scheduler at {address} ({type(error).__name__}): start one (see README) or drop "
            "--scheduler"
        ) from None


def _predict_out_of_core(args: argparse.Namespace) -> None:
    from .core.model_sources import open_model
    from .core.ownership import PREDICTION, check_replaceable
    from .core.zarr_output import LabelsTarget, predict_to_zarr, probabilities_path

    target = LabelsTarget.parse(args.out)
    for path in [target.root, probabilities_path(target.root)] if args.probabilities else [target.root]:
        check_replaceable(path, PREDICTION, overwrite=args.overwrite, inputs=[args.image, args.model])
    model = open_model(args.model)
    client = _connect(args.scheduler) if args.scheduler else None
    try:
        times = _with_progress(
            predict_to_zarr,
            "blocks",
            model,
            args.image,
            args.out,
            channel_axis=args.channel_axis,
            probabilities=args.probabilities,
            tile_size=args.tile_size,
            overlap=args.overlap,
            batch_size=args.batch_size,
            block_size=args.block_size,
            device=args.device,
            precision=args.precision,
            client=client,
            ngff_version=args.ngff_version,
            instances=args.instances,
            overwrite=args.overwrite,
        )
    finally:
        if client is not None:
            client.close()
    print(f"predicted {times.blocks} blocks in {times.wall:.1f} s → {args.out}")


def _predict(args: argparse.Namespace) -> None:
    from .core.inference import check_image_for_model
    from .core.io import check_output_path, read_image, write_array
    from .core.model_sources import open_model
    from .core.ownership import PREDICTION, check_replaceable
    from .core.validation import check_count, check_tiling
    from .core.zarr_output import probabilities_path

    check_tiling(args.tile_size, args.overlap, args.batch_size)
    if args.block_size is not None:
        check_count(args.block_size, "the block size (--block-size)")
    if _is_zarr_output(args.out):
        _predict_out_of_core(args)
        return
    if args.scheduler or args.ngff_version or args.block_size:
        raise UserInputError("--scheduler, --block-size and --ngff-version need a .zarr --out")
    out = check_output_path(args.out)
    inputs = [args.image, args.model]
    targets = [out, probabilities_path(out)] if args.probabilities else [out]
    for target in targets:
        check_output_path(target)
        check_replaceable(target, PREDICTION, overwrite=args.overwrite, inputs=inputs)
    model = open_model(args.model)
    image = read_image(args.image)
    channels, channel_axis = image.channels_first(args.channel_axis)
    source = "--channel-axis" if args.channel_axis is not None else image.axes_source
    check_image_for_model(model, channels.shape, channel_axis, source)  # names the file's metadata
    started = time.perf_counter()
    prediction = _predict_with_progress(
        model,
        image.data,
        channel_axis=channel_axis,
        probabilities=args.probabilities,
        device=args.device,
        precision=args.precision,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
    )
    if prediction.probabilities is not None:
        write_array(
            probabilities_path(out), prediction.probabilities, image.spacing, overwrite=args.overwrite, inputs=inputs
        )
    labels = prediction.labels
    if args.instances:
        from .core.postprocess import instances_from_labels

        labels = instances_from_labels(labels, spacing=image.spacing)
    write_array(out, labels, image.spacing, overwrite=args.overwrite, inputs=inputs)
    print(f"predicted {image.data.shape} in {time.perf_counter() - started:.1f} s → {out}")


def _export(args: argparse.Namespace) -> None:
    from .core.bioimageio_package import export_bioimageio
    from .core.io import read_image
    from .core.model_sources import open_model

    model = open_model(args.model)
    image = None
    if args.image:
        image, _ = read_image(args.image).channels_first(args.channel_axis)
    started = time.perf_counter()
    out = export_bioimageio(
        model,
        args.out,
        image=image,
        name=args.name,
        authors=args.author,
        license=args.license,
        overwrite=args.overwrite,
        inputs=[args.model, args.image],
    )
    print(f"exported and tested a bioimage.io package in {time.perf_counter() - started:.1f} s → {out}")


def _demo_gui(args: argparse.Namespace) -> None:
    """napari with the sample data and the trainer dock, training started."""
    import napari

    viewer = napari.Viewer()
    viewer.open_sample("napari-unet", f"nuclei_{args.dim}d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net trainer")
    widget.train()
    napari.run()


def _demo(args: argparse.Namespace) -> None:
    from .core.io import check_output_path, write_array
    from .core.metrics import connected_instances, foreground_iou, instance_f1
    from .core.ownership import MODEL, PREDICTION, check_replaceable
    from .core.rescue import save_or_keep
    from .core.validation import check_stop
    from .sample_data import nuclei_sample

    if args.gui:
        _demo_gui(args)
        return
    check_stop(None, args.time_budget)  # before the output folder is made
    out = Path(args.out)
    arrays = [out / f"{name}.tif" for name in ("image", "strokes", "prediction")]
    for target, kind in [(out / "model", MODEL), *((a, PREDICTION) for a in arrays)]:
        check_replaceable(target, kind)  # before training: refuse to replace what napari-unet did not write
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"cannot create {out}: {error.strerror or error}; choose another --out") from None
    for target in arrays:
        check_output_path(target)
    sample = nuclei_sample(args.dim)
    print(f"sample: {args.dim}D nuclei {sample.image.shape}, {int((sample.strokes > 0).sum())} painted pixels")
    model = _train_with_progress(
        sample.image,
        sample.strokes,
        steps=None,
        time_budget=args.time_budget,
        spacing=sample.spacing,
        device=args.device,
        precision=args.precision,
        seed=0,
    )
    save_or_keep(model, out / "model")
    prediction = _predict_with_progress(model, sample.image, device=args.device, precision=args.precision)
    foreground = prediction.labels == 2
    metrics = {
        "foreground_iou": round(foreground_iou(foreground, sample.instances > 0), 4),
        "instance_f1": round(instance_f1(connected_instances(foreground), sample.instances), 4),
        "steps": model.config.history[-1]["steps"],
        "seconds": model.config.history[-1]["seconds"],
    }
    for name, array in (("image", sample.image), ("strokes", sample.strokes), ("prediction", prediction.labels)):
        write_array(out / f"{name}.tif", array, sample.spacing)
    print(json.dumps(metrics))
    print(f"model, image, strokes and prediction written to {out}/")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on stderr as one line each, like errors (no source location)."""
    print(f"napari-unet: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-unet`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    commands = {"train": _train, "predict": _predict, "export": _export, "demo": _demo}
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            commands[args.command](args)
    except UserInputError as error:
        print(f"napari-unet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-unet: interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as error:  # an I/O failure no reader or writer turned into a message
        where = f" ({error.filename})" if error.filename else ""
        print(f"napari-unet: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
