"""Pretrained start vs scratch: foreground IoU and instance F1 after 0 (pretrained only), 1, 3, 10 and 30 s
of fine-tuning on sparse strokes, on synthetic images the pretraining never saw (fixed combinations of settings
within its ranges, other seeds). Separate runs per time budget, as a user would set it.

Prints one JSON object; ``--plot PATH`` also draws IoU against training time (needs matplotlib)::

    python benchmarks/pretrained.py --plot docs/pretrained_vs_scratch.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from time_to_quality import environment, scores

from napari_unet.core.api import predict, train
from napari_unet.core.data.synthetic import Style, synthetic_nuclei
from napari_unet.core.models.model_sources import open_model

HELD_OUT = {
    "bundled look": (2, {}, Style()),
    "dim, noisy, blurred": (2, {"radius_range": (8.0, 12.0)}, Style(photons=40, read_noise=12, psf_sigma=2.4)),
    "small, crowded": (
        2,
        {"radius_range": (4.0, 6.0), "density": 0.55},
        Style(psf_sigma=1.0, texture=0.4, photons=400, edge_dimming=0.2),
    ),
    "large, textured, debris": (
        2,
        {"radius_range": (14.0, 20.0), "density": 0.35},
        Style(texture=0.45, clutter=0.22, edge_dimming=0.6, background=0.3),
    ),
    "3D bundled look": (3, {}, Style()),
    "3D dim, noisy": (3, {"radius_range": (6.0, 10.0)}, Style(photons=50, read_noise=10, psf_sigma=2.0)),
}
SHAPES = {2: ((512, 512), (1.0, 1.0)), 3: ((48, 128, 128), (2.0, 1.0, 1.0))}
PRETRAINED = {2: "nuclei-2d", 3: "nuclei-3d"}


def run_case(name: str, seed: int, budgets: list[float], device: str) -> dict:
    dim, geometry, style = HELD_OUT[name]
    shape, spacing = SHAPES[dim]
    sample = synthetic_nuclei(shape, spacing=spacing, style=style, seed=seed, **geometry)

    def evaluate(model) -> dict:
        probabilities = predict(model, sample.image, probabilities=True, device=device).probabilities
        return scores(probabilities, sample.instances, spacing)

    curves = {"pretrained": [{"seconds": 0, "steps": 0, **evaluate(open_model(PRETRAINED[dim]))}], "scratch": []}
    for budget in budgets:
        for start, init in (("pretrained", PRETRAINED[dim]), ("scratch", None)):
            model = train(
                sample.image, sample.strokes, spacing=spacing, init=init, time_budget=budget, seed=seed, device=device
            )
            steps = model.config.history[-1]["steps"]
            curves[start].append({"seconds": budget, "steps": steps, **evaluate(model)})
    return {"style": name, "dim": dim, "seed": seed, "painted_fraction": float((sample.strokes > 0).mean()), **curves}


def plot(cases: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(cases))
    rows = -(-len(cases) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.0 * rows), sharey=True, squeeze=False)
    axes = axes.ravel()
    for axis in axes[len(cases) :]:
        axis.set_visible(False)
    for axis, case in zip(axes, cases):
        for start, style in (("pretrained", "o-"), ("scratch", "s--")):
            points = [p for p in case[start] if p["seconds"] > 0]
            axis.plot([p["seconds"] for p in points], [p["iou"] for p in points], style, label=start)
        axis.axhline(case["pretrained"][0]["iou"], color="gray", lw=1, ls=":", label="pretrained, no strokes")
        axis.set(xscale="log", xlabel="seconds of training", title=case["style"], ylim=(0, 1))
        axis.title.set_fontsize(9)
        axis.grid(alpha=0.3)
    for axis in axes[::columns]:
        axis.set_ylabel("foreground IoU")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[1, 3, 10, 30])
    parser.add_argument("--styles", nargs="*", default=list(HELD_OUT), choices=list(HELD_OUT))
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--plot", help="PNG of IoU against training time")
    args = parser.parse_args()
    cases = [run_case(name, args.seed, args.budgets, args.device) for name in args.styles]
    if args.plot:
        plot(cases, args.plot)
    report = {"benchmark": "pretrained_vs_scratch", **environment(), "cases": cases}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
