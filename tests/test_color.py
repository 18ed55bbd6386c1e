"""Colour conversions: Lab round trip and reference values, BT.601 luma, the colorization scaling."""

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab, rgb2ycbcr

from pixelplexus.color import (
    AB_SCALE,
    L_SCALE,
    lab_to_model,
    lab_to_rgb,
    model_to_lab,
    rgb_to_lab,
    rgb_to_y,
)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 3, 24, 31, generator=torch.Generator().manual_seed(0))


def test_lab_round_trip(images):
    back = lab_to_rgb(rgb_to_lab(images))
    assert back.shape == images.shape
    assert (back - images).abs().max() < 1e-3


def test_unbatched_input_keeps_its_layout(images):
    lab = rgb_to_lab(images[0])
    assert lab.shape == (3, 24, 31)
    torch.testing.assert_close(lab, rgb_to_lab(images)[0])
    assert rgb_to_y(images[0]).shape == (1, 24, 31)


@pytest.mark.parametrize(
    ("rgb", "lab"),
    [
        ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
        ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
        ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
    ],
)
def test_known_lab_values(rgb, lab):
    got = rgb_to_lab(torch.tensor(rgb).view(1, 3, 1, 1)).flatten()
    torch.testing.assert_close(got, torch.tensor(lab), atol=1e-2, rtol=0)


def test_lab_matches_skimage(images):
    ours = rgb_to_lab(images).permute(0, 2, 3, 1).numpy()
    reference = rgb2lab(images.permute(0, 2, 3, 1).double().numpy(), channel_axis=-1)
    np.testing.assert_allclose(ours, reference, atol=1e-2)


def test_lab_to_rgb_clips_out_of_gamut_colours():
    lab = torch.tensor([50.0, 120.0, -120.0]).view(1, 3, 1, 1)
    assert lab_to_rgb(lab).min() >= 0 and lab_to_rgb(lab).max() <= 1
    assert lab_to_rgb(lab, clip=False).max() > 1 or lab_to_rgb(lab, clip=False).min() < 0


def test_rgb_to_y_matches_matlab_rgb2ycbcr(images):
    y = rgb_to_y(images)
    assert y.shape == (4, 1, 24, 31)
    reference = rgb2ycbcr(images.permute(0, 2, 3, 1).double().numpy())[..., 0] / 255.0
    np.testing.assert_allclose(y[:, 0].numpy(), reference, atol=1e-5)
    torch.testing.assert_close(rgb_to_y(torch.ones(1, 3, 1, 1)).flatten(), torch.tensor([235 / 255]))
    torch.testing.assert_close(rgb_to_y(torch.zeros(1, 3, 1, 1)).flatten(), torch.tensor([16 / 255]))


def test_gradients_flow_through_lab_and_back():
    rgb = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    rgb[0, :, 0, 0] = 0.0  # the singular points of the sRGB gamma and the Lab cube root
    rgb[0, :, 0, 1] = 1.0
    rgb.requires_grad_(True)
    (lab_to_rgb(rgb_to_lab(rgb), clip=False).sum() + rgb_to_y(rgb).sum()).backward()
    assert rgb.grad is not None and torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0


def test_model_scaling_is_the_zhang_convention_and_inverts(images):
    lab = rgb_to_lab(images)
    l_norm, ab_norm = lab_to_model(lab)
    assert l_norm.shape == (4, 1, 24, 31) and ab_norm.shape == (4, 2, 24, 31)
    torch.testing.assert_close(l_norm, lab[:, :1] / 50 - 1)
    torch.testing.assert_close(ab_norm, lab[:, 1:] / 110)
    assert (L_SCALE, AB_SCALE) == (50.0, 110.0)
    assert l_norm.min() >= -1 and l_norm.max() <= 1 and ab_norm.abs().max() <= 1
    torch.testing.assert_close(model_to_lab(l_norm, ab_norm), lab)


def test_bad_shapes_say_what_is_expected():
    with pytest.raises(ValueError, match="N×3×H×W"):
        rgb_to_lab(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="1 channel and ab with 2"):
        model_to_lab(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4))


def test_ab_bins_cover_every_srgb_colour_once():
    from pixelplexus.color import ab_bins

    bins = ab_bins(10.0)
    assert bins.shape == (261, 2) and len(torch.unique(bins, dim=0)) == 261
    assert (bins.remainder(10.0) == 0).all()  # centres on multiples of the bin size
    colours = torch.rand(3, 20000, 1, generator=torch.Generator().manual_seed(1))
    ab = rgb_to_lab(colours)[1:, :, 0].T
    cells = torch.round(ab / 10.0) * 10.0
    assert (torch.cdist(cells, bins).min(dim=1).values == 0).all()  # every colour falls in a bin
    assert len(ab_bins(20.0)) < len(bins)
