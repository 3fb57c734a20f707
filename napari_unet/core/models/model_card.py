"""A model card: what a saved model is, what it was trained on and with what, in plain Markdown."""

from __future__ import annotations

from .config import ModelConfig


def model_card(config: ModelConfig) -> str:
    """``MODEL_CARD.md`` for a model directory, written from its ``config.json``."""
    network = config.network
    lines = [
        "# napari-unet model",
        "",
        f"A {network.dim}D U-Net (depth {network.depth}, {network.base_channels} base channels, {network.norm} norm, "
        f"pooling strides {network.pool_strides}) taking {network.in_channels} channel(s) and giving "
        f"{network.num_classes} classes. Load it with `napari_unet.load_model(path)` or the dock's Load model.",
        "",
        "## Classes",
        "",
        *[f"- {value}: {name}" for value, name in enumerate(config.class_names, start=1)],
        "",
        "## Input",
        "",
        f"- voxel size the pooling was planned for: {config.spacing}",
        f"- normalisation: per image and channel, percentile {config.normalization.low_percentile} → 0 and "
        f"{config.normalization.high_percentile} → 1 (ranges seen in training: {config.normalization.fitted})",
        *_rgb_line(config),
        "",
        *([config.description, ""] if config.description else []),
        *_prediction_lines(config),
        "## Training runs",
        "",
        "| # | date | image | shape (C, *spatial) | painted voxels per class | steps | seconds | device | versions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for number, run in enumerate(config.history, start=1):
        image = run.get("image", {})
        painted = ", ".join(f"{k}: {v}" for k, v in run.get("painted_voxels", {}).items())
        versions = ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items())
        lines.append(
            f"| {number} | {run.get('date', '')} | {image.get('name') or ''} | {image.get('shape', '')} | {painted} "
            f"| {run.get('steps', '')} | {run.get('seconds', '')} | {_device(run)} | {versions} |"
        )
    lines += ["", "Everything here is also in `config.json`; the weights are a PyTorch state dict in `weights.pt`.", ""]
    return "\n".join(lines)


def _device(run: dict) -> str:
    """``cuda:0 (bf16)``: the device, and the network's precision when it was not float32
    (``cpu (fp16 → fp32)`` when a run fell back to float32 part-way)."""
    precision = run.get("precision", "fp32")
    if "started_in" in run:
        precision = f"{run['started_in']} → {precision}"
    return run.get("device", "") + (f" ({precision})" if precision != "fp32" else "")


def _rgb_line(config: ModelConfig) -> list[str]:
    """The RGB reduction, when the model records one."""
    weights = config.normalization.rgb_weights
    if weights is None:
        return []
    return [f"- RGB images: reduced to one channel, {weights[0]}·R + {weights[1]}·G + {weights[2]}·B, before scaling"]


def _prediction_lines(config: ModelConfig) -> list[str]:
    """Which candidate predictions come from, and why (the held-out scores), when the trainer chose one (a
    model adapted to a new class count keeps the record but not the pixel classifier: its U-Net predicts)."""
    selection = config.selection
    if not selection or config.pixel_classifier is None:
        return []
    scores = ", ".join(f"{k} {v}" for k, v in selection["held_out_accuracy"].items() if v is not None)
    settings = config.pixel_classifier
    sigmas = f"σ {settings.get('sigma_min')}–{settings.get('sigma_max')}"
    if selection.get("start_kept"):
        worst_class = selection["held_out_accuracy"].get("start")
        unjudged = selection.get("start_unjudged_classes")
        judge = (
            f"the pixel classifier saw too few painted voxels of class(es) {unjudged} to check it there"
            if unjudged
            else "the pixel classifier contradicted little of it"
        )
        return [
            "## Prediction",
            "",
            "Masks come from the **U-Net as it was before this training**, the pretrained start: it got every "
            f"painted voxel right (share right of the class it did worst on: {worst_class}) and {judge}, so the "
            "fine-tuning was not kept.",
            "",
        ]
    vouched = []
    if selection.get("start_vouched"):
        vouched = [
            "The pretrained start got at least 90% of every class's painted voxels right and the U-Net's objects "
            "overlap the start's "
            f"(IoU {selection['network_start_agreement']} near the strokes), so the blend leans on the U-Net.",
            "",
        ]
    return [
        "## Prediction",
        "",
        f"Masks come from the **{selection['chosen']}**: of the pixel classifier (a random forest of "
        f"{settings.get('trees')} trees on multiscale features, {sigmas}, in `pixel_classifier.npz`), the U-Net "
        f"and their blend (U-Net weight {selection['blend_weight']}), it was chosen on "
        f"{selection['held_out_voxels']} painted voxels held out from training (balanced accuracy: {scores}). "
        "A bioimage.io export holds the U-Net only.",
        "",
        *vouched,
    ]
