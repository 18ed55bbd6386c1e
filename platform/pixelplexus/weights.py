"""Generator weights files: safetensors tensors plus JSON metadata that says how to rebuild the network.

A weights file is self-describing: ``task``, ``arch`` and the constructor ``args`` are stored next to the
tensors, so ``load_generator(path)`` needs nothing else. safetensors never unpickles, so loading a file
from an untrusted source cannot run code.

torch is imported by the functions that build or serialise networks, not by this module: reading and
checking a file's metadata (:func:`read_info`, what a batch driver or a CLI check needs) does not load torch.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from pixelplexus import __version__
from pixelplexus.io.files import localize, write_atomic

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT_VERSION = "1"
_META_KEY = "pixelplexus"


class WeightsError(ValueError):
    """A weights file that cannot be used for the request, with the reason."""


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file says about itself."""

    task: str
    arch: str
    args: dict[str, Any]
    scale: int | None = None
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        body = {
            "format_version": FORMAT_VERSION,
            "pixelplexus_version": __version__,
            "task": self.task,
            "arch": self.arch,
            "args": self.args,
            "scale": self.scale,
            "run_id": self.run_id,
            "extra": self.extra,
        }
        return {_META_KEY: json.dumps(body, sort_keys=True)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str] | None, source: str) -> WeightsInfo:
        if not metadata or _META_KEY not in metadata:
            raise WeightsError(f"{source}: not a PixelPlexus weights file (no '{_META_KEY}' metadata)")
        try:
            body = json.loads(metadata[_META_KEY])
            return cls(
                task=body["task"],
                arch=body["arch"],
                args=dict(body["args"]),
                scale=body.get("scale"),
                run_id=body.get("run_id"),
                extra=dict(body.get("extra") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise WeightsError(f"{source}: unreadable PixelPlexus metadata ({exc})") from None


def generator_bytes(generator: nn.Module, info: WeightsInfo) -> bytes:
    """Serialise a generator's state dict and ``info`` as safetensors bytes."""
    from safetensors.torch import save

    state = {name: t.detach().cpu().contiguous() for name, t in generator.state_dict().items()}
    return save(state, metadata=info.to_metadata())


def save_generator(path: str | Path, generator: nn.Module, info: WeightsInfo) -> Path:
    """Write ``generator`` to ``path`` atomically (a temp file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, generator_bytes(generator, info))
    return path


def read_info(source: str | Path | bytes) -> WeightsInfo:
    """The metadata of a weights file (path or bytes) without building the network, and without torch: the
    safetensors header is checked as safetensors checks it on loading (:func:`check_layout`)."""
    data, name = _bytes(source)
    try:
        metadata = check_layout(data)
    except ValueError as exc:
        raise WeightsError(f"{name}: not a readable safetensors file ({exc})") from None
    return WeightsInfo.from_metadata(metadata, name)


def load_generator(
    source: str | Path | bytes, *, task: str | None = None, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, WeightsInfo]:
    """Rebuild the generator stored in ``source`` (a path or the file's bytes) and load its weights.

    Args:
        source: a ``.safetensors`` file as a path, ``s3://`` or MLflow URI (a folder, such as a registered
            model's, must hold exactly one ``.safetensors`` file), or the file's bytes.
        task: when given, the file must belong to this task.
        map_location: device for the returned module.

    Returns the module in eval mode and the file's :class:`WeightsInfo`.
    """
    from pixelplexus.archs import build_network

    state, info, name = _read(source)
    if task is not None and info.task != task:
        raise WeightsError(f"{name} holds a {info.task!r} generator ({info.arch}), not a {task!r} one")
    try:
        generator = build_network(info.arch, **info.args)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{name}: cannot build {info.arch}({info.args}): {exc}") from None
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{name} does not match {info.arch}({info.args}): "
            f"missing tensors {_preview(missing)}; unexpected tensors {_preview(unexpected)}"
        )
    mismatched = [k for k, t in state.items() if t.shape != expected[k].shape]
    if mismatched:
        k = mismatched[0]
        raise WeightsError(
            f"{name}: tensor {k} has shape {tuple(state[k].shape)}, {info.arch} expects {tuple(expected[k].shape)}"
        )
    generator.load_state_dict(state)
    return generator.to(map_location).eval(), info


def _read(source: str | Path | bytes) -> tuple[dict[str, torch.Tensor], WeightsInfo, str]:
    from safetensors.torch import load

    data, name = _bytes(source)
    try:
        state = load(data)
        metadata = check_layout(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise WeightsError(f"{name}: not a readable safetensors file ({exc})") from None
    return state, WeightsInfo.from_metadata(metadata, name), name


def _bytes(source: str | Path | bytes) -> tuple[bytes, str]:
    """The weights file's bytes and the name errors give it."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "weights bytes"
    name = os.fspath(source)
    try:
        path = weights_file(localize(source), name)
    except (FileNotFoundError, PermissionError) as exc:
        raise WeightsError(f"cannot read weights {name}: {exc}") from None
    return path.read_bytes(), name


def weights_file(path: Path, name: str) -> Path:
    """The weights file itself: ``path``, or the one ``.safetensors`` file inside a folder (a registered
    MLflow model's); FileNotFoundError naming ``name`` otherwise."""
    if path.is_dir():
        found = sorted(path.rglob("*.safetensors"))
        if len(found) != 1:
            raise FileNotFoundError(f"{name} holds {len(found)} .safetensors files; expected exactly one")
        return found[0]
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {name}")
    return path


DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
               "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}  # fmt: skip
"""Bytes per element of the safetensors dtypes."""


def check_layout(data: bytes) -> dict[str, str] | None:
    """Check that ``data`` is a whole safetensors file — an 8-byte header length, a JSON header whose every
    tensor has a known dtype, a shape and ``data_offsets`` that match its size, the tensors tiling the data
    after the header exactly — and return its ``__metadata__``; ValueError says what is wrong. The checks
    safetensors makes on loading, without loading a tensor."""
    if len(data) < 8:
        raise ValueError("shorter than a header")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise ValueError("the header length exceeds the file")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    spans = []
    for name, entry in header.items():
        try:
            begin, end = entry["data_offsets"]
            count = math.prod(int(n) for n in entry["shape"])
            size = DTYPE_BYTES[entry["dtype"]] * count
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"tensor {name!r}: no valid dtype, shape and data_offsets") from None
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end) or end - begin != size:
            raise ValueError(f"tensor {name!r}: its data_offsets do not match its dtype and shape")
        spans.append((begin, end))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise ValueError("the tensors' data overlap or leave gaps")
        covered = end
    if covered != len(data) - 8 - header_len:
        raise ValueError("the tensors' data do not fill the file")
    return metadata


def _preview(keys: list[str], limit: int = 5) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown
