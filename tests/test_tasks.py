"""Tasks: training samples, one GAN step for every task, short overfit runs, and the inference path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from pixelplexus.archs.fastgan_arch import NoiseInjection
from pixelplexus.color import rgb_to_lab
from pixelplexus.io.images import ImageRecord
from pixelplexus.metrics import niqe_params_path, psnr
from pixelplexus.options import parse_options
from pixelplexus.tasks import TASKS, OptionsError, get_task, inference_task
from pixelplexus.training.step import build_networks, train_step
from pixelplexus.transforms import resize
from support.corpus import pattern


def record(pixels, alpha=None, fmt="PNG"):
    mode = "L" if pixels.shape[-1] == 1 else "RGB"
    return ImageRecord(pixels=pixels, alpha=alpha, format=fmt, icc_profile=None, source_mode=mode)


def batch_from(task, image, rng, n):
    return task.collate([task.training_sample(image, rng) for _ in range(n)])


def params_snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


# ----------------------------------------------------------------------------------------------- samples
def test_training_samples_have_the_documented_shapes_and_ranges(tiny_config):
    rng = np.random.default_rng(0)
    image = pattern(40, 50, seed=1)  # larger than every crop
    enhance = get_task(tiny_config("enhance"))
    sample = enhance.training_sample(image, rng)
    assert sample["hr"].shape == (3, 32, 32) and sample["lr"].shape == (3, 16, 16)
    assert 0 <= sample["hr"].min() and sample["hr"].max() <= 1 and sample["hr"].dtype == np.float32

    colorize = get_task(tiny_config("colorize"))
    sample = colorize.training_sample(image, rng)
    assert sample["L"].shape == (1, 32, 32) and sample["ab"].shape == (2, 32, 32)
    assert -1 <= sample["L"].min() and sample["L"].max() <= 1 and np.abs(sample["ab"]).max() <= 1.2

    generate = get_task(tiny_config("generate"))
    sample = generate.training_sample(image, rng)
    assert sample["image"].shape == (3, 16, 16) and -1 <= sample["image"].min() and sample["image"].max() <= 1

    small = pattern(20, 12, seed=2)  # smaller than the crop: upscaled, never an error
    assert enhance.training_sample(small, rng)["hr"].shape == (3, 32, 32)


# -------------------------------------------------------------------------------------------- train step
@pytest.mark.parametrize("name", list(TASKS))
def test_one_step_updates_both_networks(tiny_config, name):
    task = get_task(tiny_config(name))
    nets = build_networks(task)
    g_before, d_before = params_snapshot(nets.generator), params_snapshot(nets.discriminator)
    batch = batch_from(task, pattern(48, 48, seed=3), np.random.default_rng(0), 4)
    logs = train_step(task, nets, batch, step=0)
    assert {"d_loss", "g_loss", "g_adv"} <= set(logs) and all(np.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(g_before, nets.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, nets.discriminator.parameters()))
    assert all(p.requires_grad for p in nets.discriminator.parameters())


def test_fastgan_step_trains_the_reconstruction_decoders():
    """generate's default pair: FastGAN D's self-supervised reconstruction term is part of its loss."""
    task = get_task(
        {
            "task": "generate",
            "crop_size": 32,
            "generator": {"arch": "fastgan_generator", "args": {"z_dim": 16, "ngf": 8, "resolution": 32}},
            "discriminator": {"arch": "fastgan_discriminator", "args": {"ndf": 8, "resolution": 32}},
            "losses": {"adversarial": "hinge", "r1_weight": 0.1},
            "generate": {"augment": "color,translation,cutout"},
        }
    )
    nets = build_networks(task)
    decoders = {n: p.detach().clone() for n, p in nets.discriminator.named_parameters() if "decoder" in n}
    assert decoders
    logs = train_step(task, nets, batch_from(task, pattern(40, 40), np.random.default_rng(0), 2), step=0)
    assert logs["d_recon"] > 0 and np.isfinite(logs["d_r1"])
    changed = [
        n
        for n, p in nets.discriminator.named_parameters()
        if n in decoders and not torch.equal(p, decoders[n])
    ]
    assert changed


def test_warmup_trains_only_the_generator(tiny_config):
    task = get_task({**tiny_config("enhance"), "generator_only_steps": 5})
    nets = build_networks(task)
    d_before = params_snapshot(nets.discriminator)
    batch = batch_from(task, pattern(48, 48), np.random.default_rng(0), 2)
    logs = train_step(task, nets, batch, step=0)
    assert "d_loss" not in logs and "g_adv" not in logs and "g_pixel" in logs
    assert all(torch.equal(a, b) for a, b in zip(d_before, nets.discriminator.parameters()))
    assert "d_loss" in train_step(task, nets, batch, step=5)


def test_enhance_step_with_every_loss_and_r1(tiny_config, tmp_path):
    """Perceptual + patch-wise texture (a random VGG19 saved and loaded by path), relativistic GAN and R1."""
    from pixelplexus.archs.vgg_arch import VGG19Features

    vgg = VGG19Features(["conv3_1"])
    weights = tmp_path / "vgg19.pth"
    torch.save({k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}, weights)
    config = tiny_config("enhance")
    config["losses"].update(
        perceptual_weight=0.1,
        perceptual_layers={"conv2_2": 1.0},
        texture_weight=0.1,
        texture_patch=4,
        vgg_weights=str(weights),
        r1_weight=1.0,
    )
    task = get_task(config)
    nets = build_networks(task)
    logs = train_step(task, nets, batch_from(task, pattern(48, 48), np.random.default_rng(0), 2), step=0)
    for key in ("g_pixel", "g_perceptual", "g_texture", "g_adv", "d_r1"):
        assert np.isfinite(logs[key]) and logs[key] >= 0


# ------------------------------------------------------------------------------------------ overfit runs
@pytest.mark.slow
def test_enhance_overfits_one_image_and_psnr_rises(tiny_config):
    task = get_task(tiny_config("enhance"))
    nets = build_networks(task)
    hr = pattern(64, 64, seed=4)
    lr = resize(hr, (32, 32))
    lr_tensor = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255

    def current_psnr():
        with torch.no_grad():
            sr = nets.generator(lr_tensor).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
        return psnr(sr, hr, crop_border=2, y_channel=True)

    before = current_psnr()
    rng = np.random.default_rng(0)
    for step in range(150):
        train_step(task, nets, batch_from(task, hr, rng, 4), step=step)
    after = current_psnr()
    assert after > before + 2.0, (before, after)


@pytest.mark.slow
def test_colorize_overfits_one_image_and_l1_falls(tiny_config):
    task = get_task(tiny_config("colorize"))
    nets = build_networks(task)
    image = pattern(32, 32, seed=5)
    rng = np.random.default_rng(0)
    fixed = batch_from(task, image, rng, 4)

    def ab_l1():
        with torch.no_grad():
            return (nets.generator(fixed["L"]) - fixed["ab"]).abs().mean().item()

    before = ab_l1()
    for step in range(60):
        train_step(task, nets, batch_from(task, image, rng, 4), step=step)
    assert ab_l1() < 0.5 * before


@pytest.mark.slow
def test_generate_overfits_one_image(tiny_config):
    """Trained on copies of one image, the generator's samples move towards it (or its mirror: samples flip)."""
    config = tiny_config("generate")
    config["generate"]["augment"] = (
        ""  # DiffAugment has its own tests; here the point is that G learns the data
    )
    task = get_task(config)
    nets = build_networks(task)
    image = pattern(16, 16, seed=6)
    target = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    targets = torch.stack([target, target.flip(-1)])
    z = torch.randn(16, 16)

    def distance():
        nets.generator.eval()
        with torch.no_grad():
            samples = nets.generator(z)
        nets.generator.train()
        return (samples[:, None] - targets[None]).abs().mean(dim=(2, 3, 4)).min(dim=1).values.mean().item()

    before = distance()
    rng = np.random.default_rng(0)
    for step in range(200):
        train_step(task, nets, batch_from(task, image, rng, 8), step=step)
    assert distance() < 0.6 * before


# -------------------------------------------------------------------------------------------- evaluation
class Bicubic(torch.nn.Module):
    """A stand-in generator that only upscales bicubically (its one parameter, a gain of 1, tells the device)."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.gain = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        up = torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.gain * up


def test_enhance_evaluate_scores_archive_copies(tiny_config, monkeypatch):
    config = tiny_config("enhance")
    config["train"]["eval_size"] = 200  # two 96² NIQE blocks per side after the border crop
    task = get_task(config)
    photo = data.astronaut()
    images = [photo[:220, :220], photo[250:470, 200:420]]
    metrics = task.evaluate(Bicubic(task.scale), images).metrics
    # a bicubic "model" is the bicubic baseline, on clean and archive inputs alike (torch's vs Pillow's kernel)
    assert metrics["psnr_y_archive"] == pytest.approx(metrics["psnr_y_archive_bicubic"], abs=0.3)
    assert metrics["psnr_y_archive"] < metrics["psnr_y"] - 2.0  # blur, noise and JPEG cost more than ×2
    assert task.evaluate(Bicubic(task.scale), images).metrics == metrics  # the copies are seeded
    if niqe_params_path().is_file():
        assert metrics["niqe_archive"] > 5.0  # a blurred, noisy, blocky upscale is far from natural
    monkeypatch.setenv("PIXELPLEXUS_NIQE_PARAMS", "/nonexistent/niqe_pris_params.npz")
    assert "niqe_archive" not in task.evaluate(Bicubic(task.scale), images).metrics
    config["train"]["eval_size"] = 64  # too small for NIQE: the key is left out, the rest is scored
    small = get_task(config).evaluate(Bicubic(task.scale), images)
    assert "niqe_archive" not in small.metrics and "psnr_y_archive" in small.metrics
    assert len(small.rows[0]) == len(small.columns) == 5


# --------------------------------------------------------------------------------------------- inference
def test_enhance_predict_keeps_gray_16_bit_and_alpha(tiny_config):
    task = get_task(tiny_config("enhance"))
    generator = task.build_generator().eval()
    gray16 = pattern(20, 30)[..., :1].astype(np.uint16) * 257
    alpha16 = np.full((20, 30), 40000, dtype=np.uint16)
    rgb = pattern(17, 23)
    out_gray, out_rgb = task.predict(generator, [record(gray16, alpha16), record(rgb)])
    assert out_gray.pixels.shape == (40, 60, 1) and out_gray.pixels.dtype == np.uint16
    assert out_gray.alpha.shape == (40, 60) and out_gray.alpha.dtype == np.uint16
    assert abs(int(out_gray.alpha.mean()) - 40000) <= 1
    assert out_rgb.pixels.shape == (34, 46, 3) and out_rgb.pixels.dtype == np.uint8
    assert out_rgb.alpha is None and out_rgb.format == "PNG"


def test_enhance_tiled_predict_matches_whole_image(tiny_config):
    task = get_task(tiny_config("enhance"))
    generator = task.build_generator().eval()
    image = record(pattern(70, 90, seed=7))
    whole = task.predict(generator, [image], {"tile": 0})[0].pixels.astype(int)
    overlap = 4 * generator.receptive_radius
    tiled = task.predict(generator, [image], {"tile": 2 * overlap, "tile_overlap": overlap})[0].pixels.astype(
        int
    )
    assert np.abs(whole - tiled).max() <= 1  # equal up to 8-bit rounding


def test_an_inference_task_comes_from_the_weights_metadata_alone(tiny_config):
    """No training config and no losses (no VGG, even where the config has one); enhance's one scale is the
    weights', and a ``scale`` option that differs from it fails alone."""
    config = tiny_config("enhance")
    config["losses"] = {"perceptual_weight": 1.0, "vgg_weights": "seeded:0"}
    trained = get_task(config)
    generator = trained.build_generator().eval()
    info = trained.weights_info(generator)
    task = inference_task(info)
    assert task.config is None and task.perceptual is None and task.adversarial is None
    assert task.scale == info.scale == 2
    image = record(pattern(20, 24))
    want = trained.predict(generator, [image])[0].pixels
    assert np.array_equal(task.predict(generator, [image], {"scale": 2})[0].pixels, want)
    results = task.predict_or_errors(generator, [image, image], {"scale": 4})
    assert all(isinstance(r, OptionsError) and "scale=4 is not available" in str(r) for r in results)
    results = task.predict_or_errors(generator, [image, 7, image])  # a bad item fails alone
    assert isinstance(results[1], Exception) and np.array_equal(results[2].pixels, want)
    with pytest.raises(ValueError, match="enhance"):
        TASKS["colorize"].for_inference(info)


def test_colorize_passes_colour_through_only_when_asked():
    gray, color = record(pattern(30, 40)[..., :1]), record(pattern(30, 40))
    rule = parse_options("colorize", skip_color=True).passthrough_rule()
    assert rule(color) == "already in colour" and rule(gray) is None
    assert parse_options("colorize").passthrough_rule() is None  # not asked: every image runs
    assert parse_options("enhance").passthrough_rule() is None


def test_colorize_keeps_lightness_and_sizes(tiny_config):
    task = get_task(tiny_config("colorize"))
    generator = task.build_generator().eval()
    gray = record(pattern(45, 70)[..., :1])
    color = record(pattern(33, 20, seed=1))
    out_gray, out_color = task.predict(generator, [gray, color], {"render_size": 64, "strength": 0.0})
    assert out_gray.pixels.shape == (45, 70, 3) and out_color.pixels.shape == (33, 20, 3)
    # strength 0: no colour added, and the lightness is the input's
    assert np.array_equal(out_gray.pixels[..., 0], out_gray.pixels[..., 1])
    assert np.abs(out_gray.pixels[..., 0].astype(int) - gray.pixels[..., 0]).max() <= 1

    colored = task.predict(generator, [color], {"render_size": 32})[0]

    def lightness(pixels):
        return rgb_to_lab(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)[0]

    assert (lightness(colored.pixels) - lightness(color.pixels)).abs().median() < 1.0
    with pytest.raises(OptionsError, match="strength"):
        task.parse_options(strength=2)


def test_colorize_keeps_l_exactly_even_for_colours_outside_srgb(tiny_config):
    """Out-of-gamut predictions lose chroma, not lightness: L changes only by the output's rounding."""
    from pixelplexus.metrics import has_color

    task = get_task(tiny_config("colorize"))
    options = task.parse_options(render_size=32)

    def lightness(pixels):
        top = float(np.iinfo(pixels.dtype).max)
        return rgb_to_lab(
            torch.from_numpy(pixels.astype(np.float32) / top).permute(2, 0, 1).expand(3, -1, -1)
        )[0]

    for bit_depth, tolerance in ((8, 0.25), (16, 0.01)):
        gray = record(pattern(30, 40, bit_depth=bit_depth)[..., :1])
        for prediction in (torch.ones(2, 8, 10), -torch.ones(2, 8, 10), 3 * torch.randn(2, 8, 10)):
            out = task.finish(prediction, gray, options)  # ab up to ±330: far outside sRGB
            assert (lightness(out.pixels) - lightness(gray.pixels)).abs().max() < tolerance
            assert has_color(out)  # the colour is reduced, not removed
    assert not has_color(gray) and has_color(record(pattern(30, 40)))


def test_generate_seeds_truncation_and_interpolation(tiny_config):
    task = get_task(tiny_config("generate"))
    generator = task.build_generator().eval()
    # DCGAN's N(0, 0.02) init makes an untrained generator nearly flat gray; PyTorch's default init makes
    # seeds visibly different, which is what this test is about.
    for module in generator.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            module.reset_parameters()
    a1, a2, b = task.predict(generator, [1, 1, 2])
    assert a1.pixels.shape == (16, 16, 3) and a1.pixels.dtype == np.uint8
    assert np.array_equal(a1.pixels, a2.pixels) and not np.array_equal(a1.pixels, b.pixels)

    def spread(truncation):
        images = task.predict(generator, list(range(12)), {"truncation": truncation})
        return np.stack([i.pixels.astype(float) for i in images]).std(axis=0).mean()

    assert spread(0.05) < 0.5 * spread(None)
    z = task.prepare(3, task.parse_options(truncation=0.5), generator)
    assert z.shape == (16,) and z.abs().max() <= 0.5
    path = task.interpolate(generator, 1, 2, steps=5)
    assert len(path) == 5
    assert np.array_equal(path[0].pixels, a1.pixels) and np.array_equal(path[-1].pixels, b.pixels)
    with pytest.raises(OptionsError, match="truncation"):
        task.parse_options(truncation=-1)


def test_generate_sample_sheets_show_seeds_a_truncation_sweep_and_walks(tiny_config):
    task = get_task(tiny_config("generate"))
    generator = task.build_generator().eval()
    for module in generator.modules():  # visibly different seeds (see the test above)
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            module.reset_parameters()
    sweep = task.truncation_sweep(generator, [4, 5], truncations=(None, 1.0, 0.05))
    assert [len(row) for row in sweep] == [4, 4]
    plain = task.predict(generator, [4, 5])
    truncated = task.predict(generator, [4, 5], {"truncation": 1.0})
    for row, image, image_truncated in zip(sweep, plain, truncated):
        assert np.array_equal(row[0].pixels, image.pixels)  # the plain latent first
        assert np.array_equal(row[1].pixels, image_truncated.pixels)
    zero = task.predict(generator, [torch.zeros(16)])[0].pixels
    assert np.array_equal(sweep[0][-1].pixels, zero) and np.array_equal(
        sweep[1][-1].pixels, zero
    )  # the limit

    def gap(a, b):
        return np.abs(a.pixels.astype(float) - b.pixels.astype(float)).mean()

    assert gap(sweep[0][2], sweep[1][2]) < gap(sweep[0][0], sweep[1][0])  # truncated seeds look alike

    sheets = task.sample_sheets(generator, rows=2, columns=3, sweep_seeds=2, walks=1, walk_steps=4, pad=2)
    assert sheets["samples"].shape == (2 + 2 * 18, 2 + 3 * 18, 3)  # 16² cells with 2-pixel gaps
    assert sheets["truncation"].shape == (2 + 2 * 18, 2 + 7 * 18, 3)  # 6 truncations and z = 0
    assert sheets["interpolation"].shape == (2 + 18, 2 + 4 * 18, 3)
    seed_4 = sheets["samples"][20:36, 20:36]  # row 1, column 1: seed 4
    assert np.array_equal(seed_4, plain[0].pixels)
    walk = task.interpolate(generator, 0, 1, 4)
    assert np.array_equal(sheets["interpolation"][2:18, 2 + 3 * 18 : 2 + 3 * 18 + 16], walk[-1].pixels)


def test_fastgan_maps_a_seed_to_one_image():
    """FastGAN injects noise while training; in eval mode a seed always gives the same image."""
    task = get_task(
        {
            "task": "generate",
            "crop_size": 32,
            "generator": {"arch": "fastgan_generator", "args": {"z_dim": 8, "ngf": 8, "resolution": 32}},
        }
    )
    generator = task.build_generator()
    for module in generator.modules():
        if isinstance(module, NoiseInjection):
            torch.nn.init.constant_(module.weight, 0.5)  # noise weights start at zero: make the noise visible
    generator.eval()
    first, second = task.predict(generator, [7]), task.predict(generator, [7])
    assert np.array_equal(first[0].pixels, second[0].pixels)
    generator.train()
    z = torch.stack([task.prepare(7, task.parse_options(), generator)] * 2)
    with torch.no_grad():
        noisy = generator(z)
    assert not torch.equal(noisy[0], noisy[1])  # training draws fresh noise per sample


# ------------------------------------------------------------------------ colorize by classification


def classify_config(tiny_config):
    """The tiny colorize config with Zhang et al.'s head: logits over the 261 in-gamut ab bins of size 10."""
    config = tiny_config("colorize")
    config["generator"]["args"].update(out_ch=261, output="logits")
    config["colorize"] = {"head": "classify"}
    config["losses"] = {"pixel_weight": 1.0, "adversarial": "none"}
    config.pop("discriminator")
    return config


def test_colorize_classify_learns_one_image_and_its_weights_carry_the_decoding(tiny_config):
    from pixelplexus.color import ab_bins

    task = get_task(classify_config(tiny_config))
    nets = build_networks(task)
    assert nets.discriminator is None
    image = pattern(32, 32, seed=5)
    rng = np.random.default_rng(0)
    fixed = batch_from(task, image, rng, 4)

    def errors():
        with torch.no_grad():
            logits = nets.generator(fixed["L"])  # at half resolution
            ab = task.decode(logits)
            ab_error = (ab - torch.nn.functional.avg_pool2d(fixed["ab"], 2)).abs().mean().item()
            return task.rebalanced_cross_entropy(logits, fixed["ab"]).item(), ab_error

    loss_before, ab_before = errors()
    for step in range(60):
        train_step(task, nets, batch_from(task, image, rng, 4), step=step)
    loss_after, ab_after = errors()
    assert loss_after < 0.8 * loss_before and ab_after < 0.8 * ab_before, (
        loss_before,
        loss_after,
        ab_before,
        ab_after,
    )
    # rebalancing: rare bins weigh more than common ones, the weights average 1 under the smoothed prior
    weights = task.rebalancing_weights()
    counts = task._bin_counts
    assert weights[counts.argmax()] < weights[counts.argmin()]
    mean_ab = task.training_mean_ab()
    assert mean_ab is not None and all(np.isfinite(mean_ab))

    # the weights file says how to decode: an inference task from it alone predicts the same colours
    generator = nets.generator.eval()
    info = task.weights_info(generator)
    assert info.extra["colorize"]["head"] == "classify" and info.extra["colorize"]["temperature"] == 0.38
    assert torch.equal(torch.tensor(info.extra["ab_bins"]), ab_bins(10.0))
    # and the prior it trained under, as counted: the most common bin is the one the loss weighs least
    prior = torch.tensor(info.extra["ab_prior"])
    assert prior.sum() == pytest.approx(1, abs=1e-3) and prior.argmax() == counts.argmax()
    alone = inference_task(info)
    picture = record(pattern(24, 28, seed=2))
    want = task.predict(generator, [picture], {"render_size": 32})[0].pixels
    assert np.array_equal(alone.predict(generator, [picture], {"render_size": 32})[0].pixels, want)
    # a regression weights file says so; one without colorize metadata (older files) decodes as regression
    regress = get_task(tiny_config("colorize"))
    info = regress.weights_info(regress.build_generator())
    assert info.extra["colorize"]["head"] == "regress" and inference_task(info).bins is None
    info.extra.pop("colorize")
    assert inference_task(info).bins is None and inference_task(info).head.render_size is None


def test_colorize_classify_decodes_the_annealed_mean_and_checks_the_generator(tiny_config):
    from pixelplexus.color import AB_SCALE
    from pixelplexus.config import ConfigError

    task = get_task(classify_config(tiny_config))
    bins = task.bins
    logits = torch.full((1, len(bins), 1, 2), -50.0)
    logits[0, 7, 0, 0] = 10.0  # pixel 0: sure of bin 7
    logits[0, [3, 9], 0, 1] = torch.tensor([0.0, float(np.log(2.0))])  # pixel 1: bins 3 and 9, 1 : 2
    ab = task.decode(logits)[0] * AB_SCALE
    assert torch.allclose(ab[:, 0, 0], bins[7], atol=1e-3)
    sharpened = torch.tensor([1.0, 2.0 ** (1 / 0.38)])  # T = 0.38 sharpens the 1 : 2 towards bin 9
    expected = (sharpened[0] * bins[3] + sharpened[1] * bins[9]) / sharpened.sum()
    assert torch.allclose(ab[:, 0, 1], expected, atol=1e-3)
    config = classify_config(tiny_config)
    config["generator"]["args"]["out_ch"] = 2
    with pytest.raises(ConfigError, match="out_ch: 261 and output: logits"):
        get_task(config)


def test_colorize_prior_correction_takes_the_rebalancing_back_out_and_travels_with_the_prior(tiny_config):
    """α = ``prior_correction`` divides the predicted distribution by the rebalancing weights^α before the
    mean: where the network is torn between a common and a rare colour, the common one wins back its share.
    The prior it needs is counted from training views and carried in the weights file."""
    from pixelplexus.color import AB_SCALE
    from pixelplexus.config import ConfigError

    config = classify_config(tiny_config)
    config["colorize"].update(rebalance=0.5, scene_scale=1.25, temperature=1.0)
    task = get_task(config)
    gray_bin = int(task.bins.norm(dim=1).argmin())
    images = [np.full((40, 48, 3), 128, np.uint8)] * 3 + [pattern(40, 48, seed=s) for s in range(3)]
    counts = task.count_prior(images, views=2, stride=4)
    assert counts.sum() == 6 * 2 * (task.config.crop_size // 4) ** 2  # every pixel of every view, once
    assert int(counts.argmax()) == gray_bin  # the gray photos' pixels dominate
    weights = task.rebalancing_weights()
    rare = int(weights.argmax())
    logits = torch.full((1, len(task.bins), 1, 1), -50.0)
    logits[0, [gray_bin, rare], 0, 0] = 0.0  # torn 1 : 1 between gray and the rarest colour
    plain = task.decode(logits)[0, :, 0, 0]

    corrected = get_task(config | {"colorize": {**config["colorize"], "prior_correction": 1.0}})
    corrected._bin_counts = counts
    share = 1 / weights[[gray_bin, rare]]  # p ∝ p_model / w
    want = (share[0] * task.bins[gray_bin] + share[1] * task.bins[rare]) / share.sum() / AB_SCALE
    got = corrected.decode(logits)[0, :, 0, 0]
    assert torch.allclose(got, want, atol=1e-4)
    assert got.norm() < 0.5 * plain.norm()  # toward gray, the common colour

    generator = corrected.build_generator().eval()
    info = corrected.weights_info(generator)
    assert len(info.extra["ab_prior"]) == len(task.bins)
    assert torch.allclose(inference_task(info).decode(logits)[0, :, 0, 0], got, atol=1e-3)
    info.extra.pop("ab_prior")
    with pytest.raises(ConfigError, match="needs the prior the model was trained on"):
        inference_task(info)


def test_colorize_chroma_gain_stretches_the_mean_about_the_training_colour_and_travels_with_it(tiny_config):
    """g = ``chroma_gain`` stretches the decoded ab about the training photos' mean colour c: c + g·(m − c).
    Training counts c from its targets; the weights file carries it, and inference decodes alike."""
    from pixelplexus.color import AB_SCALE
    from pixelplexus.config import ConfigError

    config = classify_config(tiny_config)
    config["colorize"].update(scene_scale=1.25, temperature=1.0)
    task = get_task(config)
    stretched = get_task(config | {"colorize": {**config["colorize"], "chroma_gain": 1.5}})
    generator = stretched.build_generator()
    rng = np.random.default_rng(0)
    batch = stretched.collate([stretched.training_sample(pattern(40, 48, seed=s), rng) for s in range(4)])
    stretched.content_loss(batch, generator(batch["L"]))  # one training step's worth of targets
    mean = stretched.training_mean_ab()
    assert mean is not None and abs(mean[0]) + abs(mean[1]) > 1  # the patterns are coloured
    centre = torch.tensor(mean).view(1, 2, 1, 1) / AB_SCALE
    logits = torch.randn(2, len(task.bins), 3, 5, generator=torch.Generator().manual_seed(0)) * 3
    plain, got = task.decode(logits), stretched.decode(logits)
    assert torch.allclose(got, centre + 1.5 * (plain - centre), atol=1e-5)
    assert (got - plain).abs().max() > 0.01  # it did stretch

    info = stretched.weights_info(generator.eval())
    assert info.extra["colorize"]["chroma_gain"] == 1.5
    assert info.extra["ab_mean"] == pytest.approx(list(mean), abs=1e-3)
    assert torch.allclose(inference_task(info).decode(logits), got, atol=1e-3)
    info.extra.pop("ab_mean")
    with pytest.raises(ConfigError, match=r"chroma_gain 1\.5 needs the mean colour"):
        inference_task(info)


def test_colorize_evaluate_scores_colours_beside_gray_and_a_constant_tint(tiny_config):
    task = get_task(tiny_config("colorize"))
    generator = task.build_generator().eval()
    images = [pattern(40, 48, seed=s) for s in range(3)]
    untrained = task.evaluate(generator, images).metrics
    assert "psnr_tint_baseline" not in untrained  # no training targets seen: no tint
    assert untrained["hue_accuracy_gray"] == 0.0 and untrained["chroma_spread_gray"] < 0.01  # 8-bit rounding
    metrics = task.evaluate(generator, images, tint=(20.0, 30.0)).metrics
    assert metrics["chroma_spread_tint"] < 0.05 < metrics["hue_accuracy_tint"]
    assert metrics["psnr_over_gray"] == pytest.approx(
        metrics["psnr_rgb"] - metrics["psnr_gray_baseline"], abs=1e-6
    )


def test_colorize_averages_its_render_scales_and_upsamples_along_lightness_edges(tiny_config):
    """A model's ``render_scales`` and ``upsample`` travel in its weights file: the ensemble runs the network
    at each scale and averages the decoded ab (scales under 32 px skipped); ``guided`` upsampling keeps a
    colour edge where the picture's lightness edge is, where bilinear upsampling ramps across it."""
    from pixelplexus.color import AB_SCALE
    from pixelplexus.config import ConfigError
    from pixelplexus.tasks.colorize import ColorizeTask

    config = classify_config(tiny_config)
    config["colorize"].update(render_size=64, render_scales=[0.5, 1.0], upsample="guided")
    task = get_task(config)
    generator = task.build_generator().eval()
    alone = inference_task(task.weights_info(generator))
    assert alone.head.render_scales == (1.0, 0.5) and alone.head.upsample == "guided"

    picture = record(pattern(96, 128, seed=3))
    options = alone.parse_options(render_size=128)
    x = alone.prepare(picture, options, generator)[None]
    with torch.no_grad():
        full = alone.decode(generator(x))
        half = alone.decode(generator(F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)))
        ensemble = alone.run(generator, x, options)
    half = F.interpolate(half, size=full.shape[-2:], mode="bilinear")
    assert ensemble.shape == full.shape and (ensemble - full).abs().max() > 1e-4
    assert torch.allclose(ensemble, (full + half) / 2, atol=1e-5)
    # a picture too small for the half scale (24 px on its short side) runs at the full one only
    small = alone.prepare(picture, alone.parse_options(render_size=32), generator)
    with torch.no_grad():
        assert torch.equal(alone.run(generator, small[None], options), alone.decode(generator(small[None])))

    # guided vs bilinear: a colour map at a quarter of the picture that changes where its lightness does
    # (column 70, inside a map cell) — guided keeps each side's colour up to the edge, bilinear ramps over it
    gray = np.full((96, 128, 3), 60, np.uint8)
    gray[:, 70:] = 190
    truth_a = torch.full((1, 1, 96, 128), -20.0)
    truth_a[..., 70:] = 20.0
    y = torch.cat([F.interpolate(truth_a, scale_factor=0.25, mode="area"), torch.zeros(1, 1, 24, 32)], 1)
    y = y[0] / AB_SCALE
    config["colorize"]["upsample"] = "bilinear"
    bilinear = get_task(config)
    errors = {}
    for name, decoder in (("guided", alone), ("bilinear", bilinear)):
        out = decoder.finish(y, record(gray), decoder.parse_options()).pixels
        a = rgb_to_lab(torch.from_numpy(out.astype(np.float32) / 255).permute(2, 0, 1))[1]
        errors[name] = float((a - truth_a[0, 0])[:, 62:78].abs().mean())
    assert errors["bilinear"] > 5 and errors["guided"] < 0.3 * errors["bilinear"], errors
    for bad in ([0.5], [1.0, 0.1], [1.0, 1.5]):
        with pytest.raises(ConfigError, match="render_scales must lie in"):
            ColorizeTask(config | {"colorize": {"head": "classify", "render_scales": bad}})


def test_colorize_scene_view_sees_the_whole_scene_and_the_model_names_its_render_size(tiny_config):
    """``scene_scale``: each sample is most of the photo, shrunk (sky above and grass below in every one),
    where plain crops at full size often see one of them only; ``render_size`` travels in the weights."""
    photo = np.empty((200, 300, 3), np.uint8)
    photo[:100], photo[100:] = (70, 130, 220), (60, 160, 50)  # sky over grass
    rng = np.random.default_rng(0)

    def sky_and_grass(task):
        sample = task.training_sample(photo, rng)
        assert sample["L"].shape == (1, 32, 32) and sample["ab"].shape == (2, 32, 32)
        a, b = sample["ab"][0], sample["ab"][1]
        return bool((b[0] < -0.1).all()), bool((a[-1] < -0.1).all())  # top row blue, bottom row green

    config = tiny_config("colorize")
    config["colorize"] = {"scene_scale": 1.25, "render_size": 48}
    scene = get_task(config)
    assert all(sky_and_grass(scene) == (True, True) for _ in range(20))
    crops = get_task(tiny_config("colorize"))
    assert any(sky_and_grass(crops) != (True, True) for _ in range(20))

    generator = scene.build_generator().eval()
    alone = inference_task(scene.weights_info(generator))
    assert alone.head.render_size == 48
    picture = record(photo)
    assert alone.prepare(picture, alone.parse_options(), generator).shape == (1, 32, 48)
    assert alone.prepare(picture, alone.parse_options(render_size=96), generator).shape == (1, 64, 96)
    plain = get_task(tiny_config("colorize"))  # no render size anywhere: 256 on the longer side
    assert plain.prepare(picture, plain.parse_options(), generator).shape == (1, 171, 256)
    out = alone.predict(generator, [picture])[0]
    assert (out.width, out.height) == (300, 200)
