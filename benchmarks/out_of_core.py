"""Out-of-core prediction from OME-Zarr to OME-Zarr labels: throughput, peak memory against image
size, the share of time spent in I/O, and label-image write speed against plain zarr.

Each size runs in a fresh process whose resident memory is sampled every 10 ms; memory growth is
the peak during prediction minus the level after loading the model. Prints one JSON object::

    python benchmarks/out_of_core.py --sizes-mib 4 64 256
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MIB = 1 << 20


def make_image(path: Path, side: int, version: str = "0.4") -> None:
    """A ``side``² uint16 OME-Zarr image of synthetic nuclei, written chunk by chunk."""
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    from napari_unet.core.data.synthetic import synthetic_nuclei
    from napari_unet.core.io.ngff import ngff_format, zarr_format

    tiles = [synthetic_nuclei((1024, 1024), seed=seed).image for seed in range(4)]
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format(version))
    array = group.create_array("0", shape=(side, side), chunks=(1024, 1024), dtype="uint16")
    for i, y in enumerate(range(0, side, 1024)):
        for j, x in enumerate(range(0, side, 1024)):
            tile = tiles[(i + 2 * j) % 4]
            array[y : y + 1024, x : x + 1024] = tile[: min(1024, side - y), : min(1024, side - x)]
    write_multiscales_metadata(
        group,
        [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}],
        fmt=ngff_format(version),
        axes=[{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
    )


class PeakRss:
    """Samples this process's resident memory in a thread; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_one(model_dir: str, image: str, out: str, mode: str) -> dict:
    """In a child process: predict ``image`` out of core (``mode='blocks'``) or whole in memory."""
    import psutil
    import torch

    from napari_unet.core.api import predict
    from napari_unet.core.infer.zarr_output import predict_to_zarr
    from napari_unet.core.io.io import read_image, write_array
    from napari_unet.core.models.model import Model

    torch.set_num_threads(psutil.cpu_count(logical=False) or 1)
    model = Model.load(model_dir)
    predict(model, np.zeros((64, 64), np.uint16), device="cpu")  # warm up allocator and kernels
    baseline = psutil.Process().memory_info().rss
    started = time.perf_counter()
    with PeakRss() as rss:
        if mode == "blocks":
            times = predict_to_zarr(model, image, out, device="cpu").as_dict()
        else:
            data = read_image(image).data
            labels = predict(model, data, device="cpu").labels
            write_array(out, labels)
            times = {}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_growth_mib": (rss.peak - baseline) / MIB, "times": times}


def write_speed(side: int, folder: Path) -> dict:
    """MB/s of writing a ``side``² uint8 label array: our OME-Zarr writer (level 0 alone, and with
    the pyramid and atomic swap) against plain zarr with the same chunks and codecs."""
    import zarr

    from napari_unet.core.io.label_writer import write_label_image
    from napari_unet.core.io.ngff import LabelImageSpec, create_level0, label_chunks, write_pyramid

    rng = np.random.default_rng(0)
    labels = (rng.random((side, side)) < 0.3).astype(np.uint8) + 1
    labels = np.repeat(np.repeat(labels[::8, ::8], 8, 0), 8, 1)[:side, :side]  # blobs, like masks
    megabytes = labels.nbytes / 1e6
    results = {}

    started = time.perf_counter()
    plain = zarr.create_array(
        str(folder / "plain.zarr"), shape=labels.shape, chunks=label_chunks(labels.shape), dtype="uint8", zarr_format=2
    )
    plain[...] = labels
    results["plain_zarr_mb_per_s"] = megabytes / (time.perf_counter() - started)

    spec = LabelImageSpec.for_image(labels.shape, (1.0, 1.0), None)
    started = time.perf_counter()
    level0 = create_level0(folder / "level0.zarr", spec)
    level0[...] = labels
    results["ours_level0_mb_per_s"] = megabytes / (time.perf_counter() - started)
    write_pyramid(folder / "level0.zarr", spec, "level0.zarr")

    started = time.perf_counter()
    write_label_image(labels, folder / "ours.zarr", spacing=(1.0, 1.0))
    results["ours_full_export_mb_per_s"] = megabytes / (time.perf_counter() - started)
    results["megabytes"] = megabytes
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", type=float, nargs="+", default=[4, 64, 256], help="image sizes (uint16)")
    parser.add_argument("--in-memory-up-to-mib", type=float, default=64, help="also run whole-image prediction")
    parser.add_argument("--base-channels", type=int, default=8, help="network width (small: CPU time)")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*args.child)))
        return

    import torch

    from napari_unet.core.api import train
    from napari_unet.sample_data import nuclei_sample

    folder = Path(tempfile.mkdtemp(prefix="napari-unet-bench-"))
    sample = nuclei_sample(2)
    model = train(
        sample.image, sample.strokes, time_budget=15, seed=0, base_channels=args.base_channels, depth=args.depth
    )
    model.save(folder / "model")
    runs = []
    for size in args.sizes_mib:
        side = round(np.sqrt(size * MIB / 2))
        image = folder / f"image-{side}.zarr"
        make_image(image, side)
        modes = ["blocks"] + (["memory"] if size <= args.in_memory_up_to_mib else [])
        for mode in modes:
            out = folder / f"labels-{side}-{mode}.{'zarr' if mode == 'blocks' else 'npy'}"
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(folder / "model"), str(image), str(out), mode],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            times = result.pop("times")
            megapixels = side * side / 1e6
            row = {"mode": mode, "image_mib": side * side * 2 / MIB, "shape": [side, side], **result}
            row["mpx_per_s"] = megapixels / result["seconds"]
            row["rss_growth_share_of_image"] = result["rss_growth_mib"] / row["image_mib"]
            if times:
                row["io_share"] = (times["read"] + times["write"]) / times["wall"]
                row["io_wait_share"] = times["waiting"] / times["wall"]
                row["blocks"] = times["blocks"]
            runs.append(row)
            print(json.dumps(row), file=sys.stderr)
    report = {
        "benchmark": "out_of_core",
        "device": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU",
        "torch": torch.__version__,
        "network": {"base_channels": args.base_channels, "depth": args.depth},
        "runs": runs,
        "write_speed": write_speed(4096, folder),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
