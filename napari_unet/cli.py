"""``napari-unet`` command line: train, predict, export, demo. Bad input exits 2 with one line, no traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from ._cli_parser import build_parser
from .core.errors import UserInputError


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
    from .core.io.io import check_output_folder, read_image
    from .core.io.ownership import MODEL, check_replaceable
    from .core.io.rescue import save_or_keep
    from .core.models.config import TrainConfig
    from .core.models.model_sources import AUTO
    from .core.validation import check_train_settings

    model_path = Path(args.model)
    init = None if args.init.lower() == "none" else args.init
    inputs = [args.image, args.labels] + ([init] if init not in (None, AUTO) else [])
    check_replaceable(model_path, MODEL, overwrite=args.overwrite, inputs=inputs)
    check_output_folder(model_path, "--model path")
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
        init=init,
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
    selection = model.config.selection or {}
    held_out = selection.get("held_out_accuracy", {}).get(model.chosen)
    chosen = f"masks from the {model.chosen}" + ("" if held_out is None else f", held-out accuracy {held_out:.2f}")
    if selection.get("start_kept"):
        chosen = "masks from the pretrained start, unchanged: it gets every stroke right"
    print(f"{summary} (loss {run['final_loss']:.3f}; {chosen}) → {model_path}")


def _is_zarr_output(out: str) -> bool:
    from .core.io.labels_target import is_image_labels_path

    return Path(out).suffix.lower() == ".zarr" or is_image_labels_path(out)


SCHEDULER_TIMEOUT = "10s"  # how long --scheduler waits for a dask scheduler to answer


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise UserInputError("--scheduler needs dask.distributed: pip install 'napari-unet[distributed]'") from None
    try:
        return Client(address, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        raise UserInputError(
            f"cannot reach the dask scheduler at {address} ({type(error).__name__}): start one (see README) or drop "
            "--scheduler"
        ) from None


def _predict_out_of_core(args: argparse.Namespace) -> None:
    from .core.infer.zarr_output import predict_to_zarr
    from .core.io.labels_target import LabelsTarget, probabilities_path
    from .core.io.ownership import PREDICTION, check_replaceable
    from .core.models.model_sources import open_model

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
            keep_specks=args.keep_specks,
        )
    finally:
        if client is not None:
            client.close()
    print(f"predicted {times.blocks} blocks in {times.wall:.1f} s → {args.out}")


def _predict(args: argparse.Namespace) -> None:
    from .core.infer.inference import check_image_for_model
    from .core.io.io import check_output_path, read_image, write_array
    from .core.io.labels_target import probabilities_path
    from .core.io.ownership import PREDICTION, check_replaceable
    from .core.models.model_sources import open_model
    from .core.validation import check_count, check_tiling

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
        probabilities=args.probabilities or args.instances,
        device=args.device,
        precision=args.precision,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        keep_specks=args.keep_specks,
    )
    if args.probabilities:
        write_array(
            probabilities_path(out), prediction.probabilities, image.spacing, overwrite=args.overwrite, inputs=inputs
        )
    labels = prediction.labels
    if args.instances:
        from .core.instances.postprocess import certainty, instances_from_labels

        labels = instances_from_labels(labels, image.spacing, certainty=certainty(prediction.probabilities))
    write_array(out, labels, image.spacing, overwrite=args.overwrite, inputs=inputs)
    print(f"predicted {image.data.shape} in {time.perf_counter() - started:.1f} s → {out}")


def _export(args: argparse.Namespace) -> None:
    from .core.bioimageio.bioimageio_export import export_bioimageio
    from .core.io.io import read_image
    from .core.models.model_sources import open_model

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
    from .core.instances.metrics import connected_instances, foreground_iou, instance_f1
    from .core.io.io import check_output_path, write_array
    from .core.io.ownership import MODEL, PREDICTION, check_replaceable
    from .core.io.rescue import save_or_keep
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
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="napari-unet: %(message)s", stream=sys.stderr)
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
