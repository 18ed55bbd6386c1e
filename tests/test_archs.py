"""Network architectures: shapes, gradients, receptive fields and the ARCHS registry, at tiny sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelplexus.archs import (
    ARCHS,
    CompactSR,
    FastGANDiscriminator,
    FastGANGenerator,
    MSRResNet,
    PatchGANDiscriminator,
    Pix2PixUNet,
    RRDBNet,
    SRResNet,
    UNetDiscriminatorSN,
    build_network,
)

# (arch, kwargs, input shape, expected output shape); generators take z of shape N x z_dim.
CASES: list[tuple[str, dict, tuple[int, ...], tuple[int, ...]]] = []
LR = (2, 3, 6, 5)  # odd sizes on purpose


def _hr(s: int) -> tuple[int, ...]:
    return (2, 3, 6 * s, 5 * s)


for s in (1, 2, 3, 4):
    CASES += [
        ("srresnet", dict(num_feat=8, num_block=2, upscale=s), LR, _hr(s)),
        ("srresnet", dict(num_feat=8, num_block=2, upscale=s, use_bn=False), LR, _hr(s)),
        ("rrdbnet", dict(num_feat=8, num_block=1, num_grow_ch=4, upscale=s), LR, _hr(s)),
        ("compact", dict(num_feat=8, num_conv=2, upscale=s), LR, _hr(s)),
    ]
for s in (2, 3, 4):
    CASES.append(("msrresnet", dict(num_feat=8, num_block=2, upscale=s), LR, _hr(s)))
for s, factor in ((2, 2), (1, 2), (1, 4)):  # BasicSR's x2 (RealESRGAN_x2plus) and x1 layouts; 6 x 5 is padded
    CASES.append(
        ("rrdbnet", dict(num_feat=8, num_block=1, num_grow_ch=4, upscale=s, unshuffle=factor), LR, _hr(s))
    )
for act in ("relu", "lrelu"):
    CASES.append(("compact", dict(num_feat=8, num_conv=2, upscale=2, act=act), LR, _hr(2)))
CASES += [
    ("vgg_discriminator", dict(num_feat=4), (2, 3, 32, 32), (2, 1)),
    ("vgg_discriminator", dict(num_feat=4), (2, 3, 48, 64), (2, 1)),
    ("unet_discriminator", dict(num_feat=4), (2, 3, 16, 24), (2, 1, 16, 24)),
    ("unet_discriminator", dict(num_feat=4, skip_connection=False), (2, 3, 16, 24), (2, 1, 16, 24)),
    ("pix2pix_unet", dict(num_downs=5, ngf=4), (2, 1, 32, 32), (2, 2, 32, 32)),
    (
        "pix2pix_unet",
        dict(num_downs=5, ngf=4, norm="instance", use_dropout=False),
        (2, 1, 32, 32),
        (2, 2, 32, 32),
    ),
    ("effnet_unet", dict(out_ch=5, decoder=[8, 8, 8]), (2, 1, 37, 45), (2, 5, 10, 12)),
    ("effnet_unet", dict(out_ch=2, decoder=[8, 8, 8], output="tanh"), (2, 1, 37, 45), (2, 2, 37, 45)),
    ("effnet_unet", dict(in_ch=3, out_ch=4, decoder=[4, 6, 8]), (2, 3, 64, 32), (2, 4, 16, 8)),
    ("patchgan", dict(ndf=4), (2, 3, 64, 64), (2, 1, 6, 6)),
    ("patchgan", dict(ndf=4, n_layers=2, norm="instance"), (2, 3, 64, 64), (2, 1, 14, 14)),
    ("fastgan_generator", dict(z_dim=8, ngf=4, resolution=64), (2, 8), (2, 3, 64, 64)),
    ("fastgan_generator", dict(z_dim=8, ngf=4, resolution=128), (2, 8), (2, 3, 128, 128)),
    ("fastgan_discriminator", dict(ndf=4, resolution=32), (2, 3, 32, 32), (2, 1, 5, 5)),
    ("fastgan_discriminator", dict(ndf=4, resolution=64), (2, 3, 64, 64), (2, 1, 5, 5)),
    ("dcgan_generator", dict(z_dim=8, ngf=4, resolution=32), (2, 8), (2, 3, 32, 32)),
    ("dcgan_generator", dict(z_dim=8, ngf=4, resolution=64), (2, 8), (2, 3, 64, 64)),
    ("dcgan_discriminator", dict(ndf=4, resolution=16), (2, 3, 16, 16), (2, 1)),
    ("dcgan_discriminator", dict(ndf=4, resolution=32), (2, 3, 32, 32), (2, 1)),
]

# Shifts that a later layer removes exactly in train mode: the stages of EfficientNet that are no skip of the
# decoder (blocks 0, 5–7, 11–14) reach the next stage only through residual sums into its 1×1 expansion conv and
# the batch norm after it, which subtracts the batch mean (their gradient is ~1e-15; in eval mode it is not).
CANCELLED_IN_TRAINING = {"effnet_unet": {f"_blocks.{i}._bn2.bias" for i in (0, 5, 6, 7, 11, 12, 13, 14)}}

TANH_OUTPUTS = {"pix2pix_unet", "fastgan_generator", "dcgan_generator"}


def _case_id(case: tuple) -> str:
    arch, kwargs, _, _ = case
    return arch + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize(("arch", "kwargs", "in_shape", "out_shape"), CASES, ids=[_case_id(c) for c in CASES])
def test_forward_shape_and_gradients_reach_every_parameter(arch, kwargs, in_shape, out_shape):
    # float64, so a gradient that is zero in exact arithmetic (a conv bias cancelled by the norm after it)
    # shows as ~1e-15 and fails the threshold below instead of passing as float32 rounding noise.
    torch.manual_seed(0)
    net = build_network(arch, **kwargs).double()
    x = torch.randn(in_shape) if len(in_shape) == 2 else torch.rand(in_shape)
    x = x.double()

    if getattr(net, "has_decoder", False):
        out, pairs = net(x, return_aux=True)
    else:
        out, pairs = net(x), []

    assert out.shape == out_shape
    assert torch.isfinite(out).all()
    if "upscale" in kwargs:
        assert net.upscale == kwargs["upscale"]
    if arch in TANH_OUTPUTS or kwargs.get("output") == "tanh":
        assert out.abs().max() <= 1
    # A random projection, not a plain mean: the mean of a batch-normed output has zero gradient.
    loss = (out * torch.randn_like(out)).sum()
    for rec, target in pairs:
        assert rec.shape == target.shape
        loss = loss + ((rec - target) * torch.randn_like(rec)).sum()
    loss.backward()

    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        if name not in CANCELLED_IN_TRAINING.get(arch, ()):
            assert p.grad.abs().max() > 1e-9, f"{name} has an all-zero gradient"


def test_srresnet_use_bn_switches_batch_norm():
    with_bn = SRResNet(num_feat=8, num_block=2, use_bn=True)
    without = SRResNet(num_feat=8, num_block=2, use_bn=False)
    assert any(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in without.modules())


def test_official_parameter_names_are_kept():
    # Official ESRGAN / Real-ESRGAN checkpoints use BasicSR's and Real-ESRGAN's names.
    rrdb = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, upscale=4).state_dict()
    assert {
        "conv_first.weight",
        "body.0.rdb1.conv1.weight",
        "conv_body.weight",
        "conv_up1.weight",
        "conv_up2.weight",
        "conv_hr.weight",
        "conv_last.weight",
    } <= set(rrdb)
    x2plus = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, upscale=2, unshuffle=2).state_dict()
    assert x2plus["conv_first.weight"].shape[1] == 12 and {"conv_up1.weight", "conv_up2.weight"} <= set(
        x2plus
    )
    msrresnet = MSRResNet(num_feat=8, num_block=2, upscale=4).state_dict()
    assert {
        "conv_first.weight",
        "body.1.conv1.weight",
        "body.1.conv2.weight",
        "upconv1.weight",
        "upconv2.weight",
        "conv_hr.weight",
        "conv_last.weight",
    } <= set(msrresnet)
    compact = CompactSR(num_feat=8, num_conv=2, upscale=4).state_dict()
    assert {"body.0.weight", "body.1.weight", "body.6.weight"} <= set(compact)
    unet = UNetDiscriminatorSN(num_feat=4).state_dict()
    assert {"conv0.weight", "conv1.weight_orig", "conv8.weight_orig", "conv9.weight"} <= set(unet)


@pytest.mark.parametrize(("height", "width", "num_downs"), [(45, 70, 5), (37, 29, 5), (10, 13, 6)])
def test_pix2pix_unet_returns_the_input_size(height, width, num_downs):
    # 10x13 pads past the image size at multiple 64, so it takes the replicate branch.
    net = Pix2PixUNet(num_downs=num_downs, ngf=4).eval()
    assert net.multiple == 2**num_downs
    with torch.no_grad():
        out = net(torch.rand(1, 1, height, width))
    assert out.shape == (1, 2, height, width)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("height", "width"), [(32, 32), (45, 70)])
def test_pix2pix_unet_scores_classes_at_half_resolution(height, width):
    net = Pix2PixUNet(num_downs=5, ngf=4, out_ch=11, output="logits").eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, height, width))
    assert out.shape == (1, 11, (height + 1) // 2, (width + 1) // 2)
    assert torch.isfinite(out).all()
    assert not any(isinstance(m, torch.nn.Tanh) for m in net.modules())
    with pytest.raises(ValueError, match="output"):
        Pix2PixUNet(output="softmax")


def test_pix2pix_unet_needs_five_downs():
    with pytest.raises(ValueError, match="num_downs must be >= 5"):
        Pix2PixUNet(num_downs=4)


def _nonzero_window(grad: torch.Tensor) -> tuple[int, int, int, int, int]:
    """Top, left, height, width of the bounding box of the non-zero pixels, and how many there are."""
    nonzero = grad.abs().sum(dim=(0, 1)) > 0
    rows = nonzero.any(dim=1).nonzero().flatten()
    cols = nonzero.any(dim=0).nonzero().flatten()
    top, left = int(rows[0]), int(cols[0])
    return top, left, int(rows[-1]) - top + 1, int(cols[-1]) - left + 1, int(nonzero.sum())


@pytest.mark.parametrize("n_layers", [2, 3])
def test_patchgan_receptive_field_is_measured(n_layers):
    # eval() makes BatchNorm a fixed per-channel affine map (running stats); in train mode, or with instance
    # norm, the normalisation statistics pool every pixel and each logit would depend on the whole image.
    torch.manual_seed(0)
    net = PatchGANDiscriminator(ndf=4, n_layers=n_layers, norm="batch").double().eval()
    x = torch.randn(1, 3, 160, 160, dtype=torch.float64, requires_grad=True)
    out = net(x)
    h, w = out.shape[-2:]
    (grad,) = torch.autograd.grad(out[0, 0, h // 2, w // 2], x)

    _, _, height, width, count = _nonzero_window(grad)
    field = net.receptive_field
    assert field == PatchGANDiscriminator.compute_receptive_field(n_layers)
    assert (height, width, count) == (field, field, field * field)


def test_patchgan_70x70():
    assert PatchGANDiscriminator(ndf=4).receptive_field == 70
    assert PatchGANDiscriminator.compute_receptive_field(3) == 70


@pytest.mark.parametrize("upscale", [1, 2, 3, 4])
def test_compact_receptive_radius_is_measured(upscale):
    torch.manual_seed(0)
    net = CompactSR(num_feat=4, num_conv=3, upscale=upscale).double()
    radius = net.receptive_radius
    assert radius == 5  # 3 body convs + head + tail
    x = torch.randn(1, 3, 17, 17, dtype=torch.float64, requires_grad=True)
    out = net(x)
    # The last sub-pixel of LR pixel (8, 8), so a wrong HR -> LR mapping would shift the window.
    (grad,) = torch.autograd.grad(out[0, 1, 8 * upscale + upscale - 1, 8 * upscale], x)

    top, left, height, width, count = _nonzero_window(grad)
    side = 2 * radius + 1
    assert (top, left) == (8 - radius, 8 - radius)
    assert (height, width, count) == (side, side, side * side)


def test_unet_discriminator_rejects_sizes_not_multiple_of_8():
    with pytest.raises(ValueError, match="multiples of 8"):
        UNetDiscriminatorSN(num_feat=4)(torch.rand(1, 3, 20, 24))


def test_fastgan_aux_targets_are_the_image_and_a_seeded_quadrant():
    torch.manual_seed(0)
    net = FastGANDiscriminator(ndf=4, resolution=64).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    quadrants = [x[..., r : r + 32, c : c + 32] for r in (0, 32) for c in (0, 32)]

    chosen = []
    for seed in range(12):
        torch.manual_seed(seed)
        logits, [(rec_whole, whole), (rec_part, part)] = net(x, return_aux=True)
        assert logits.shape == (2, 1, 5, 5)
        assert rec_whole.shape == whole.shape == (2, 3, 64, 64)
        assert rec_part.shape == part.shape == (2, 3, 32, 32)
        assert torch.equal(whole, x)
        matches = [i for i, q in enumerate(quadrants) if torch.equal(part, q)]
        assert len(matches) == 1
        chosen.append(matches[0])
        torch.manual_seed(seed)
        _, [_, (_, part_again)] = net(x, return_aux=True)
        assert torch.equal(part_again, part)
    assert len(set(chosen)) > 1


def test_fastgan_aux_targets_are_downsampled_at_high_resolution():
    net = FastGANDiscriminator(ndf=2, resolution=256).eval()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        _, [(rec_whole, whole), (rec_part, part)] = net(x, return_aux=True)
    assert rec_whole.shape == whole.shape == (1, 3, 128, 128)
    assert rec_part.shape == part.shape == (1, 3, 128, 128)
    assert torch.allclose(whole, torch.nn.functional.avg_pool2d(x, 2))


@pytest.mark.parametrize("arch", ["fastgan_discriminator", "dcgan_discriminator"])
def test_gan_discriminators_reject_the_wrong_resolution(arch):
    net = build_network(arch, ndf=4, resolution=32)
    with pytest.raises(ValueError, match="resolution=32"):
        net(torch.rand(1, 3, 64, 64))


def test_fastgan_generator_noise_follows_the_given_generator():
    net = FastGANGenerator(z_dim=8, ngf=4, resolution=32).eval()
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "weight") and type(m).__name__ == "NoiseInjection":
                m.weight.fill_(1.0)
        z = torch.randn(2, 8)
        a = net(z, generator=torch.Generator().manual_seed(1))
        b = net(z, generator=torch.Generator().manual_seed(1))
        c = net(z, generator=torch.Generator().manual_seed(2))
    assert net.z_dim == 8 and net.resolution == 32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("arch", ["fastgan_generator", "dcgan_generator"])
def test_generators_check_the_latent_shape(arch):
    net = build_network(arch, z_dim=8, ngf=4, resolution=32)
    with pytest.raises(ValueError, match="N x 8"):
        net(torch.randn(2, 9))


SMALL_ARGS = {
    "srresnet": dict(num_feat=4, num_block=1),
    "msrresnet": dict(num_feat=4, num_block=1),
    "rrdbnet": dict(num_feat=4, num_block=1, num_grow_ch=4),
    "compact": dict(num_feat=4, num_conv=1),
    "vgg_discriminator": dict(num_feat=4),
    "unet_discriminator": dict(num_feat=4),
    "pix2pix_unet": dict(ngf=4),
    "effnet_unet": dict(decoder=[4, 4, 4]),
    "patchgan": dict(ndf=4),
    "fastgan_generator": dict(ngf=4, resolution=32),
    "fastgan_discriminator": dict(ndf=4, resolution=32),
    "dcgan_generator": dict(ngf=4),
    "dcgan_discriminator": dict(ndf=4),
}


def test_registry_lists_every_architecture():
    assert set(SMALL_ARGS) == set(ARCHS)
    assert FastGANDiscriminator.has_decoder is True
    assert ARCHS["dcgan_discriminator"].has_decoder is False


@pytest.mark.parametrize("arch", sorted(SMALL_ARGS))
def test_build_network_builds_each_registered_name(arch):
    net = build_network(arch, **SMALL_ARGS[arch])
    assert type(net) is ARCHS[arch]


def test_build_network_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown arch 'esrgan'") as err:
        build_network("esrgan")
    for name in ARCHS:
        assert name in str(err.value)


def test_build_network_unknown_argument_names_the_signature():
    with pytest.raises(TypeError, match=r"does not take num_blocks.*num_block") as err:
        build_network("rrdbnet", num_blocks=2)
    assert "RRDBNet(" in str(err.value)


@pytest.mark.parametrize(
    ("arch", "args", "error", "message"),
    [
        ("srresnet", dict(upscale=5), ValueError, "upscale must be one of 1, 2, 3, 4"),
        ("rrdbnet", dict(upscale=8), ValueError, "upscale must be one of"),
        ("rrdbnet", dict(unshuffle=3), ValueError, "unshuffle must be one of 1, 2, 4"),
        ("rrdbnet", dict(upscale=4, unshuffle=2), ValueError, r"upscale \* unshuffle must be one of"),
        ("msrresnet", dict(upscale=1), ValueError, "upscale must be one of 2, 3, 4"),
        ("msrresnet", dict(num_out_ch=1), ValueError, "must equal num_in_ch"),
        ("compact", dict(act="gelu"), ValueError, "act must be one of 'prelu', 'relu', 'lrelu'"),
        ("compact", dict(num_out_ch=1), ValueError, "must equal num_in_ch"),
        ("compact", dict(num_feat="64"), TypeError, "num_feat must be an int"),
        ("srresnet", dict(use_bn="no"), TypeError, "use_bn must be True or False"),
        ("patchgan", dict(norm="group"), ValueError, "norm must be one of 'batch', 'instance'"),
        ("fastgan_generator", dict(resolution=48), ValueError, r"power of two in \[32, 512\]"),
        ("fastgan_discriminator", dict(resolution=1024), ValueError, r"power of two in \[32, 512\]"),
        ("dcgan_generator", dict(resolution=256), ValueError, r"power of two in \[16, 128\]"),
        ("dcgan_discriminator", dict(ndf=0), ValueError, "ndf must be >= 1"),
        ("effnet_unet", dict(decoder=[8, 8]), ValueError, "decoder must list 3 channel counts"),
        ("effnet_unet", dict(output="softmax"), ValueError, "output must be one of 'logits', 'tanh'"),
    ],
)
def test_build_network_bad_values_say_what_is_allowed(arch, args, error, message):
    with pytest.raises(error, match=message):
        build_network(arch, **args)


@pytest.mark.parametrize(("height", "width"), [(7, 9), (3, 5), (1, 2)])
def test_rrdbnet_unshuffle_pads_odd_sizes_by_reflection(height, width):
    """An input that is not a multiple of the unshuffle factor is reflect-padded (as Real-ESRGAN's inferencer
    does) and the output cropped: the top-left of the result is the padded input's."""
    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, upscale=2, unshuffle=2).double().eval()
    x = torch.rand(1, 3, height, width, dtype=torch.float64)
    pad_h, pad_w = height % 2, width % 2
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    padded = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    with torch.no_grad():
        out, want = net(x), net(padded)
    assert out.shape == (1, 3, 2 * height, 2 * width)
    assert torch.equal(out, want[..., : 2 * height, : 2 * width])


def test_msrresnet_adds_the_bilinear_upsampled_input():
    """With every conv zero, MSRResNet is bilinear upsampling (BasicSR's ``base``)."""
    net = MSRResNet(num_feat=4, num_block=1, upscale=3)
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 3, 5, 4)
    want = torch.nn.functional.interpolate(x, scale_factor=3, mode="bilinear", align_corners=False)
    assert torch.equal(net(x), want)
