"""DiffAugment: shapes, gradients, each policy actually transforms, policy parsing."""

import pytest
import torch

from pixelplexus.augment import AUGMENTATIONS, cutout, diff_augment, translation


def batch(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_shape_kept_and_differentiable(policy):
    x = batch().requires_grad_(True)
    y = diff_augment(x, policy, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_empty_policy_is_identity():
    x = batch()
    assert diff_augment(x, "") is x
    assert diff_augment(x, " , ") is x


def test_unknown_policy_lists_the_known_ones():
    with pytest.raises(ValueError, match="color, translation, cutout") as info:
        diff_augment(batch(), "color,flip")
    assert "'flip'" in str(info.value)


def test_translation_shifts_with_zero_padding_and_per_sample_offsets():
    x = torch.arange(1, 16 * 16 + 1, dtype=torch.float32).view(1, 1, 16, 16).repeat(32, 3, 1, 1)
    y = translation(x, torch.Generator().manual_seed(0))
    # Every output is the input shifted by an integer offset within ±2 (1/8 of 16), zeros where uncovered.
    offsets = set()
    for sample in y[:, 0]:
        nonzero = sample[sample != 0]
        dy, dx = divmod(int(nonzero[0].item()) - 1, 16)
        first_row, first_col = [int(i) for i in (sample != 0).nonzero()[0]]
        offsets.add((dy - first_row, dx - first_col))
        assert abs(dy - first_row) <= 2 and abs(dx - first_col) <= 2
    assert len(offsets) > 1
    assert any(offset != (0, 0) for offset in offsets)
    assert not torch.equal(y, x)


def test_cutout_zeroes_a_half_size_square():
    x = torch.ones(64, 1, 16, 16)
    y = cutout(x, torch.Generator().manual_seed(0))
    zeros = (y == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 8 * 8  # the full square when it lies inside the image
    assert zeros.min() > 0  # clipped at the border, but never gone
    assert len(set(zeros.tolist())) > 1  # positions differ per sample
    assert ((y == 0) | (y == 1)).all()


def test_color_changes_each_sample_differently():
    x = batch()
    y = diff_augment(x, "color", generator=torch.Generator().manual_seed(0))
    shift = (y - x).mean(dim=(1, 2, 3))
    assert not torch.allclose(shift, shift[0].expand_as(shift))


def test_generator_makes_draws_reproducible():
    x = batch()
    first = diff_augment(x, generator=torch.Generator().manual_seed(3))
    again = diff_augment(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, again)
    assert set(AUGMENTATIONS) == {"color", "translation", "cutout"}
