"""Real-ESRGAN's high-order degradation model in torch (pixelplexus.degradations): each stage's statistics,
the whole pipeline's shapes, levels and determinism, and the config's checks. Tiny batches, CPU."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pixelplexus.config import (
    ConfigError,
    DegradationRound,
    HighOrderDegradationConfig,
    parse_config,
    shipped_config,
)
from pixelplexus.degradations import (
    add_noise,
    blur,
    degrade_batch,
    jpeg,
    random_kernels,
    resize,
    sinc_kernels,
)
from pixelplexus.degradations.pipeline import RESIZE_MODES, random_resize_factor
from pixelplexus.tasks import get_task
from pixelplexus.training.state import step_generator
from support.corpus import pattern

ONE_KIND = {"kernel_probs": {"iso": 1.0}, "sinc_prob": 0.0, "blur_prob": 1.0}


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _photos(n: int = 2, size: int = 64) -> torch.Tensor:
    images = [torch.from_numpy(pattern(size, size, seed)).permute(2, 0, 1) for seed in range(n)]
    return torch.stack(images).float() / 255


def _kernels(kind: str, n: int = 16, **changes) -> torch.Tensor:
    settings = DegradationRound(**{**ONE_KIND, "kernel_probs": {kind: 1.0}, **changes})
    return random_kernels(n, settings, (7, 21), _generator())


# ----------------------------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize(
    "kind", ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
)
def test_kernels_sum_to_one_and_are_point_symmetric(kind):
    kernels = _kernels(kind)
    assert kernels.shape == (16, 21, 21) and (kernels >= 0).all()
    torch.testing.assert_close(kernels.sum((-2, -1)), torch.ones(16))
    torch.testing.assert_close(kernels, kernels.flip(-1, -2))  # k(p) = k(-p): no shift of the image
    if kind.endswith("iso") and not kind.endswith("aniso"):  # round: the same under mirrors and transposes
        torch.testing.assert_close(kernels, kernels.flip(-1), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(kernels, kernels.transpose(-1, -2), atol=1e-6, rtol=1e-5)


def test_anisotropic_kernels_are_not_round_and_sizes_vary():
    kernels = _kernels("aniso")
    assert (kernels - kernels.transpose(-1, -2)).abs().amax() > 1e-3
    widths = (kernels > 0).any(-2).sum(-1)  # each kernel is zero outside its own odd size
    assert set(widths.tolist()) <= set(range(7, 22, 2)) and len(set(widths.tolist())) > 2


def test_sinc_kernels_are_round_low_pass_filters_with_ringing():
    kernels = sinc_kernels(torch.tensor([torch.pi / 3, torch.pi / 2]), torch.tensor([21, 13]), 21)
    torch.testing.assert_close(kernels.sum((-2, -1)), torch.ones(2))
    torch.testing.assert_close(kernels, kernels.transpose(-1, -2), atol=1e-6, rtol=1e-5)
    assert (kernels < 0).any()  # negative lobes: the ringing they are there to imitate
    assert (kernels[1, :4] == 0).all()  # size 13 inside 21: zero around it
    forced = random_kernels(8, DegradationRound(**{**ONE_KIND, "sinc_prob": 1.0}), (7, 21), _generator())
    assert (forced < 0).any(dim=(-2, -1)).any()


def test_blur_lowers_high_frequency_energy_and_identity_keeps_the_image():
    images = _photos(4)

    def high_frequency(x):
        return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., 1:] - x[..., :-1]).pow(2).mean()

    blurred = blur(images, _kernels("iso", n=4, blur_sigma=(2.0, 3.0)))
    assert high_frequency(blurred) < 0.5 * high_frequency(images)
    assert blurred.shape == images.shape
    kept = blur(images, _kernels("iso", n=4, blur_prob=0.0))
    torch.testing.assert_close(kept, images)
    tiny = blur(images[:, :, :6, :6], _kernels("iso", n=4))  # smaller than the kernel: replicate padding
    assert tiny.shape == (4, 3, 6, 6)


# ------------------------------------------------------------------------------------------------------- noise
def _noise(level: float, **settings) -> torch.Tensor:
    flat = torch.full((4, 3, 96, 96), level)
    return add_noise(flat, DegradationRound(**settings), _generator()) - flat


def test_gaussian_noise_has_the_configured_variance_in_colour_and_gray():
    sigma = 10.0
    colour = _noise(0.5, gaussian_noise_prob=1.0, noise_range=(sigma, sigma), gray_noise_prob=0.0)
    assert colour.var().item() == pytest.approx((sigma / 255) ** 2, rel=0.05)
    assert abs(np.corrcoef(colour[:, 0].flatten(), colour[:, 1].flatten())[0, 1]) < 0.05
    gray = _noise(0.5, gaussian_noise_prob=1.0, noise_range=(sigma, sigma), gray_noise_prob=1.0)
    assert gray.var().item() == pytest.approx((sigma / 255) ** 2, rel=0.05)
    torch.testing.assert_close(gray[:, 0], gray[:, 1])
    torch.testing.assert_close(gray[:, 0], gray[:, 2])


def test_poisson_noise_variance_scales_with_intensity():
    settings = {"gaussian_noise_prob": 0.0, "poisson_scale_range": (1.0, 1.0), "gray_noise_prob": 0.0}
    dark, bright = _noise(0.2, **settings), _noise(0.8, **settings)
    # a count of λ = 255·level photons: variance λ, i.e. level / 255 on the [0, 1] scale
    assert dark.var().item() == pytest.approx(0.2 / 255, rel=0.08)
    assert bright.var().item() == pytest.approx(0.8 / 255, rel=0.08)
    gray = _noise(0.5, **{**settings, "gray_noise_prob": 1.0})
    torch.testing.assert_close(gray[:, 0], gray[:, 2])


# -------------------------------------------------------------------------------------------------------- JPEG
def _blockiness(images: torch.Tensor) -> float:
    """Mean |step| across 8-pixel block boundaries over the mean |step| inside blocks (1: no blocks)."""
    steps = (images[..., 1:] - images[..., :-1]).abs()
    across = torch.arange(steps.shape[-1]) % 8 == 7
    return (steps[..., across].mean() / steps[..., ~across].mean()).item()


def _pil_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_jpeg_blockiness_rises_as_quality_falls():
    images = _photos(2, 64)
    blockiness = [_blockiness(jpeg(images, torch.tensor([q, q]))) for q in (95, 60, 30, 10)]
    assert blockiness == sorted(blockiness) and blockiness[-1] > 1.3 * blockiness[0]


def test_jpeg_is_close_to_pils_at_the_same_quality():
    image = pattern(72, 88, seed=3)  # not a multiple of 16: the padding is exercised too
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    for quality in (30, 75, 95):
        ours = jpeg(batch, torch.tensor([quality]))[0].permute(1, 2, 0).numpy() * 255
        theirs = _pil_jpeg(image, quality).astype(np.float64)
        to_pil = 10 * np.log10(255**2 / np.mean((ours - theirs) ** 2))
        to_original = 10 * np.log10(255**2 / np.mean((image - theirs) ** 2))
        assert to_pil > 38 and to_pil > to_original + 8, (quality, to_pil, to_original)


def test_jpeg_quality_is_per_sample():
    images = _photos(2, 32)
    both = jpeg(images, torch.tensor([30, 90]))
    torch.testing.assert_close(both[:1], jpeg(images[:1], torch.tensor([30])))
    torch.testing.assert_close(both[1:], jpeg(images[1:], torch.tensor([90])))
    assert ((both * 255).round() == both * 255).all()


# ------------------------------------------------------------------------------------------------------ resize
@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_resize_gives_the_asked_shape(mode):
    images = _photos(2, 32)
    assert resize(images, (48, 40), mode).shape == (2, 3, 48, 40)
    assert resize(images, (5.7, 9.2), mode).shape == (2, 3, 5, 9)
    assert resize(images, (0.2, 3), mode).shape == (2, 3, 1, 3)


def test_resize_factors_stay_in_their_range():
    settings = DegradationRound(resize_prob=(0.0, 1.0, 0.0), resize_range=(0.3, 1.5))
    generator = _generator()
    factors = [random_resize_factor(settings, generator)[0] for _ in range(20)]
    assert all(0.3 <= f <= 1.0 for f in factors) and len(set(factors)) > 1
    keep = DegradationRound(resize_prob=(0.0, 0.0, 1.0))
    assert random_resize_factor(keep, generator)[0] == 1.0


# ---------------------------------------------------------------------------------------------- the pipeline
@pytest.mark.parametrize(("size", "scale"), [((64, 48), 4), ((32, 32), 2)])
def test_degrade_batch_gives_8_bit_lr_images_of_the_right_shape(size, scale):
    hr = _photos(3, 64)[..., : size[0], : size[1]]
    lr = degrade_batch(hr, scale, HighOrderDegradationConfig(), _generator())
    assert lr.shape == (3, 3, size[0] // scale, size[1] // scale) and lr.dtype == torch.float32
    assert lr.min() >= 0 and lr.max() <= 1
    torch.testing.assert_close(lr * 255, (lr * 255).round(), atol=1e-4, rtol=0)


def test_degrade_batch_is_determined_by_the_generator():
    hr, config = _photos(4, 48), HighOrderDegradationConfig()
    first = degrade_batch(hr, 4, config, _generator(7))
    torch.testing.assert_close(first, degrade_batch(hr, 4, config, _generator(7)), rtol=0, atol=0)
    assert not torch.equal(first, degrade_batch(hr, 4, config, _generator(8)))


def test_each_rank_and_step_draws_its_own_degradations():
    hr, config = _photos(2, 32), HighOrderDegradationConfig()

    def lr(seed, rank, step):
        return degrade_batch(hr, 4, config, step_generator(seed, rank, step, hr.device))

    torch.testing.assert_close(lr(0, 1, 5), lr(0, 1, 5), rtol=0, atol=0)  # what a resumed run redraws
    for other in ((1, 1, 5), (0, 0, 5), (0, 1, 6)):
        assert not torch.equal(lr(0, 1, 5), lr(*other)), other


def test_enhance_makes_its_lr_on_the_device_with_the_high_order_model():
    task = get_task(shipped_config("enhance-tiny").override(**{"enhance.high_order": {}}))
    samples = [task.training_sample(pattern(40, 48, seed), np.random.default_rng(seed)) for seed in range(3)]
    assert set(samples[0]) == {"hr"}  # the CPU side only crops
    batch = task.device_batch(task.collate(samples), step_generator(0, 0, 0, "cpu"))
    assert batch["hr"].shape == (3, 3, 32, 32) and batch["lr"].shape == (3, 3, 16, 16)
    plain = get_task(shipped_config("enhance-tiny"))
    sample = plain.training_sample(pattern(40, 48, 0), np.random.default_rng(0))
    unchanged = plain.device_batch(plain.collate([sample]), step_generator(0, 0, 0, "cpu"))
    assert unchanged.keys() == {"lr", "hr"} and torch.equal(
        unchanged["lr"], torch.from_numpy(sample["lr"][None])
    )


def test_degrade_batch_degrades():
    hr = _photos(4, 64)
    bicubic = resize(hr, (16, 16), "bicubic").clamp(0, 1)
    lr = degrade_batch(hr, 4, HighOrderDegradationConfig(), _generator())
    assert (lr - bicubic).abs().mean() > 0.01  # blurred, noisy, JPEG'd: far from the clean downscale


def test_degrade_batch_refuses_bad_batches():
    config = HighOrderDegradationConfig()
    with pytest.raises(ValueError, match="N×3×H×W"):
        degrade_batch(torch.rand(3, 16, 16), 4, config, _generator())
    with pytest.raises(ValueError, match="not a multiple of the scale 4"):
        degrade_batch(torch.rand(1, 3, 18, 16), 4, config, _generator())


# ------------------------------------------------------------------------------------------------------ config
def _enhance(high_order, **enhance):
    return parse_config(
        {
            "task": "enhance",
            "generator": {"arch": "compact"},
            "enhance": {"high_order": high_order, **enhance},
        }
    )


def test_the_defaults_are_real_esrgans_and_second_round_keys_override_one_by_one():
    config = _enhance({"second": {"noise_range": [1, 10]}}).enhance.high_order
    assert config.first.blur_sigma == (0.2, 3.0) and config.first.resize_range == (0.15, 1.5)
    assert config.second.noise_range == (1, 10)
    assert config.second.blur_sigma == (0.2, 1.5) and config.second.blur_prob == 0.8  # still the second's
    assert config.final_sinc_prob == 0.8 and config.kernel_size == (7, 21)
    assert _enhance(None).enhance.high_order is None


@pytest.mark.parametrize(
    ("high_order", "message"),
    [
        ({"first": {"blur_sigma": [3, 0.2]}}, "blur_sigma must be \\[low, high\\]"),
        ({"first": {"jpeg_range": [30, 120]}}, "jpeg_range must not go above 100"),
        ({"second": {"gray_noise_prob": 1.5}}, "gray_noise_prob"),
        ({"first": {"kernel_probs": {"iso": 0.5}}}, "kernel_probs must be chances >= 0 that sum to 1"),
        ({"first": {"kernel_probs": {"box": 1.0}}}, "kernel_probs.box"),
        ({"first": {"resize_prob": [0.5, 0.5, 0.5]}}, "resize_prob"),
        ({"first": {"resize_range": [1.2, 1.5]}}, "resize_range must hold 1"),
        ({"kernel_size": [7, 20]}, "kernel_size must be odd"),
    ],
)
def test_a_wrong_high_order_config_is_a_clear_error(high_order, message):
    with pytest.raises(ConfigError, match=message):
        _enhance(high_order)


def test_both_degradation_models_at_once_is_an_error():
    with pytest.raises(ConfigError, match="two degradation models: use one"):
        _enhance({}, degradation={"jpeg_prob": 0.5})
