"""Recognise a third-party super-resolution state dict: architecture, arguments and scale from names and shapes.

Layouts recognised (tried in this order):

* **BasicSR RRDBNet** (ESRGAN, Real-ESRGAN ``RealESRGAN_x4plus``/``x2plus``): ``conv_first``,
  ``body.<i>.rdb<k>.conv<j>``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``;
* **ESRGAN RRDBNet** (the ESRGAN repository's ``RRDBNet_arch.py``): ``RRDB_trunk.<i>.RDB<k>.conv<j>``,
  ``trunk_conv``, ``upconv1``/``upconv2``, ``HRconv``;
* **old ESRGAN (model.N)** (the original ESRGAN release, ``RRDB_ESRGAN_x4.pth`` and most community models):
  ``model.0`` head, ``model.1.sub.<i>.RDB<k>.conv<j>.0`` blocks, ``model.1.sub.<num_block>`` body conv, one
  conv per upsampling stage at ``model.3``, ``model.6`` (three modules per stage: upsample, conv, LeakyReLU),
  then the HR conv and the last conv;
* **SRVGGNetCompact** (Real-ESRGAN's ``realesr-general-x4v3``, ``realesr-animevideov3``): ``body.<i>``, convs at
  even and PReLU weights (1-D) at odd indices;
* **MSRResNet** (BasicSR): ``conv_first``, ``body.<i>.conv1``/``conv2``, ``upconv1``/``upconv2``, ``conv_hr``,
  ``conv_last``; and the older BasicSR names ``recon_trunk.<i>``, ``HRconv``.

For every RRDBNet layout the input channels of the head conv tell BasicSR's pixel-unshuffle layouts apart
(``num_in_ch * 4`` for x2, ``* 16`` for x1; see :class:`~pixelplexus.archs.RRDBNet`'s ``unshuffle``). One
RRDBNet upsampling stage is x2 or x3, which the tensors cannot tell apart: it is x2 unless ``scale=3`` is
given. SRVGGNetCompact's activation is PReLU when the PReLU weights are there, else ReLU (a LeakyReLU model
has no weights to tell it from ReLU).

Once a layout's marker names are there, every tensor must be one the network has, with the shape it
expects, and every tensor the network has must be there; anything else fails with a :class:`WeightsError`
naming the tensor. Reading files is :mod:`pixelplexus.community.checkpoints`' job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pixelplexus.archs import build_network
from pixelplexus.community.checkpoints import key_label
from pixelplexus.weights import WeightsError

BASICSR_ARCHS = ("rrdbnet", "compact", "msrresnet")
"""PixelPlexus architectures whose parameter names are BasicSR's / Real-ESRGAN's."""


@dataclass(frozen=True)
class Detected:
    """A recognised state dict.

    Attributes:
        arch: the :data:`pixelplexus.archs.ARCHS` name.
        args: the keyword arguments of :func:`pixelplexus.archs.build_network`.
        scale: the network's upscale factor.
        state: the tensors under the network's parameter names (``load_state_dict(state, strict=True)`` works).
        layout: what the checkpoint looked like, in words ("old ESRGAN (model.N)").
    """

    arch: str
    args: dict[str, Any]
    scale: int
    state: dict[str, Tensor]
    layout: str


class _NotThisLayout(Exception):
    """The state dict lacks the marker names of a layout; the message says which."""


Match = tuple[str, dict[str, Any], dict[str, Tensor]]  # arch, args, renamed state


def detect_architecture(state: Mapping[str, Tensor], *, scale: int | None = None) -> Detected:
    """Recognise ``state`` (a flat ``name -> tensor`` dict) as one of the layouts above.

    Args:
        state: the state dict, as :func:`~pixelplexus.community.checkpoints.read_state_dict` returns it.
        scale: the upscale factor the caller expects, or None: a hint that settles the one case the tensors
            leave open (an RRDBNet with one upsampling stage: x2 or x3). Whether the detected scale is the
            one asked for is the caller's to judge (an import can resize a compact net's output).

    Raises :class:`WeightsError` when no layout fits (listing the first names, the count and why each layout
    did not fit), or when the recognised layout has unknown, missing or wrongly shaped tensors.
    """
    state = dict(state)
    reasons = []
    for layout, match in _LAYOUTS:
        try:
            arch, args, renamed = match(state, scale)
        except _NotThisLayout as exc:
            reasons.append(f"{layout}: {exc}")
            continue
        _check_fits(layout, arch, args, renamed)
        return Detected(arch=arch, args=args, scale=int(args["upscale"]), state=renamed, layout=layout)
    names = list(state)
    shown = ", ".join(key_label(k) for k in names[:6]) + (", …" if len(names) > 6 else "")
    raise WeightsError(
        f"unrecognised architecture: the state dict holds {len(names)} tensors ({shown}) and fits none of the "
        f"known layouts — {'; '.join(reasons)}"
    )


def to_basicsr(arch: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` of a PixelPlexus ``arch`` network under BasicSR's / Real-ESRGAN's parameter names.

    RRDBNet, CompactSR (SRVGGNetCompact) and MSRResNet already use those names, so this is the identity for
    them (a new dict of the same tensors); any other arch has no BasicSR layout and fails. Configurations only
    PixelPlexus builds (an RRDBNet ×3, say) keep BasicSR's names but no BasicSR class takes them.
    """
    if arch not in BASICSR_ARCHS:
        raise WeightsError(f"{arch} has no BasicSR layout; exportable: {', '.join(BASICSR_ARCHS)}")
    return dict(state)


# ------------------------------------------------------------------------------------------------ checks
def _check_fits(layout: str, arch: str, args: dict[str, Any], state: Mapping[str, Tensor]) -> None:
    """WeightsError unless ``state`` has exactly the tensors (names and shapes) of ``arch(**args)``."""
    described = f"{layout} ({arch}, {', '.join(f'{k}={v}' for k, v in args.items())})"
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            expected = {k: tuple(t.shape) for k, t in build_network(arch, **args).state_dict().items()}
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"recognised {described}, but PixelPlexus cannot build it: {exc}") from None
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise WeightsError(f"{described}: unknown tensors {_names(unexpected)}")
    missing = [k for k in expected if k not in state]
    if missing:
        raise WeightsError(f"{described}: missing tensors {_names(missing)}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise WeightsError(
                f"{described}: tensor {key_label(key)} has shape {tuple(state[key].shape)}, expected {shape}"
            )


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(key_label(k) for k in keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown


def _weight(state: Mapping[str, Tensor], key: str, ndim: int, layout: str) -> Tensor:
    """The tensor ``key``, which must be there with ``ndim`` dimensions."""
    tensor = state.get(key)
    if tensor is None:
        raise WeightsError(f"{layout}: missing tensor {key_label(key)}")
    if tensor.ndim != ndim:
        raise WeightsError(
            f"{layout}: tensor {key_label(key)} has {tensor.ndim} dimensions {tuple(tensor.shape)}, expected {ndim}"
        )
    return tensor


def _require(state: Mapping[str, Tensor], *keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise _NotThisLayout(f"no {_names(missing)}")


# --------------------------------------------------------------------------------------------- RRDBNet
def _rrdbnet_args(
    state: Mapping[str, Tensor], layout: str, up_convs: int, scale: int | None
) -> dict[str, Any]:
    """RRDBNet's arguments from a state already under BasicSR's names with ``up_convs`` upsampling convs."""
    first = _weight(state, "conv_first.weight", 4, layout)
    last = _weight(state, "conv_last.weight", 4, layout)
    grow = _weight(state, "body.0.rdb1.conv1.weight", 4, layout)
    num_out_ch, in_channels = last.shape[0], first.shape[1]
    unshuffle = next((f for f in (4, 2) if in_channels == num_out_ch * f * f), 1)
    if up_convs > 2:
        raise WeightsError(
            f"{layout}: {up_convs} upsampling stages (×{2**up_convs}); PixelPlexus's RRDBNet upscales ×1 to ×4"
        )
    inner = (1, 2, 4)[up_convs]
    if up_convs == 1 and unshuffle == 1 and scale == 3:
        inner = 3  # one stage is x2 or x3; the tensors cannot tell
    if inner % unshuffle:
        raise WeightsError(
            f"{layout}: the head takes {in_channels} channels (pixel-unshuffled by {unshuffle}) but the "
            f"network upsamples only ×{inner}"
        )
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
    args: dict[str, Any] = {
        "num_in_ch": in_channels // (unshuffle * unshuffle),
        "num_out_ch": num_out_ch,
        "num_feat": first.shape[0],
        "num_block": max(blocks) + 1,
        "num_grow_ch": grow.shape[0],
        "upscale": inner // unshuffle,
    }
    if unshuffle > 1:
        args["unshuffle"] = unshuffle
    return args


def _basicsr_rrdbnet(state: Mapping[str, Tensor], scale: int | None) -> Match:
    _require(state, "conv_first.weight", "body.0.rdb1.conv1.weight")
    up_convs = sum(f"conv_up{i}.weight" in state for i in (1, 2))
    return "rrdbnet", _rrdbnet_args(state, "BasicSR RRDBNet", up_convs, scale), dict(state)


_ESRGAN_NAMES = {"trunk_conv": "conv_body", "upconv1": "conv_up1", "upconv2": "conv_up2", "HRconv": "conv_hr"}


def _esrgan_rrdbnet(state: Mapping[str, Tensor], scale: int | None) -> Match:
    _require(state, "RRDB_trunk.0.RDB1.conv1.weight")
    renamed = {}
    for key, tensor in state.items():
        block = re.fullmatch(r"RRDB_trunk\.(\d+)\.RDB([123])\.(conv[1-5]\.(?:weight|bias))", key)
        if block:
            renamed[f"body.{block.group(1)}.rdb{block.group(2)}.{block.group(3)}"] = tensor
            continue
        module, _, param = key.partition(".")
        renamed[f"{_ESRGAN_NAMES.get(module, module)}.{param}" if param else key] = tensor
    up_convs = sum(f"conv_up{i}.weight" in renamed for i in (1, 2))
    return "rrdbnet", _rrdbnet_args(renamed, "ESRGAN RRDBNet", up_convs, scale), renamed


def _old_esrgan(state: Mapping[str, Tensor], scale: int | None) -> Match:
    layout = "old ESRGAN (model.N)"
    _require(state, "model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k))}
    num_block = max(blocks) + 1
    tail = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.weight", k))} - {0})
    # model.0 head; model.1 the trunk; per upsampling stage (upsample, conv, LeakyReLU): convs at 3, 6, …;
    # then HR conv + LeakyReLU and the last conv: with n stages, convs at 3..3n, 3n+2 and 3n+4.
    up_convs = len(tail) - 2
    want = [3 * (i + 1) for i in range(up_convs)] + [3 * up_convs + 2, 3 * up_convs + 4]
    if up_convs < 0 or tail != want:
        raise WeightsError(
            f"{layout}: the convs after the trunk are at model.{', model.'.join(map(str, tail))}; "
            f"expected model.3, model.6, … (one per upsampling stage), then the HR conv and the last conv"
        )
    names = {0: "conv_first"} | {3 * (i + 1): f"conv_up{i + 1}" for i in range(up_convs)}
    names |= {3 * up_convs + 2: "conv_hr", 3 * up_convs + 4: "conv_last"}
    renamed = {}
    for key, tensor in state.items():
        block = re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB([123])\.(conv[1-5])\.0\.(weight|bias)", key)
        trunk = re.fullmatch(rf"model\.1\.sub\.{num_block}\.(weight|bias)", key)
        conv = re.fullmatch(r"model\.(\d+)\.(weight|bias)", key)
        if block:
            i, k, j, param = block.groups()
            renamed[f"body.{i}.rdb{k}.{j}.{param}"] = tensor
        elif trunk:
            renamed[f"conv_body.{trunk.group(1)}"] = tensor
        elif conv and int(conv.group(1)) in names:
            renamed[f"{names[int(conv.group(1))]}.{conv.group(2)}"] = tensor
        else:
            raise WeightsError(f"{layout}: unknown tensor {key_label(key)}")
    return "rrdbnet", _rrdbnet_args(renamed, layout, up_convs, scale), renamed


# ------------------------------------------------------------------------------------- SRVGGNetCompact
def _compact(state: Mapping[str, Tensor], scale: int | None) -> Match:
    layout = "SRVGGNetCompact"
    _require(state, "body.0.weight")
    if "conv_first.weight" in state:
        raise _NotThisLayout("has conv_first (SRVGGNetCompact starts at body.0)")
    first = _weight(state, "body.0.weight", 4, layout)
    indices = {int(m.group(1)) for k in state if (m := re.fullmatch(r"body\.(\d+)\.(?:weight|bias)", k))}
    last_index = max(indices)
    if last_index < 2 or last_index % 2:
        raise WeightsError(
            f"{layout}: the last conv is body.{last_index}; expected an even index of 2 or more"
        )
    last = _weight(state, f"body.{last_index}.weight", 4, layout)
    num_in_ch = first.shape[1]
    upscale = math.isqrt(last.shape[0] // num_in_ch)
    if last.shape[0] != num_in_ch * upscale * upscale:
        raise WeightsError(
            f"{layout}: the last conv has {last.shape[0]} output channels, not num_in_ch ({num_in_ch}) times "
            "a square upscale factor"
        )
    args = {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_in_ch,
        "num_feat": first.shape[0],
        "num_conv": (last_index - 2) // 2,
        "upscale": upscale,
        "act": "prelu" if "body.1.weight" in state else "relu",
    }
    return "compact", args, dict(state)


# ------------------------------------------------------------------------------------------- MSRResNet
_OLD_BASICSR_NAMES = {"recon_trunk": "body", "HRconv": "conv_hr"}


def _msrresnet(state: Mapping[str, Tensor], scale: int | None) -> Match:
    layout = "MSRResNet"
    _require(state, "conv_first.weight", "upconv1.weight")
    if any(k.startswith(("RRDB_trunk.", "body.0.rdb")) for k in state):
        raise _NotThisLayout("has RRDB blocks")
    renamed = {}
    for key, tensor in state.items():
        module, _, rest = key.partition(".")
        renamed[f"{_OLD_BASICSR_NAMES.get(module, module)}.{rest}" if rest else key] = tensor
    first = _weight(renamed, "conv_first.weight", 4, layout)
    up = _weight(renamed, "upconv1.weight", 4, layout)
    num_feat = first.shape[0]
    stage = math.isqrt(up.shape[0] // num_feat)
    if up.shape[0] != num_feat * stage * stage or stage not in (2, 3):
        raise WeightsError(
            f"{layout}: upconv1 has {up.shape[0]} output channels; expected num_feat ({num_feat}) × 4 or × 9"
        )
    blocks = {int(m.group(1)) for k in renamed if (m := re.match(r"body\.(\d+)\.", k))}
    args = {
        "num_in_ch": first.shape[1],
        "num_out_ch": _weight(renamed, "conv_last.weight", 4, layout).shape[0],
        "num_feat": num_feat,
        "num_block": max(blocks) + 1 if blocks else 0,
        "upscale": 4 if "upconv2.weight" in renamed else stage,
    }
    return "msrresnet", args, renamed


_LAYOUTS: tuple[tuple[str, Callable[[Mapping[str, Tensor], int | None], Match]], ...] = (
    ("BasicSR RRDBNet", _basicsr_rrdbnet),
    ("ESRGAN RRDBNet", _esrgan_rrdbnet),
    ("old ESRGAN (model.N)", _old_esrgan),
    ("SRVGGNetCompact", _compact),
    ("MSRResNet", _msrresnet),
)
