import pytest
import torch
import torch.nn.functional as F

from pixelplexus.guided_filter import guided_upsample


def _step_scene(size=64, edge=37, factor=4):
    """A lightness step at column ``edge`` (off the low-resolution grid), colour that changes with it, and
    that colour as a network would give it: averaged down ``factor``×."""
    guide = torch.full((1, 1, size, size), 0.2)
    guide[..., edge:] = 0.8
    truth = torch.empty(1, 2, size, size)
    truth[:, 0], truth[:, 1] = -30.0, 10.0
    truth[:, 0, :, edge:] = 30.0
    low = F.interpolate(truth, scale_factor=1 / factor, mode="area")
    return guide, truth, low


def test_guided_upsampling_keeps_colour_on_its_side_of_a_lightness_edge():
    guide, truth, low = _step_scene()
    bilinear = F.interpolate(low, size=truth.shape[-2:], mode="bilinear", align_corners=False)
    guided = guided_upsample(guide, low)
    near = slice(33, 41)  # a low-resolution cell either side of the edge
    bilinear_error = (bilinear - truth)[..., near].abs().mean()
    guided_error = (guided - truth)[..., near].abs().mean()
    assert bilinear_error > 5.0  # bilinear ramps from -30 to 30 over ~8 pixels
    assert guided_error < 0.2 * bilinear_error
    # the channel that does not follow the edge stays what it was; so does a constant map
    assert torch.allclose(guided[:, 1], truth[:, 1], atol=1e-4)
    constant = guided_upsample(guide, torch.full((1, 2, 1, 1), 7.0))
    assert constant.shape == (1, 2, 64, 64) and torch.allclose(constant, torch.tensor(7.0))


def test_guided_upsampling_on_a_flat_guide_smooths_the_map_and_checks_shapes():
    low = torch.zeros(1, 1, 16, 16)
    low[..., 8] = 16.0  # a one-cell line
    out = guided_upsample(torch.full((1, 1, 64, 64), 0.5), low)
    assert out.shape == (1, 1, 64, 64)
    assert float(out.sum()) == pytest.approx(16 * float(low.sum()), rel=0.02)  # smoothed, not lost
    assert out.max() < 8.0
    with pytest.raises(ValueError, match="guide must be N×1×H×W"):
        guided_upsample(torch.zeros(1, 3, 64, 64), low)
