"""colorize from an ImageNet-pretrained encoder: the EfficientNet-Lite0 weights a package ships are read safely, land
in the right places (the encoder recognises a photo in gray), start a training run through ``train.init_backbone``,
and are not needed again once the model is trained."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pixelplexus.archs import EffNetUNet
from pixelplexus.io.images import ImageRecord
from pixelplexus.references import ModelReferenceError, backbone_file, load_backbone_weights
from pixelplexus.tasks import ColorizeTask, get_task
from pixelplexus.training.step import build_networks, train_step
from pixelplexus.weights import load_generator, save_generator
from support.corpus import pattern

SHARED = Path(os.environ.get("PIXELPLEXUS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
ZEBRA = SHARED / "data" / "eval" / "Set14" / "zebra.png"
ZEBRA_CLASS = 340  # ImageNet's "zebra"


def _config(**train) -> dict:
    return {
        "task": "colorize",
        "generator": {
            "arch": "effnet_unet",
            "args": {"out_ch": 261, "decoder": [8, 8, 8], "output": "logits"},
        },
        "colorize": {"head": "classify", "scene_scale": 1.25, "render_size": 64},
        "losses": {"pixel_weight": 1.0, "adversarial": "none"},
        "crop_size": 64,
        "batch_size": 2,
        "train": {"init_backbone": "efficientnet-lite0", **train},
    }


def _classify(net: EffNetUNet, state: dict, x: torch.Tensor) -> torch.Tensor:
    """ImageNet class probabilities from the encoder plus the file's own head and classifier."""
    feat = F.relu6(net._bn0(net._conv_stem(x)))
    for block in net._blocks:
        feat = block(feat)
    feat = F.conv2d(feat, state["_conv_head.weight"])
    feat = F.batch_norm(
        feat,
        state["_bn1.running_mean"],
        state["_bn1.running_var"],
        state["_bn1.weight"],
        state["_bn1.bias"],
        eps=1e-3,
    )
    return F.linear(F.relu6(feat).mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"]).softmax(-1)


@pytest.mark.skipif(
    not ZEBRA.is_file(), reason=f"needs the shared Set14 photos ({ZEBRA}); set PIXELPLEXUS_SHARED"
)
def test_the_packaged_weights_make_the_encoder_see_a_zebra_in_a_gray_photo():
    path = backbone_file("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = EffNetUNet(in_ch=1).eval()
    ignored = net.load_backbone(path)
    assert set(ignored) == {k for k in state if k.startswith(("_conv_head.", "_bn1.", "_fc."))}
    # a gray stem is the RGB stem summed over its inputs: the same response to R = G = B
    assert torch.allclose(net._conv_stem.weight, state["_conv_stem.weight"].sum(dim=1, keepdim=True))
    gray = np.asarray(Image.open(ZEBRA).convert("L").resize((224, 224), Image.BICUBIC), dtype=np.float32)
    x = torch.from_numpy((gray - 127.0) / 128.0)[None, None]
    with torch.no_grad():
        probs = _classify(net, state, x)[0]
    assert probs.argmax().item() == ZEBRA_CLASS and probs[ZEBRA_CLASS] > 0.5
    # the encoder with its random initialisation does not (so the check above measures the weights)
    with torch.no_grad():
        assert _classify(EffNetUNet(in_ch=1).eval(), state, x)[0][ZEBRA_CLASS] < 0.05


def test_init_backbone_starts_training_from_the_imagenet_encoder_and_the_model_needs_it_no_more(
    tmp_path, monkeypatch
):
    task = get_task(_config())
    nets = build_networks(task)
    state = torch.load(backbone_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
    encoder = nets.generator.state_dict()
    for key in ("_blocks.3._depthwise_conv.weight", "_blocks.15._project_conv.weight", "_bn0.running_var"):
        assert torch.equal(encoder[key], state[key])
    decoder_before = nets.generator.head.weight.detach().clone()

    rng = np.random.default_rng(0)
    batch = task.collate([task.training_sample(pattern(96, 80, seed=1), rng) for _ in range(2)])
    logs = train_step(task, nets, batch, step=0)
    assert np.isfinite(logs["g_pixel"])
    assert not torch.equal(nets.generator.head.weight, decoder_before)
    assert not torch.equal(
        nets.generator._blocks[3]._depthwise_conv.weight, state["_blocks.3._depthwise_conv.weight"]
    )

    info = task.weights_info(nets.generator)
    assert info.arch == "effnet_unet" and "init_backbone" not in str(info.args)
    path = save_generator(tmp_path / "colorize.safetensors", nets.generator, info)

    def no_pickles(*args, **kwargs):
        raise AssertionError("a trained colorize model must load without the backbone file")

    monkeypatch.setattr(torch, "load", no_pickles)
    generator, loaded = load_generator(path, task="colorize")
    inference = ColorizeTask.for_inference(loaded)
    out = inference.predict(generator, [ImageRecord(pattern(50, 70, seed=2))], inference.parse_options())[0]
    assert out.pixels.shape == (50, 70, 3)


def test_a_backbone_file_that_is_not_lite0_or_carries_code_is_refused(tmp_path):
    net = EffNetUNet(in_ch=1, decoder=[4, 4, 4])
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, other)
    with pytest.raises(
        ValueError, match=r"not an EfficientNet-Lite0 state dict: 2\d\d encoder tensors missing"
    ):
        net.load_backbone(other)

    state = torch.load(backbone_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
    wrong = tmp_path / "wider.pth"
    torch.save({**state, "_blocks.3._depthwise_conv.weight": torch.zeros(144, 1, 3, 3)}, wrong)
    with pytest.raises(
        ValueError, match=r"1 of another shape \(e.g. \['_blocks.3._depthwise_conv.weight'\]\)"
    ):
        net.load_backbone(wrong)

    hostile = tmp_path / "hostile.pth"
    marker = tmp_path / "ran"
    hostile.write_bytes(pickle.dumps(_Hostile(str(marker))))
    with pytest.raises(ModelReferenceError, match="does not fit the encoder"):
        load_backbone_weights(net, str(hostile))
    assert not marker.exists()  # weights_only: the pickle's code never ran


class _Hostile:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_init_backbone_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(ModelReferenceError, match="neither a file nor one of: efficientnet-lite0"):
        backbone_file(str(tmp_path / "missing.pth"))
    with pytest.raises(ModelReferenceError, match="has no pretrained encoder to load"):
        load_backbone_weights(torch.nn.Conv2d(1, 1, 1), "efficientnet-lite0")
    config = _config()
    config["generator"] = {
        "arch": "pix2pix_unet",
        "args": {"num_downs": 5, "ngf": 4, "out_ch": 261, "output": "logits"},
    }
    with pytest.raises(ModelReferenceError, match="Pix2PixUNet has no pretrained encoder"):
        build_networks(get_task(config))


def test_the_encoder_can_learn_slower_than_the_decoder_through_the_whole_schedule():
    from pixelplexus.config import ConfigError
    from pixelplexus.training.state import RunState
    from pixelplexus.training.step import Amp

    config = _config()
    config["optim"] = {"lr_g": 1e-3, "encoder_lr_scale": 0.1}
    config["train"]["schedule"] = {"kind": "cosine", "warmup_steps": 2, "min_ratio": 0.1}
    config["train"]["max_steps"] = 10
    task = get_task(config)
    nets = build_networks(task)
    decoder_group, encoder_group = nets.opt_g.param_groups
    assert {id(p) for p in encoder_group["params"]} == {id(p) for p in nets.generator.encoder_parameters()}
    assert len(decoder_group["params"]) + len(encoder_group["params"]) == len(
        list(nets.generator.parameters())
    )
    state = RunState(task, nets, Amp(), np.random.default_rng(0))
    for _ in range(5):
        state.schedulers["g"].step()
        decoder_lr, encoder_lr = (group["lr"] for group in nets.opt_g.param_groups)
        assert encoder_lr == pytest.approx(0.1 * decoder_lr) and 0 < decoder_lr <= 1e-3

    config["generator"] = {
        "arch": "pix2pix_unet",
        "args": {"num_downs": 5, "ngf": 4, "out_ch": 261, "output": "logits"},
    }
    config["train"].pop("init_backbone")
    with pytest.raises(
        ConfigError, match=r"encoder_lr_scale is 0\.1 but Pix2PixUNet has no pretrained encoder"
    ):
        build_networks(get_task(config))


def test_pixelplexus_train_names_a_missing_backbone_before_starting_anything(tmp_path, capsys):
    import yaml

    from pixelplexus.training.command import main

    config = _config(init_backbone=str(tmp_path / "imagenet.pth"))
    (tmp_path / "colorize.yaml").write_text(yaml.safe_dump(config))
    code = main(["colorize", "--data", str(tmp_path), "--config", str(tmp_path / "colorize.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "train.init_backbone" in err and "imagenet.pth' is neither a file nor one of" in err
