"""The performance suite in one command: speed (prediction vs MONAI, training vs a plain loop, MFU) and
time to quality (IoU after each training budget, beside the random forest), on one device.

Prints one JSON object (``--out`` also writes it to a file)::

    python benchmarks/suite.py                                              # CPU
    python benchmarks/suite.py --device cuda --budgets 0.5 1 2 3 10 30      # a GPU machine
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import speed
import time_to_quality

from napari_unet.core.models.precision import CHOICES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=CHOICES)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per prediction run")
    parser.add_argument("--train-steps", type=int, default=30, help="timed steps per training run")
    parser.add_argument("--budgets", type=float, nargs="+", default=[1, 3, 10, 30], help="training seconds")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    report = {
        "speed": speed.run(args.device, args.precision, args.repeats, args.train_steps, [2, 3]),
        "time_to_quality": time_to_quality.run(args.budgets, [10, 11], [10], args.device, args.precision),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
