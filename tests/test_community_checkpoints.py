"""Third-party checkpoints: reading .pth/.safetensors safely and recognising their networks, at tiny sizes.

Each checkpoint comes from a randomly initialised network written the way its authors publish it
(:mod:`support.third_party`), saved in the wrappers they use; the network PixelPlexus builds from the detected
architecture must then compute exactly what the original does.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pixelplexus.archs import SRResNet, build_network
from pixelplexus.cli import main
from pixelplexus.community.checkpoints import read_state_dict
from pixelplexus.community.detect import detect_architecture, to_basicsr
from pixelplexus.community.importer import import_weights
from pixelplexus.io.images import ImageRecord
from pixelplexus.tasks import inference_task
from pixelplexus.weights import WeightsError, WeightsInfo, load_generator, save_generator
from support.corpus import pattern
from support.third_party import (
    BasicSRMSRResNet,
    BasicSRRRDBNet,
    OldESRGAN,
    SRVGGNetCompact,
    esrgan_trunk_names,
    old_basicsr_msrresnet_names,
)

RGB = dict(num_in_ch=3, num_out_ch=3)
RRDB = dict(num_feat=8, num_block=2, num_grow_ch=4)
MSR = dict(num_feat=8, num_block=2)
# name: (the original network, renaming to its published layout or None, detected layout, arch, args)
LAYOUTS: dict[str, tuple] = {}
for s, unshuffle in ((4, 1), (2, 2), (1, 4)):  # x2 is RealESRGAN_x2plus's layout
    args = RGB | RRDB | {"upscale": s} | ({"unshuffle": unshuffle} if unshuffle > 1 else {})
    LAYOUTS[f"basicsr-rrdbnet-x{s}"] = (
        partial(BasicSRRRDBNet, scale=s, **RRDB),
        None,
        "BasicSR RRDBNet",
        "rrdbnet",
        args,
    )
LAYOUTS["esrgan-trunk-x4"] = (
    partial(BasicSRRRDBNet, scale=4, **RRDB),
    esrgan_trunk_names,
    "ESRGAN RRDBNet",
    "rrdbnet",
    RGB | RRDB | {"upscale": 4},
)
for s in (4, 2):
    LAYOUTS[f"old-esrgan-x{s}"] = (
        partial(OldESRGAN, nf=8, nb=2, gc=4, upscale=s),
        None,
        "old ESRGAN (model.N)",
        "rrdbnet",
        RGB | RRDB | {"upscale": s},
    )
LAYOUTS["old-esrgan-x1-gray"] = (
    partial(OldESRGAN, in_nc=1, out_nc=1, nf=8, nb=1, gc=4, upscale=1),
    None,
    "old ESRGAN (model.N)",
    "rrdbnet",
    dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1, num_grow_ch=4, upscale=1),
)
for s, act, num_conv in ((4, "prelu", 4), (3, "relu", 2)):  # realesr-general-x4v3's layout; a ReLU one
    compact = dict(num_feat=8, num_conv=num_conv, upscale=s)
    LAYOUTS[f"compact-{act}-x{s}"] = (
        partial(SRVGGNetCompact, **compact, act_type=act),
        None,
        "SRVGGNetCompact",
        "compact",
        RGB | compact | {"act": act},
    )
for s in (4, 3, 2):  # x2 under the older BasicSR names
    rename = old_basicsr_msrresnet_names if s == 2 else None
    LAYOUTS[f"msrresnet-x{s}"] = (
        partial(BasicSRMSRResNet, **MSR, upscale=s),
        rename,
        "MSRResNet",
        "msrresnet",
        RGB | MSR | {"upscale": s},
    )
WRAPPERS = ("params_ema", "params", "bare", "safetensors")


def _published(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The original network of layout ``name`` (random weights) and its state in the published layout."""
    make, rename, *_ = LAYOUTS[name]
    net = make().eval()
    state = {k: t.detach().clone() for k, t in net.state_dict().items()}
    return net, rename(state) if rename else state


def _save(folder: Path, state: dict[str, torch.Tensor], wrapper: str) -> Path:
    if wrapper == "safetensors":
        path = folder / "model.safetensors"
        save_file(state, str(path))
        return path
    path = folder / "model.pth"
    torch.save(state if wrapper == "bare" else {wrapper: state}, path)
    return path


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_a_published_checkpoint_is_recognised_and_computes_what_the_original_does(tmp_path, name, wrapper):
    original, state = _published(name)
    _, _, layout, arch, args = LAYOUTS[name]

    detected = detect_architecture(read_state_dict(_save(tmp_path, state, wrapper)))

    assert (detected.layout, detected.arch, detected.args, detected.scale) == (
        layout,
        arch,
        args,
        args["upscale"],
    )
    net = build_network(detected.arch, **detected.args).eval()
    net.load_state_dict(detected.state, strict=True)
    x = torch.rand(1, args["num_in_ch"], 8, 12)
    with torch.no_grad():
        assert torch.equal(net(x), original(x))


def test_params_ema_is_preferred_and_ddp_prefixes_and_state_dict_wrappers_are_removed(tmp_path):
    _, ema = _published("msrresnet-x3")
    _, params = _published("msrresnet-x3")
    path = tmp_path / "both.pth"
    torch.save({"params": params, "params_ema": ema}, path)
    assert all(torch.equal(t, ema[k]) for k, t in read_state_dict(path).items())

    torch.save({"state_dict": {f"module.{k}": t for k, t in ema.items()}, "epoch": 7}, path)
    state = read_state_dict(path)
    assert set(state) == set(ema) and all(torch.equal(t, ema[k]) for k, t in state.items())


@pytest.mark.parametrize(("scale", "want"), [(None, 2), (2, 2), (3, 3)])
def test_one_rrdbnet_upsampling_stage_is_x2_unless_x3_is_said(tmp_path, scale, want):
    """An x2 and an x3 ESRGAN have the same tensors; ``scale=3`` picks x3, and the x3 network matches."""
    original = OldESRGAN(nf=8, nb=1, gc=4, upscale=3).eval()
    detected = detect_architecture(original.state_dict(), scale=scale)
    assert detected.scale == detected.args["upscale"] == want
    if want == 3:
        net = build_network(detected.arch, **detected.args).eval()
        net.load_state_dict(detected.state, strict=True)
        x = torch.rand(1, 3, 5, 7)
        with torch.no_grad():
            assert torch.equal(net(x), original(x))


def test_a_scale_the_checkpoint_does_not_have_is_refused(tmp_path):
    _, state = _published("basicsr-rrdbnet-x4")
    source = _save(tmp_path, state, "params_ema")
    with pytest.raises(WeightsError, match=r"the model is ×4 \(BasicSR RRDBNet\); ×2 was asked for"):
        import_weights(source, tmp_path / "out.safetensors", scale=2)
    assert not (tmp_path / "out.safetensors").exists()


def test_an_x8_esrgan_is_refused_with_the_reason():
    with pytest.raises(WeightsError, match=r"3 upsampling stages \(×8\).*×1 to ×4"):
        detect_architecture(OldESRGAN(nf=4, nb=1, gc=4, upscale=8).state_dict())


@pytest.mark.parametrize("name", ["basicsr-rrdbnet-x2", "compact-prelu-x4", "msrresnet-x4", "old-esrgan-x2"])
def test_to_basicsr_gives_back_what_detection_reads(name):
    _, state = _published(name)
    detected = detect_architecture(state)
    exported = to_basicsr(detected.arch, detected.state)
    again = detect_architecture(exported)
    assert (again.arch, again.args) == (detected.arch, detected.args)
    assert exported.keys() == again.state.keys() and all(
        torch.equal(t, again.state[k]) for k, t in exported.items()
    )
    if not name.startswith("old"):  # BasicSR names are PixelPlexus's names
        assert exported.keys() == state.keys()


def test_to_basicsr_refuses_an_arch_basicsr_does_not_have():
    with pytest.raises(WeightsError, match="srresnet has no BasicSR layout"):
        to_basicsr("srresnet", SRResNet(num_feat=4, num_block=1).state_dict())


# --------------------------------------------------------------------------------------- bad files
class _RunsCode:
    """Unpickling this calls os.system; a safe reader never gets that far."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump", "inside params"])
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "code-ran"
    path = tmp_path / "hostile.pth"
    _, state = _published("msrresnet-x3")
    if how == "torch.save":
        torch.save({"params_ema": state, "hook": _RunsCode(marker)}, path)
    elif how == "pickle.dump":
        path.write_bytes(pickle.dumps(_RunsCode(marker)))
    else:
        torch.save({"params": {**state, "conv_first.weight": _RunsCode(marker)}}, path)

    with pytest.raises(WeightsError) as err:
        read_state_dict(path)

    message = str(err.value)
    assert "hostile.pth holds Python objects other than tensors" in message and "not loaded" in message
    assert "system" not in message and "touch" not in message and str(marker) not in message
    assert not marker.exists()


def test_a_non_tensor_value_in_the_state_dict_is_refused(tmp_path):
    _, state = _published("msrresnet-x3")
    path = tmp_path / "odd.pth"
    torch.save({"params": {**state, "iteration": 5000}}, path)
    with pytest.raises(WeightsError, match=r"odd\.pth: entry 'iteration' is of type int, not a tensor"):
        read_state_dict(path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_and_empty_files_are_refused_with_the_reason(tmp_path, suffix):
    _, state = _published("msrresnet-x3")
    good = _save(tmp_path, state, "safetensors" if suffix == ".safetensors" else "params")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"cut\.\w+: not a readable .*truncated or corrupt"):
        read_state_dict(cut)
    empty = tmp_path / f"empty{suffix}"
    empty.touch()
    with pytest.raises(WeightsError, match=r"empty\.\w+ is empty"):
        read_state_dict(empty)


def test_a_truncated_legacy_checkpoint_is_refused(tmp_path):
    _, state = _published("msrresnet-x3")
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert read_state_dict(legacy).keys() == state.keys()  # 2018's ESRGAN files are in this format
    cut = tmp_path / "cut.pth"
    cut.write_bytes(legacy.read_bytes()[: legacy.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"cut\.pth"):
        read_state_dict(cut)


def test_a_safetensors_header_is_not_echoed(tmp_path):
    header = b'{"w": {"dtype": "SECRET-TEXT", "shape": [1], "data_offsets": [0, 4]}}'
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    with pytest.raises(WeightsError, match=r"odd\.safetensors: not a readable safetensors file") as err:
        read_state_dict(path)
    assert "SECRET" not in str(err.value)


def test_other_files_are_refused_by_name(tmp_path):
    with pytest.raises(WeightsError, match=r"model\.ckpt: not a PyTorch checkpoint or safetensors file"):
        read_state_dict(tmp_path / "model.ckpt")
    with pytest.raises(WeightsError, match="checkpoint not found"):
        read_state_dict(tmp_path / "missing.pth")


def test_a_wrongly_shaped_tensor_is_named():
    _, state = _published("basicsr-rrdbnet-x4")
    state["conv_body.weight"] = torch.zeros(8, 8, 1, 1)
    with pytest.raises(
        WeightsError, match=r"'conv_body.weight' has shape \(8, 8, 1, 1\), expected \(8, 8, 3, 3\)"
    ):
        detect_architecture(state)


@pytest.mark.parametrize(
    ("name", "key", "message"),
    [
        ("basicsr-rrdbnet-x4", "ema_decay", r"BasicSR RRDBNet \(rrdbnet, .*\): unknown tensors 'ema_decay'"),
        (
            "old-esrgan-x4",
            "model.1.sub.0.RDB1.conv1.1.weight",
            "unknown tensor 'model.1.sub.0.RDB1.conv1.1.weight'",
        ),
        ("compact-prelu-x4", "body.3.bias", r"unknown tensors 'body.3.bias'"),
        ("msrresnet-x4", "upconv3.weight", r"unknown tensors 'upconv3.weight'"),
    ],
)
def test_an_unknown_tensor_is_named(name, key, message):
    _, state = _published(name)
    state[key] = torch.zeros(8)
    with pytest.raises(WeightsError, match=message):
        detect_architecture(state)


def test_a_missing_tensor_is_named():
    _, state = _published("old-esrgan-x4")
    del state["model.1.sub.1.RDB3.conv5.0.bias"]
    with pytest.raises(WeightsError, match=r"missing tensors 'body.1.rdb3.conv5.bias'"):
        detect_architecture(state)


def test_an_unknown_architecture_lists_what_was_recognised_and_each_layout_tried():
    state = SRResNet(num_feat=4, num_block=1).state_dict()
    with pytest.raises(WeightsError) as err:
        detect_architecture(state)
    message = str(err.value)
    assert f"holds {len(state)} tensors ('conv_head.weight', 'conv_head.bias'," in message
    for layout, why in [
        ("BasicSR RRDBNet", "no 'conv_first.weight'"),
        ("ESRGAN RRDBNet", "no 'RRDB_trunk.0.RDB1.conv1.weight'"),
        ("old ESRGAN (model.N)", "no 'model.0.weight'"),
        ("SRVGGNetCompact", "no 'body.0.weight'"),
        ("MSRResNet", "no 'conv_first.weight', 'upconv1.weight'"),
    ]:
        assert f"{layout}: {why}" in message


# ---------------------------------------------------------------------------------------- inference
# (the original network, the image size, tile, tile overlap): the overlap is at least 4x the network's
# receptive radius in input pixels, where tiles reproduce the whole image (see pixelplexus.tiling).
IMPORTED_MODELS = {
    "msrresnet-x4": (lambda: BasicSRMSRResNet(num_feat=8, num_block=2, upscale=4), (90, 75), 64, 32),
    # radius ~38: 17 convs at half resolution, then the upsampling convs; 311 x 305 is padded, and the
    # second tile starts at an odd pixel unless tiles follow the pixel-unshuffle grid
    "basicsr-rrdbnet-x2": (
        lambda: BasicSRRRDBNet(scale=2, num_feat=4, num_block=1, num_grow_ch=4),
        (311, 305),
        304,
        152,
    ),
}


@pytest.mark.parametrize("name", sorted(IMPORTED_MODELS))
def test_an_imported_network_runs_as_an_enhance_model_whole_and_tiled(tmp_path, name):
    """Saved as a PixelPlexus weights file, the detected network runs through the enhance task like the
    original (which Real-ESRGAN's inferencer feeds reflect-padded to even sizes), and tiled like whole."""
    make, (height, width), tile, overlap = IMPORTED_MODELS[name]
    original = make().eval()
    detected = detect_architecture(original.state_dict())
    net = build_network(detected.arch, **detected.args)
    net.load_state_dict(detected.state, strict=True)
    info = WeightsInfo(task="enhance", arch=detected.arch, args=detected.args, scale=detected.scale)
    generator, info = load_generator(save_generator(tmp_path / "imported.safetensors", net, info))
    task = inference_task(info)
    scale = task.scale
    assert scale == detected.scale == int(name[-1])

    image = ImageRecord(pattern(height, width, seed=3))
    whole = task.predict(generator, [image], {"tile": 0})[0].pixels.astype(int)
    tiled = task.predict(generator, [image], {"tile": tile, "tile_overlap": overlap})[0].pixels.astype(int)

    x = torch.from_numpy(image.pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]
    if detected.args.get("unshuffle"):  # x2: Real-ESRGAN's inferencer pads to even sides by reflection
        x = torch.nn.functional.pad(x, (0, width % 2, 0, height % 2), mode="reflect")
    with torch.no_grad():
        want = original(x)[0, :, : height * scale, : width * scale].clamp(0, 1).permute(1, 2, 0).numpy()
    assert whole.shape == (height * scale, width * scale, 3)
    assert np.abs(whole - np.round(want * 255)).max() <= 1
    assert np.abs(whole - tiled).max() <= 1


def test_the_import_command_refuses_bad_checkpoints_and_writes_nothing(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    _, state = _published("msrresnet-x3")
    good = tmp_path / "good.pth"
    torch.save({"params_ema": state}, good)
    wrong_shape = {**state, "conv_first.weight": torch.zeros(3, 3, 3, 3)}
    bad = {
        "hostile.pth": lambda p: torch.save({"params_ema": state, "hook": _RunsCode(marker)}, p),
        "shapes.pth": lambda p: torch.save({"params_ema": wrong_shape}, p),
        "unknown.pth": lambda p: torch.save({"params_ema": {**state, "extra.weight": torch.zeros(1)}}, p),
        "truncated.pth": lambda p: p.write_bytes(good.read_bytes()[:-200]),
        "empty.safetensors": lambda p: p.write_bytes(b""),
    }
    dest = tmp_path / "out" / "imported.safetensors"
    for name, write in bad.items():
        write(tmp_path / name)
        assert main(["models", "import", str(tmp_path / name), str(dest)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("pixelplexus models import: ") and "nothing was written" in err, name
        assert not dest.exists() and not marker.exists(), name
    assert main(["models", "import", str(good), str(dest), "--name", "msr", "--license", "CC0"]) == 0
    info = load_generator(dest)[1]
    assert (info.arch, info.scale, info.extra["name"], info.extra["license"]) == (
        "msrresnet",
        3,
        "msr",
        "CC0",
    )
    assert info.extra["source"]["files"] == [
        {"name": "good.pth", "sha256": hashlib.sha256(good.read_bytes()).hexdigest()}
    ]
