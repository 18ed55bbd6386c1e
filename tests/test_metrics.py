"""Metrics: PSNR/SSIM agree with scikit-image under the SR protocol; SWD and colorfulness behave."""

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pixelplexus.metrics import colorfulness, nearest_neighbours, psnr, sliced_wasserstein_distance, ssim


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A seeded RGB uint8 test image: smooth colour waves plus mild texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    channels = [
        128 + 90 * np.sin(xx / rng.uniform(4, 9) + c) * np.cos(yy / rng.uniform(5, 11) - c) for c in range(3)
    ]
    image = np.stack(channels, axis=-1) + rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).round().astype(np.uint8)


def shapes(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """N×size×size×3 uint8 'cartoon' images: a colour gradient with random flat discs and rectangles."""
    yy, xx = np.mgrid[0:size, 0:size]
    images = []
    for _ in range(count):
        start, stop = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
        image = start + (stop - start) * ramp[..., None]
        for _ in range(12):
            cy, cx = rng.uniform(0, size, 2)
            radius = rng.uniform(3, 14)
            if rng.random() < 0.5:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
            else:
                mask = (np.abs(yy - cy) < radius) & (np.abs(xx - cx) < 0.6 * radius)
            image[mask] = rng.uniform(0, 255, 3)
        images.append(image)
    return np.clip(np.stack(images), 0, 255).round().astype(np.uint8)


def noisy(image: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).round().astype(np.uint8)


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    spatial = (sigma, sigma, 0) if images.ndim == 3 else (0, sigma, sigma, 0)
    return np.clip(gaussian_filter(images.astype(np.float64), spatial), 0, 255).round().astype(np.uint8)


def reference(img, ref, crop_border, y_channel):
    """What scikit-image says, with the SR protocol applied by hand."""
    a, b = img.astype(np.float64), ref.astype(np.float64)
    if y_channel and a.ndim == 3 and a.shape[2] == 3:
        a, b = rgb2ycbcr(a / 255.0)[..., 0], rgb2ycbcr(b / 255.0)[..., 0]
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    value_psnr = peak_signal_noise_ratio(b, a, data_range=255)
    value_ssim = structural_similarity(
        b,
        a,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1 if a.ndim == 3 else None,
    )
    return value_psnr, value_ssim


HR = smooth_image(45, 61)
DEGRADED = {"noisy": noisy(HR, 12), "blurred": blurred(HR, 1.2)}


@pytest.mark.parametrize("degradation", sorted(DEGRADED))
@pytest.mark.parametrize("crop_border", [0, 2, 4])
@pytest.mark.parametrize("y_channel", [False, True])
def test_psnr_and_ssim_match_skimage(degradation, crop_border, y_channel):
    img = DEGRADED[degradation]
    expected_psnr, expected_ssim = reference(img, HR, crop_border, y_channel)
    assert psnr(img, HR, crop_border=crop_border, y_channel=y_channel) == pytest.approx(
        expected_psnr, abs=0.01
    )
    assert ssim(img, HR, crop_border=crop_border, y_channel=y_channel) == pytest.approx(
        expected_ssim, abs=0.001
    )


@pytest.mark.parametrize("shape", ["hw", "hw1"])
def test_gray_images_match_skimage(shape):
    gray_hr, gray_img = HR[..., 1], DEGRADED["noisy"][..., 1]
    if shape == "hw1":
        gray_hr, gray_img = gray_hr[..., None], gray_img[..., None]
    expected_psnr, expected_ssim = reference(gray_img.squeeze(), gray_hr.squeeze(), 2, False)
    # y_channel has nothing to convert on a gray image
    assert psnr(gray_img, gray_hr, crop_border=2, y_channel=True) == pytest.approx(expected_psnr, abs=0.01)
    assert ssim(gray_img, gray_hr, crop_border=2) == pytest.approx(expected_ssim, abs=0.001)


def test_float_input_on_the_255_scale_equals_uint8():
    img = DEGRADED["blurred"]
    assert psnr(img.astype(np.float32), HR) == pytest.approx(psnr(img, HR))
    assert ssim(img.astype(np.float64), HR.astype(np.float64), y_channel=True) == pytest.approx(
        ssim(img, HR, y_channel=True)
    )


def test_identical_images():
    assert psnr(HR, HR) == math.inf
    assert ssim(HR, HR, y_channel=True) == pytest.approx(1.0)


def test_known_psnr_value():
    ref = np.zeros((8, 8, 3), np.uint8)
    img = np.full((8, 8, 3), 16, np.uint8)  # MSE = 256
    assert psnr(img, ref) == pytest.approx(10 * math.log10(255**2 / 256))


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="same shape"):
        psnr(HR, HR[:-1])
    with pytest.raises(ValueError, match="at least 11×11"):
        ssim(HR[:14, :14], HR[:14, :14], crop_border=2)
    with pytest.raises(ValueError, match="removes the whole"):
        psnr(HR[:8, :8], HR[:8, :8], crop_border=4)
    with pytest.raises(ValueError, match="H×W×3"):
        psnr(HR[..., :2], HR[..., :2])


# ---------------------------------------------------------------------------------------------------- SWD

RNG = np.random.default_rng(7)
REAL = shapes(8, 64, RNG)
OTHER_REAL = shapes(8, 64, RNG)


def test_swd_levels_keys_and_determinism():
    result = sliced_wasserstein_distance(REAL, OTHER_REAL)
    assert list(result) == ["swd_64", "swd_32", "swd_16", "swd_mean"]
    assert result["swd_mean"] == pytest.approx(
        np.mean([result["swd_64"], result["swd_32"], result["swd_16"]])
    )
    assert result == sliced_wasserstein_distance(REAL, OTHER_REAL)
    assert result != sliced_wasserstein_distance(REAL, OTHER_REAL, seed=1)
    assert list(sliced_wasserstein_distance(REAL, OTHER_REAL, num_levels=2)) == [
        "swd_64",
        "swd_32",
        "swd_mean",
    ]


def test_swd_of_a_set_with_itself_is_zero():
    result = sliced_wasserstein_distance(REAL, REAL)
    assert all(value == pytest.approx(0.0, abs=1e-9) for value in result.values())


def test_swd_ranks_degradations():
    swd = lambda fake: sliced_wasserstein_distance(REAL, fake)["swd_mean"]  # noqa: E731
    shuffled = np.stack([image.reshape(-1, 3)[RNG.permutation(64 * 64)].reshape(64, 64, 3) for image in REAL])
    slightly_noisy = noisy(REAL, 3)
    assert swd(slightly_noisy) < swd(blurred(REAL, 1.5))
    assert swd(OTHER_REAL) < swd(shuffled)
    assert 2 * swd(OTHER_REAL) < swd(RNG.integers(0, 256, REAL.shape, dtype=np.uint8))


def test_swd_accepts_sets_of_different_sizes_and_odd_shapes():
    result = sliced_wasserstein_distance(REAL, OTHER_REAL[:3], patches_per_image=32, num_projections=64)
    assert set(result) == {"swd_64", "swd_32", "swd_16", "swd_mean"}
    assert all(np.isfinite(value) and value > 0 for value in result.values())
    odd = sliced_wasserstein_distance(REAL[:2, :50, :37], REAL[2:5, :50, :37], patches_per_image=16)
    assert list(odd) == ["swd_37", "swd_19", "swd_mean"]


def test_swd_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="same H×W×3"):
        sliced_wasserstein_distance(REAL, REAL[:, :32])
    with pytest.raises(ValueError, match="N×H×W×3"):
        sliced_wasserstein_distance(REAL[0], REAL[0])
    with pytest.raises(ValueError, match="too small"):
        sliced_wasserstein_distance(REAL[:, :8, :8], REAL[:, :8, :8])
    with pytest.raises(ValueError, match=r"num_levels must be in 1\.\.3"):
        sliced_wasserstein_distance(REAL, REAL, num_levels=4)


# ------------------------------------------------------------------------------------------ colorfulness


def test_gray_images_have_no_colorfulness():
    gray = np.repeat(HR[..., :1], 3, axis=-1)
    assert colorfulness(gray) == pytest.approx(0.0, abs=1e-12)
    assert colorfulness(HR[..., 0]) == 0.0
    assert colorfulness(HR[..., :1]) == 0.0


def test_colorfulness_matches_hand_computation():
    # Two pixels: pure red (rg = 255, yb = 127.5) and pure blue (rg = 0, yb = -255).
    image = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    sigma = math.hypot(127.5, 191.25)  # population std of {255, 0} and of {127.5, -255}
    mu = math.hypot(127.5, -63.75)
    assert colorfulness(image) == pytest.approx(sigma + 0.3 * mu)
    assert colorfulness(HR) > colorfulness(np.clip(HR.astype(int) // 4 + 96, 0, 255))


# ------------------------------------------------------------------------- colorization: hue and chroma


def lab_image(lightness: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An H×W×3 uint8 sRGB image from Lab planes (in gamut by construction of the callers)."""
    from skimage.color import lab2rgb

    rgb = lab2rgb(np.stack([lightness, a, b], axis=-1))
    return np.clip(rgb * 255.0, 0, 255).round().astype(np.uint8)


def hue_wheel(size: int = 48, chroma: float = 30.0) -> np.ndarray:
    """A truth whose pixels sweep every hue at one chroma and L 60: each 60° sector holds a sixth of them."""
    hue = np.radians(np.linspace(0.0, 360.0, size * size, endpoint=False)).reshape(size, size) + 1e-3
    return lab_image(np.full((size, size), 60.0), chroma * np.cos(hue), chroma * np.sin(hue))


def test_hue_accuracy_and_spread_of_the_truth_gray_and_a_constant_tint():
    from pixelplexus.metrics import balanced_hue_accuracy, chroma_spread, hue_sector_hits

    truth = hue_wheel()
    gray = np.repeat(truth.mean(axis=-1, keepdims=True), 3, axis=-1).round().astype(np.uint8)
    assert balanced_hue_accuracy(truth, truth) == 1.0
    assert chroma_spread(truth, truth) == pytest.approx(1.0)
    assert balanced_hue_accuracy(gray, truth) == 0.0
    # one tint at hue 30° (the middle of sector 0): right for the truth hues in [0°, 60°] only, i.e. all of
    # sector 0 and none of the others, so the balanced accuracy is 1/6 whatever the tint's chroma (> 5)
    hue = math.radians(30.0)
    tint = lab_image(
        np.full((48, 48), 60.0), np.full((48, 48), 20 * math.cos(hue)), np.full((48, 48), 20 * math.sin(hue))
    )
    hits, totals = hue_sector_hits(tint, truth)
    assert totals.sum() == 48 * 48 and totals.min() >= 0.16 * 48 * 48
    assert hits[0] >= 0.95 * totals[0] and hits[1:-1].sum() == 0  # (uint8 rounding moves hues a little)
    assert balanced_hue_accuracy(tint, truth) == pytest.approx(1 / 6, abs=0.01)
    assert chroma_spread(tint, truth) < 0.02  # one colour has no spread
    # a tint too faint to have a hue (chroma < 5) scores like gray
    faint = lab_image(np.full((48, 48), 60.0), np.full((48, 48), 3.0), np.full((48, 48), 2.0))
    assert balanced_hue_accuracy(faint, truth) == 0.0


def test_hue_accuracy_weighs_sectors_equally_and_drops_rare_ones():
    from pixelplexus.metrics import balanced_hue_accuracy, chroma_spread

    size = 40
    # truth: 3/4 of the pixels blue-ish (hue 270°), 1/4 red (hue 30°), plus a few gray pixels that do not count
    a = np.where(
        np.arange(size)[None, :] < 10, 40 * math.cos(math.radians(30)), 40 * math.cos(math.radians(270))
    )
    b = np.where(
        np.arange(size)[None, :] < 10, 40 * math.sin(math.radians(30)), 40 * math.sin(math.radians(270))
    )
    a, b = np.repeat(a, size, axis=0), np.repeat(b, size, axis=0)
    a[:2], b[:2] = 0.0, 0.0
    truth = lab_image(np.full((size, size), 50.0), a, b)
    blue = lab_image(np.full((size, size), 50.0), np.full_like(a, a[-1, -1]), np.full_like(b, b[-1, -1]))
    assert balanced_hue_accuracy(blue, truth) == pytest.approx(
        0.5
    )  # right on 3/4 of pixels, half the sectors
    assert chroma_spread(blue, truth) < 0.02
    # halving the spread of the truth's colours halves the chroma spread
    half = lab_image(np.full((size, size), 50.0), a / 2, b / 2)
    assert chroma_spread(half, truth) == pytest.approx(0.5, abs=0.02)
    assert balanced_hue_accuracy(half, truth) == 1.0
    # a sector under 1 % of the coloured pixels is left out: one red pixel among blue ones does not count
    a2, b2 = np.full_like(a, a[-1, -1]), np.full_like(b, b[-1, -1])
    a2[0, 0], b2[0, 0] = a[-1, 0], b[-1, 0]
    one_red = lab_image(np.full((size, size), 50.0), a2, b2)
    assert balanced_hue_accuracy(blue, one_red) == 1.0
    # sets pool their pixels; sizes must match
    assert balanced_hue_accuracy([truth, blue], [truth, blue]) == 1.0
    assert math.isnan(balanced_hue_accuracy(truth[..., :1], truth[..., :1]))
    with pytest.raises(ValueError, match="same size"):
        balanced_hue_accuracy(truth[:10], truth)


def test_nearest_neighbours_find_copies_and_leave_one_out():
    rng = np.random.default_rng(0)
    references = rng.integers(0, 256, (40, 8, 8, 3)).astype(np.uint8)
    queries = references[[3, 17, 3]].astype(float)
    queries[1] += 2.0  # a near copy: 2 levels brighter everywhere
    found, distances = nearest_neighbours(queries, references, chunk=2)
    assert found.tolist() == [3, 17, 3]
    np.testing.assert_allclose(distances, [0.0, 2.0, 0.0], atol=1e-6)
    brute = np.sqrt(
        ((queries[:, None] - references[None].astype(float)) ** 2).reshape(3, 40, -1).mean(axis=2)
    )
    brute[[0, 2], [3, 3]] = np.inf
    found, distances = nearest_neighbours(queries, references, exclude=np.array([3, -1, 3]))
    assert found[1] == 17 and found[0] == found[2] == brute[0].argmin() != 3  # leave-one-out: another image
    np.testing.assert_allclose(distances[[0, 2]], brute[[0, 2]].min(axis=1))
    with pytest.raises(ValueError, match="one size"):
        nearest_neighbours(queries, references[:, :4])
    with pytest.raises(ValueError, match="one index per query"):
        nearest_neighbours(queries, references, exclude=np.array([1]))
