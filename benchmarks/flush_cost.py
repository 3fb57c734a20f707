"""What flushing outputs to the disk before the atomic rename costs: ``write_label_image`` of a random
uint8 label image, with the flush and with it swapped for a no-op, alternated in one process. Prints JSON.

    python benchmarks/flush_cost.py [--side 4096] [--repeats 3] [--folder /tmp]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_unet.core.io import atomic
from napari_unet.core.io.label_writer import write_label_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4096, help="edge of the square label image")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", default=None, help="where to write (default: the system's temporary folder)")
    args = parser.parse_args()
    labels = np.random.default_rng(0).integers(1, 3, (args.side, args.side)).astype(np.uint8)
    flush = atomic._fsync_tree
    times: dict[str, list[float]] = {"flushed": [], "not_flushed": []}
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        write_label_image(labels, Path(folder) / "warm-up.zarr")  # imports dask, ome-zarr: not timed
        for repeat in range(args.repeats):
            for mode in times:
                atomic._fsync_tree = flush if mode == "flushed" else (lambda path: None)
                started = time.perf_counter()
                write_label_image(labels, Path(folder) / f"{mode}{repeat}.zarr")
                times[mode].append(time.perf_counter() - started)
    medians = {mode: statistics.median(seconds) for mode, seconds in times.items()}
    print(
        json.dumps(
            {
                "side": args.side,
                "seconds": times,
                "median": medians,
                "ratio": medians["flushed"] / medians["not_flushed"],
            }
        )
    )


if __name__ == "__main__":
    main()
