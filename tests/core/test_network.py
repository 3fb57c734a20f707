"""UNet shapes for 2D/3D, odd sizes, channels; anisotropic pooling plans."""

import pytest
import torch

from napari_unet.core.models.config import NetworkConfig
from napari_unet.core.models.network import UNet, pool_strides_for_spacing

CASES = [
    # dim, in_channels, classes, depth, spatial
    (2, 1, 2, 4, (64, 64)),
    (2, 1, 3, 4, (37, 51)),
    (2, 3, 2, 3, (17, 9)),
    (2, 2, 4, 4, (1, 5)),
    (3, 1, 2, 3, (16, 32, 32)),
    (3, 2, 3, 4, (7, 19, 23)),
    (3, 1, 2, 2, (1, 1, 1)),
]


@pytest.mark.parametrize(("dim", "channels", "classes", "depth", "spatial"), CASES)
def test_output_shape_matches_input(dim, channels, classes, depth, spatial):
    network = UNet(NetworkConfig(dim=dim, in_channels=channels, num_classes=classes, base_channels=4, depth=depth))
    network.eval()
    x = torch.randn(2, channels, *spatial)
    assert network(x).shape == (2, classes, *spatial)


@pytest.mark.parametrize(
    ("spacing", "depth", "expected"),
    [
        ((1, 1), 4, [[2, 2]] * 3),
        ((1, 1, 1), 3, [[2, 2, 2]] * 2),
        ((2, 1, 1), 3, [[2, 2, 2], [2, 2, 2]]),
        ((5, 1, 1), 4, [[1, 2, 2], [1, 2, 2], [2, 2, 2]]),
        ((10, 1, 1), 4, [[1, 2, 2], [1, 2, 2], [1, 2, 2]]),
    ],
)
def test_coarse_axes_are_not_pooled_until_others_catch_up(spacing, depth, expected):
    assert pool_strides_for_spacing(spacing, depth) == expected


def test_anisotropic_network_keeps_shape():
    config = NetworkConfig(
        dim=3,
        in_channels=1,
        num_classes=2,
        base_channels=4,
        depth=4,
        pool_strides=pool_strides_for_spacing((5, 1, 1), 4),
    )
    assert config.size_multiple == (2, 8, 8)
    assert UNet(config).eval()(torch.randn(1, 1, 5, 30, 30)).shape == (1, 2, 5, 30, 30)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="dim"):
        NetworkConfig(dim=4, in_channels=1, num_classes=2)
    with pytest.raises(ValueError, match="pool_strides"):
        NetworkConfig(dim=2, in_channels=1, num_classes=2, depth=3, pool_strides=[[2, 2]])
