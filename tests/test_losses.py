"""Losses: pixel, adversarial + R1, and the VGG19 perceptual / EnhanceNet texture losses.

The VGG tests use a random VGG19 saved as a torchvision-format state dict in a temporary folder and loaded
through ``load_vgg19``, the same path a training run takes (only the layers up to conv3_1, ~2 MB).
"""

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from pixelplexus.archs.vgg_arch import VGG19_LAYER_NAMES, VGG19Features
from pixelplexus.losses import (
    ADVERSARIAL_KINDS,
    AdversarialLoss,
    PerceptualLoss,
    PixelLoss,
    TextureLoss,
    load_vgg19,
    patch_gram,
    r1_penalty,
)

# ------------------------------------------------------------------------------------------------- pixel


def test_pixel_losses_known_values():
    pred = torch.tensor([0.0, 1.0, 3.0])
    target = torch.tensor([0.0, 0.0, 1.0])  # differences 0, 1, 2
    assert PixelLoss("l1")(pred, target).item() == pytest.approx(1.0)
    assert PixelLoss("mse")(pred, target).item() == pytest.approx(5 / 3)
    expected = sum(math.sqrt(d * d + 0.1**2) for d in (0, 1, 2)) / 3
    assert PixelLoss("charbonnier", eps=0.1)(pred, target).item() == pytest.approx(expected)
    assert PixelLoss("charbonnier")(target, target).item() == pytest.approx(1e-3)


def test_pixel_loss_rejects_unknown_kinds_and_mismatched_shapes():
    with pytest.raises(ValueError, match="l1, mse, charbonnier"):
        PixelLoss("l2")
    with pytest.raises(ValueError, match="shapes differ"):
        PixelLoss()(torch.zeros(2, 3), torch.zeros(3, 2))


# ------------------------------------------------------------------------------------------- adversarial

HIGH, LOW = torch.full((8, 1), 3.0), torch.full((8, 1), -3.0)


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_discriminator_loss_prefers_real_above_fake(kind):
    loss = AdversarialLoss(kind)
    assert loss.discriminator(HIGH, LOW) < loss.discriminator(LOW, HIGH)


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_generator_loss_falls_as_fake_logits_rise(kind):
    loss = AdversarialLoss(kind)
    real = torch.randn(8, 1, generator=torch.Generator().manual_seed(0))
    # up to 1 only: LSGAN's generator target is c = 1
    values = [loss.generator(torch.full((8, 1), v), real).item() for v in (-3.0, -1.0, 0.0, 0.5, 1.0)]
    assert all(a > b for a, b in itertools.pairwise(values)), values


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("nsgan", 2 * math.log(2)), ("hinge", 2.0), ("lsgan", 0.5), ("ragan", math.log(2))],
)
def test_discriminator_loss_at_zero_logits(kind, expected):
    zeros = torch.zeros(4, 1, 5, 5)  # spatial logits (PatchGAN) work the same way
    assert AdversarialLoss(kind).discriminator(zeros, zeros).item() == pytest.approx(expected)


def test_ragan_generator_needs_real_logits_and_does_not_train_d_through_them():
    loss = AdversarialLoss("ragan")
    with pytest.raises(ValueError, match="needs real_logits"):
        loss.generator(torch.zeros(4, 1))
    real = torch.zeros(4, 1, requires_grad=True)
    fake = torch.zeros(4, 1, requires_grad=True)
    loss.generator(fake, real).backward()
    assert real.grad is None and fake.grad is not None


def test_unknown_adversarial_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match="nsgan, hinge, lsgan, ragan"):
        AdversarialLoss("wgan")


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return (self.weight * x).sum(dim=(1, 2, 3))


class Bias(nn.Module):
    """A discriminator that ignores its input."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.bias.expand(x.shape[0])


def real_images() -> torch.Tensor:
    return torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(1)).requires_grad_(True)


def test_r1_of_a_linear_discriminator_is_its_squared_weight_norm():
    d, x = Linear(), real_images()
    penalty = r1_penalty(d(x), x)
    assert penalty.item() == pytest.approx(d.weight.pow(2).sum().item(), rel=1e-5)
    penalty.backward()  # create_graph: the penalty trains D
    torch.testing.assert_close(d.weight.grad, 2 * d.weight.detach())


def test_r1_is_zero_when_d_ignores_its_input_and_positive_otherwise():
    x = real_images()
    assert r1_penalty(Bias()(x), x).item() == 0.0
    assert r1_penalty((Linear()(x) ** 2), x).item() > 0


def test_r1_explains_missing_gradients():
    x = real_images().detach()
    with pytest.raises(ValueError, match=r"requires_grad_\(True\)"):
        r1_penalty(Linear()(x), x)
    x.requires_grad_(True)
    with torch.no_grad(), pytest.raises(ValueError, match="no_grad"):
        r1_penalty(Linear()(x), x)


# ---------------------------------------------------------------------------------------------------- VGG

TORCHVISION_CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def test_layer_names_follow_torchvision_indexing():
    assert len(VGG19_LAYER_NAMES) == 37
    convs = [i for i, name in enumerate(VGG19_LAYER_NAMES) if name.startswith("conv")]
    assert convs == TORCHVISION_CONVS
    assert [VGG19_LAYER_NAMES.index(n) for n in ("relu1_1", "pool1", "conv3_1", "conv5_4", "pool5")] == [
        1,
        4,
        10,
        34,
        36,
    ]


def test_state_dict_keys_are_torchvision_features_keys():
    keys = list(VGG19Features(["pool5"]).state_dict())
    assert keys == [f"features.{i}.{p}" for i in TORCHVISION_CONVS for p in ("weight", "bias")]
    assert list(VGG19Features(["relu2_1"]).state_dict())[-1] == "features.5.bias"  # built up to relu2_1 only


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    """A random VGG19 up to conv3_1 as a torchvision state dict, plus a classifier entry to be ignored."""
    torch.manual_seed(0)
    state = VGG19Features(["conv3_1"]).state_dict()
    return {**state, "classifier.0.weight": torch.zeros(4, 4)}


@pytest.fixture(params=[".pth", ".safetensors"])
def weights_file(request, tmp_path, vgg_state):
    path = tmp_path / f"vgg19{request.param}"
    if request.param == ".pth":
        torch.save(vgg_state, path)
    else:
        save_file(vgg_state, str(path))
    return path


LAYERS = ["conv1_1", "relu1_2", "pool1", "conv2_1", "conv3_1"]


def test_load_vgg19_from_a_torchvision_state_dict(weights_file, vgg_state):
    vgg = load_vgg19(weights_file, LAYERS)
    torch.testing.assert_close(vgg.features[10].weight, vgg_state["features.10.weight"])
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x = torch.rand(2, 3, 32, 32)
    feats = vgg(x)
    shapes = {name: tuple(f.shape) for name, f in feats.items()}
    assert shapes == {
        "conv1_1": (2, 64, 32, 32),
        "relu1_2": (2, 64, 32, 32),
        "pool1": (2, 64, 16, 16),
        "conv2_1": (2, 128, 16, 16),
        "conv3_1": (2, 256, 8, 8),
    }
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = F.conv2d(
        (x - mean) / std, vgg_state["features.0.weight"], vgg_state["features.0.bias"], padding=1
    )
    torch.testing.assert_close(feats["conv1_1"], expected)
    assert feats["conv1_1"].min() < 0  # pre-activation: the ReLU after it is not in place


def test_load_vgg19_errors_carry_the_fix(tmp_path, vgg_state):
    with pytest.raises(ValueError, match=r"set losses\.vgg_weights"):
        load_vgg19(None, ["conv1_1"])
    missing = tmp_path / "absent.pth"
    with pytest.raises(
        FileNotFoundError, match=f"not found at {re.escape(str(missing))}.*losses.perceptual_weight"
    ):
        load_vgg19(missing, ["conv1_1"])
    partial = tmp_path / "up_to_conv2_1.pth"
    torch.save({k: v for k, v in vgg_state.items() if k.split(".")[1] in ("0", "2", "5")}, partial)
    assert set(load_vgg19(partial, ["conv2_1"]).layers) == {"conv2_1"}
    with pytest.raises(ValueError, match=r"features\.7\.weight, features\.7\.bias, features\.10\.weight"):
        load_vgg19(partial, ["conv3_1"])
    with pytest.raises(ValueError, match="unknown layer"):
        load_vgg19(partial, ["conv6_1"])


@pytest.fixture(scope="module")
def vgg(tmp_path_factory, vgg_state):
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(vgg_state, path)
    return load_vgg19(path, LAYERS)


def images(seed: int) -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_perceptual_loss(vgg):
    loss = PerceptualLoss(vgg, {"conv2_1": 1.0, "conv3_1": 0.5})
    hr = images(0)
    assert loss(hr, hr).item() == 0.0
    sr = images(1).requires_grad_(True)
    value = loss(sr, hr)
    assert value.item() > 0
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in vgg.parameters())
    with torch.no_grad():
        feats_sr, feats_hr = vgg(sr), vgg(hr)
        expected = F.l1_loss(feats_sr["conv2_1"], feats_hr["conv2_1"]) + 0.5 * F.l1_loss(
            feats_sr["conv3_1"], feats_hr["conv3_1"]
        )
        torch.testing.assert_close(value.detach(), expected)
        mse = PerceptualLoss(vgg, {"conv2_1": 1.0}, criterion="mse").from_features(feats_sr, feats_hr)
        torch.testing.assert_close(mse, F.mse_loss(feats_sr["conv2_1"], feats_hr["conv2_1"]))


def test_losses_reject_layers_the_vgg_does_not_compute(vgg):
    with pytest.raises(ValueError, match=r"does not compute \['conv5_4'\]"):
        PerceptualLoss(vgg, {"conv5_4": 1.0})
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        TextureLoss(vgg, {"conv9_9": 1.0})


def gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def test_patch_gram_is_patch_wise():
    features = torch.randn(1, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    swapped = features.clone()
    swapped[..., :16, :16], swapped[..., 16:, 16:] = features[..., 16:, 16:], features[..., :16, :16]
    torch.testing.assert_close(gram(swapped), gram(features))  # global statistics cannot tell
    grams = patch_gram(features, 16)
    assert grams.shape == (1, 4, 8, 8)
    assert not torch.allclose(patch_gram(swapped, 16), grams)
    # patches run row-major; the swap exchanged patches 0 and 3
    torch.testing.assert_close(patch_gram(swapped, 16)[:, [3, 1, 2, 0]], grams)
    torch.testing.assert_close(grams[:, 1], gram(features[..., :16, 16:]))
    texture = TextureLoss(VGG19Features(["conv1_1"]), {"conv1_1": 1.0})
    assert texture.from_features({"conv1_1": swapped}, {"conv1_1": features}).item() > 0


def test_patch_gram_drops_remainders_and_uses_small_maps_whole():
    features = torch.randn(2, 4, 40, 33)
    grams = patch_gram(features, 16)
    assert grams.shape == (2, 4, 4, 4)
    torch.testing.assert_close(grams[:, 3], gram(features[..., 16:32, 16:32]))
    small = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(patch_gram(small, 16), gram(small)[:, None])


def test_texture_loss(vgg):
    loss = TextureLoss(vgg, patch_size=4)  # EnhanceNet's layers by default
    assert set(loss.layer_weights) == {"conv1_1", "conv2_1", "conv3_1"}
    hr = images(0)
    assert loss(hr, hr).item() == 0.0
    sr = images(1).requires_grad_(True)
    value = loss(sr, hr)
    assert value.item() > 0
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


def test_one_vgg_pass_can_feed_both_losses(vgg):
    perceptual = PerceptualLoss(vgg, {"conv3_1": 1.0})
    texture = TextureLoss(vgg)
    sr, hr = images(1), images(0)
    feats_sr, feats_hr = vgg(sr), vgg(hr)
    torch.testing.assert_close(perceptual.from_features(feats_sr, feats_hr), perceptual(sr, hr))
    torch.testing.assert_close(texture.from_features(feats_sr, feats_hr), texture(sr, hr))


def test_seeded_vgg_is_a_fixed_random_network_with_live_features():
    first = load_vgg19("seeded:3", ["conv1_1", "conv3_1"])
    again = load_vgg19("seeded:3", ["conv3_1"])
    other = load_vgg19("seeded:4", ["conv3_1"])
    x = images(0)
    features = first(x)
    torch.testing.assert_close(again(x)["conv3_1"], features["conv3_1"])
    assert not torch.equal(other(x)["conv3_1"], features["conv3_1"])
    # He initialisation keeps activations alive through the depth (PyTorch's default init shrinks them)
    assert features["conv3_1"].std() > 0.1 * features["conv1_1"].std()
    texture = TextureLoss(first, {"conv1_1": 1.0, "conv3_1": 1.0}, patch_size=4)
    assert texture(x, x).item() == 0.0 and texture(images(1), x).item() > 0


@pytest.mark.parametrize("weights", ["seeded:", "seeded:x", "seeded:-1"])
def test_seeded_vgg_needs_a_whole_number(weights):
    with pytest.raises(ValueError, match="expected 'seeded:N'"):
        load_vgg19(weights, ["conv1_1"])
