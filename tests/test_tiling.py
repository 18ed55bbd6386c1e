"""Tiled inference: equal to the untiled result when the overlap covers the receptive field, bounded tiles."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from pixelplexus.archs import CompactSR
from pixelplexus.archs.blocks import pad_to_multiple
from pixelplexus.tiling import tile_starts, tiled_forward


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_tiled_equals_untiled_for_every_scale(scale):
    torch.manual_seed(scale)
    net = CompactSR(num_feat=8, num_conv=3, upscale=scale).eval()
    radius = net.receptive_radius
    overlap = 4 * radius
    x = torch.rand(2, 3, 61, 87)
    with torch.no_grad():
        full = net(x)
    tiled = tiled_forward(net, x, tile=2 * overlap, overlap=overlap, scale=scale)
    assert tiled.shape == full.shape == (2, 3, 61 * scale, 87 * scale)
    assert (tiled - full).abs().max().item() < 1e-4


def test_too_small_overlap_is_not_exact_but_feathered():
    """With an overlap below the receptive field, tiles differ from the whole image, yet stay close."""
    torch.manual_seed(0)
    net = CompactSR(num_feat=8, num_conv=6, upscale=2).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        full = net(x)
    tiled = tiled_forward(net, x, tile=24, overlap=4, scale=2)
    error = (tiled - full).abs().max().item()
    assert 1e-4 < error < (full.abs().max().item())


def test_network_only_sees_tiles():
    seen = []

    def model(t):
        seen.append(tuple(t.shape[-2:]))
        return F.interpolate(t, scale_factor=2, mode="nearest")

    x = torch.rand(1, 3, 300, 170)
    out = tiled_forward(model, x, tile=64, overlap=16, scale=2)
    assert max(h for h, _ in seen) <= 64 and max(w for _, w in seen) <= 64
    assert len(seen) == len(tile_starts(300, 64, 16)) * len(tile_starts(170, 64, 16))
    # Blending weights sum to one: a pointwise model comes back unchanged.
    assert torch.allclose(out, F.interpolate(x, scale_factor=2, mode="nearest"), atol=1e-6)


def test_small_image_runs_whole():
    calls = []
    x = torch.rand(1, 3, 40, 50)
    out = tiled_forward(lambda t: calls.append(t.shape) or t * 2, x, tile=64, overlap=16)
    assert calls == [x.shape] and torch.equal(out, x * 2)


@pytest.mark.parametrize("length,tile,overlap", [(100, 40, 10), (1000, 256, 32), (257, 256, 32), (65, 64, 0)])
def test_tile_starts_cover_with_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == length
    for a, b in itertools.pairwise(starts):
        assert a + tile - b >= overlap  # neighbours overlap enough
        assert b > a


def test_bad_tile_arguments():
    x = torch.rand(1, 3, 100, 100)
    with pytest.raises(ValueError, match="twice the overlap"):
        tiled_forward(lambda t: t, x, tile=40, overlap=32)
    with pytest.raises(ValueError, match="expected scale 2"):
        tiled_forward(lambda t: t, x, tile=64, overlap=16, scale=2)


@pytest.mark.parametrize(("height", "width"), [(61, 87), (64, 90)])
def test_tiles_follow_the_grid_of_a_network_that_works_on_pixel_blocks(height, width):
    """A network that mixes the pixels of each 2x2 block (as a pixel-unshuffling one does) gives another
    result on a grid shifted by one pixel; with ``multiple=2`` every tile starts on the whole image's grid
    (the odd sizes padded as the network pads them) and the tiles reproduce the whole image."""
    torch.manual_seed(0)
    mix = torch.nn.Conv2d(12, 12, 1)

    def blockwise(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = F.pixel_shuffle(mix(F.pixel_unshuffle(pad_to_multiple(x, 2), 2)), 2)
        return y[..., :h, :w]

    x = torch.rand(1, 3, height, width)
    with torch.no_grad():
        whole = blockwise(x)
        tiled = tiled_forward(blockwise, x, tile=32, overlap=8, multiple=2)
        unaligned = tiled_forward(blockwise, x, tile=32, overlap=8)  # tiles start at odd pixels
    assert (tiled - whole).abs().max().item() < 1e-5
    assert (unaligned - whole).abs().max().item() > 1e-2  # the grid matters: the test can tell
    with pytest.raises(ValueError, match="must exceed the overlap"):
        tiled_forward(blockwise, x, tile=5, overlap=2, multiple=4)
