"""Supervised losses see painted voxels only; the smoothness term is edge-aware."""

import pytest
import torch

from napari_unet.core.train.losses import edge_aware_smoothness, masked_cross_entropy, masked_soft_dice, sparse_loss


@pytest.mark.parametrize("loss_fn", [masked_cross_entropy, masked_soft_dice])
@pytest.mark.parametrize("spatial", [(12, 10), (4, 6, 5)])
def test_gradient_is_zero_at_unpainted_voxels(loss_fn, spatial):
    torch.manual_seed(0)
    logits = torch.randn(2, 3, *spatial, requires_grad=True)
    annotations = torch.zeros(2, *spatial, dtype=torch.uint8)
    flat = annotations.view(-1)
    flat[torch.randperm(flat.numel())[:10]] = torch.tensor([1, 2, 3, 1, 2, 3, 1, 2, 3, 1], dtype=torch.uint8)
    loss_fn(logits, annotations).backward()
    grad_norm = logits.grad.abs().sum(1)
    assert torch.all(grad_norm[annotations == 0] == 0)
    assert torch.all(grad_norm[annotations > 0] > 0)


def test_unpainted_logits_do_not_change_the_loss():
    torch.manual_seed(1)
    logits = torch.randn(1, 2, 8, 8)
    annotations = torch.zeros(1, 8, 8, dtype=torch.uint8)
    annotations[0, 0, :3] = 1
    annotations[0, 5, 4:] = 2
    changed = logits.clone()
    changed[:, :, annotations[0] == 0] = torch.randn(2, int((annotations == 0).sum()))
    for loss_fn in (masked_cross_entropy, masked_soft_dice):
        assert torch.allclose(loss_fn(logits, annotations), loss_fn(changed, annotations))


def test_classes_weigh_equally_whatever_their_stroke_length():
    logits = torch.zeros(1, 2, 1, 100)
    logits[0, 0, 0, :] = 2.0  # predicts class 1 (background) everywhere
    few_objects = torch.ones(1, 1, 100, dtype=torch.uint8)
    few_objects[0, 0, :2] = 2
    many_objects = torch.ones(1, 1, 100, dtype=torch.uint8)
    many_objects[0, 0, :50] = 2
    assert torch.allclose(masked_cross_entropy(logits, few_objects), masked_cross_entropy(logits, many_objects))


def test_nothing_painted_gives_zero_loss_with_a_graph():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    loss = sparse_loss(logits, torch.zeros(1, 4, 4, dtype=torch.uint8))
    loss.backward()
    assert loss.item() == 0 and torch.all(logits.grad == 0)


def test_smoothness_prefers_cuts_along_intensity_edges():
    image = torch.zeros(1, 1, 8, 8)
    image[..., 4:] = 1.0  # an edge between columns 3 and 4

    def confident(split_column):
        logits = torch.full((1, 2, 8, 8), -10.0)
        logits[:, 0, :, :split_column] = 10.0
        logits[:, 1, :, split_column:] = 10.0
        return logits

    on_edge = edge_aware_smoothness(confident(4), image, sigma=0.1)
    off_edge = edge_aware_smoothness(confident(2), image, sigma=0.1)
    assert on_edge < off_edge / 10
