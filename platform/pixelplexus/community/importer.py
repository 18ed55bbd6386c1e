"""Import the community's weights as PixelPlexus weights files, and write them back out in BasicSR's layout.

:func:`import_weights` reads a PyTorch checkpoint, a safetensors state dict or an ncnn model, recognises the
network, checks that every tensor fits it, and only then writes one self-describing weights file: the
architecture and its arguments, the scale, the source file names and SHA-256 digests, the license or
attribution text, and the border padding the model is run with. A refused file writes nothing.

:func:`export_basicsr` writes any enhance model as a BasicSR-layout ``.pth`` state dict (``params_ema``),
which BasicSR, Real-ESRGAN and chaiNNer load, and which imports back bit-identically.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pixelplexus.archs import build_network
from pixelplexus.community.checkpoints import state_from_bytes
from pixelplexus.community.detect import Detected, detect_architecture, to_basicsr
from pixelplexus.community.ncnn import ncnn_from_bytes, read_param_bytes
from pixelplexus.io.files import localize, write_atomic
from pixelplexus.weights import WeightsError, WeightsInfo, generator_bytes

IMPORT_TASKS = ("enhance",)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")
NCNN_SUFFIXES = (".param", ".bin")
DEFAULT_BORDER_PAD = 10
"""Input pixels mirrored at each image border before the network runs: how Real-ESRGAN's inference and its
ncnn runtime run these models (``pre_pad`` / ``prepadding`` 10), without which a deep network's zero padding
darkens and shifts the borders."""


@dataclass(frozen=True)
class SourceFile:
    """A file an import read: its name (never its folder) and SHA-256."""

    name: str
    sha256: str

    @classmethod
    def of(cls, name: str, data: bytes) -> SourceFile:
        return cls(name, hashlib.sha256(data).hexdigest())


def import_weights(
    source: str | Path,
    dest: str | Path,
    *,
    task: str = "enhance",
    scale: int | None = None,
    name: str | None = None,
    license_text: str | None = None,
    border_pad: int = DEFAULT_BORDER_PAD,
) -> WeightsInfo:
    """Recognise the model in ``source`` and write it to ``dest`` as a PixelPlexus weights file.

    Args:
        source: a ``.pth``/``.pt``/``.safetensors`` checkpoint (local path, ``s3://`` or MLflow URI), or an
            ncnn model given by its ``.param`` or ``.bin`` file (the other one must lie beside it).
        dest: the weights file to write (atomically); nothing is written when the import is refused.
        task: the task the model belongs to; super-resolution networks are ``enhance`` models.
        scale: the scale the model must have (refused otherwise). A SRVGGNetCompact can also be asked for a
            lower scale than its network's: its output is then resized bicubically, as the ncnn ``-x2``/``-x3``
            builds of ``realesr-animevideov3`` do.
        name: the model's name in listings and ``/v1/models`` (default: the source file's stem).
        license_text: the license or attribution that travels with the weights.
        border_pad: input pixels mirrored at each border before the network runs (0: none).

    Returns the metadata written. Raises :class:`WeightsError` with the reason.
    """
    if task not in IMPORT_TASKS:
        raise WeightsError(
            f"importing {task!r} models is not supported; the community formats hold {IMPORT_TASKS}"
        )
    if not 0 <= border_pad <= 64:
        raise WeightsError(f"border_pad must be 0..64 pixels, got {border_pad}")
    detected, files = _read_source(source, scale)
    detected = _at_scale(detected, scale)
    network = build_network(detected.arch, **detected.args)
    try:
        network.load_state_dict(detected.state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{files[0].name}: the tensors do not fit {detected.arch}: {exc}") from None
    info = WeightsInfo(
        task=task,
        arch=detected.arch,
        args=detected.args,
        scale=detected.scale,
        extra={
            "name": name or Path(files[0].name).stem,
            "source": {"format": detected.layout, "files": [f.__dict__ for f in files]},
            "license": license_text or "",
            "border_pad": border_pad,
        },
    )
    data = generator_bytes(network, info)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, data)
    return info


def _read_source(source: str | Path, scale: int | None) -> tuple[Detected, list[SourceFile]]:
    text = str(source)
    suffix = Path(text).suffix.lower()
    if suffix in NCNN_SUFFIXES:
        path = Path(text)
        param, bin_ = path.with_suffix(".param"), path.with_suffix(".bin")
        for part in (param, bin_):
            if not part.is_file():
                raise WeightsError(
                    f"an ncnn model is a .param and a .bin side by side; {part.name} is missing"
                )
        param_data, bin_data = read_param_bytes(param), bin_.read_bytes()  # read once: hashed is loaded
        detected = ncnn_from_bytes(param_data, bin_data, param.name, bin_.name)
        return detected, [SourceFile.of(param.name, param_data), SourceFile.of(bin_.name, bin_data)]
    if suffix not in CHECKPOINT_SUFFIXES:
        raise WeightsError(
            f"{Path(text).name}: unknown model format; import takes {', '.join(CHECKPOINT_SUFFIXES)} checkpoints "
            f"or an ncnn {' + '.join(NCNN_SUFFIXES)} pair"
        )
    try:
        path = localize(text)
    except (FileNotFoundError, PermissionError, ValueError, OSError) as exc:
        raise WeightsError(f"cannot read {text}: {exc}") from None
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {text}")
    data = path.read_bytes()  # read once: what is hashed is what is loaded
    state = state_from_bytes(data, path.name)
    detected = detect_architecture(state, scale=scale)  # the scale: a hint; _at_scale judges
    return detected, [SourceFile.of(path.name, data)]


def _at_scale(detected: Detected, scale: int | None) -> Detected:
    if scale is None or scale == detected.scale:
        return detected
    if detected.arch == "compact" and scale < detected.args["upscale"]:
        args = {**detected.args, "out_scale": scale}
        return replace(
            detected, args=args, scale=scale, layout=f"{detected.layout}, output resized to ×{scale}"
        )
    raise WeightsError(f"the model is ×{detected.scale} ({detected.layout}); ×{scale} was asked for")


def export_basicsr(network: torch.nn.Module, info: WeightsInfo, dest: str | Path) -> Path:
    """Write ``network``'s weights as a BasicSR-layout ``.pth`` state dict (``{"params_ema": …}``), atomically."""
    state = to_basicsr(info.arch, {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()})
    buffer = io.BytesIO()
    torch.save({"params_ema": state}, buffer)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, buffer.getvalue())
    return dest
