"""The ``napari-unet`` command line's arguments: one subcommand each for train, predict, export and demo."""

from __future__ import annotations

import argparse


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to compute")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],  # core.models.precision.CHOICES, without importing torch here
        help="network arithmetic (default auto: bf16, or fp16 on older GPUs, on CUDA; fp32 elsewhere)",
    )


def _add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output napari-unet did not write (its own outputs are replaced without it; "
        "an input never is)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-unet", description="Train a U-Net from a few painted strokes and segment images with it."
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also report what napari-unet does (its log) on stderr"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands)
    _add_predict(commands)
    _add_export(commands)
    _add_demo(commands)
    return parser


def _add_train(commands) -> None:
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
        default="auto",
        help="start from: a model directory, a bioimage.io .zip napari-unet exported, or a pretrained name "
        "(nuclei-2d, nuclei-3d, nuclei-2d-dsb: real nuclei of every kind, RGB too); 'none' for a new network; "
        "default 'auto': nuclei-2d-dsb for 2D grey or RGB images with one object class, else a new network",
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


def _add_predict(commands) -> None:
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
    predict.add_argument("--tile-size", type=int, help="tile edge in pixels, at most (default 1024 in 2D, 128 in 3D)")
    predict.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default 0.25)")
    predict.add_argument("--batch-size", type=int, help="tiles per forward pass (default 1 on CPU, 4 on GPU)")
    predict.add_argument(
        "--instances",
        action="store_true",
        help="write objects (0 = background, 1..N; touching ones split) instead of classes",
    )
    predict.add_argument(
        "--keep-specks",
        action="store_true",
        help="keep pieces of the mask far smaller than the image's objects (removed by default)",
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


def _add_export(commands) -> None:
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


def _add_demo(commands) -> None:
    demo = commands.add_parser("demo", help="train on the bundled sample data, write masks, print metrics")
    demo.add_argument("--dim", type=int, choices=[2, 3], default=2, help="2D nuclei image or 3D nuclei volume")
    demo.add_argument("--time-budget", type=float, default=30.0, help="training seconds (default 30)")
    demo.add_argument("--out", default="demo_output", help="folder for the model and masks (default demo_output)")
    _add_device(demo)
    demo.add_argument(
        "--gui", action="store_true", help="instead: open napari with the sample and the trainer dock, training live"
    )
