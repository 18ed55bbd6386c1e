"""Read a third-party state dict: a PyTorch checkpoint (``.pth``/``.pt``) or a ``.safetensors`` file.

PyTorch checkpoints are pickles, and unpickling can run any code. They are read with
``torch.load(..., weights_only=True)``, whose unpickler builds only tensors and plain containers and refuses
everything else before it is created; such a file is refused here with a :class:`WeightsError`. safetensors
files hold tensors only.

BasicSR and Real-ESRGAN wrap the state dict in ``{"params_ema": ...}`` (the EMA weights, preferred) or
``{"params": ...}``; other trainers use ``state_dict`` or ``model``, and DDP prefixes every name with
``module.``. :func:`read_state_dict` unwraps all of these and returns a flat ``name -> tensor`` dict. Error
messages name the file and the reason, never the file's bytes.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load

from pixelplexus.weights import WeightsError

PICKLE_SUFFIXES = (".pth", ".pt")
SAFETENSORS_SUFFIX = ".safetensors"
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
"""Keys that wrap the state dict, in order of preference (BasicSR keeps the EMA weights in ``params_ema``)."""
DDP_PREFIX = "module."


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The flat ``name -> tensor`` state dict in ``path`` (``.pth``/``.pt`` or ``.safetensors``), unwrapped.

    Raises :class:`WeightsError` naming the file and the reason when it cannot be read (missing, empty,
    truncated, corrupt), when it holds Python objects other than tensors (a pickle that would build or run
    anything else is not loaded), or when the state dict holds anything but string names and tensors.
    """
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in (*PICKLE_SUFFIXES, SAFETENSORS_SUFFIX):
        raise WeightsError(
            f"{name}: not a PyTorch checkpoint or safetensors file (expected a name ending in "
            f"{', '.join((*PICKLE_SUFFIXES, SAFETENSORS_SUFFIX))})"
        )
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise WeightsError(f"{name} is empty")
    return state_from_bytes(path.read_bytes(), name)


def state_from_bytes(data: bytes, name: str) -> dict[str, torch.Tensor]:
    """:func:`read_state_dict` of a file's bytes already read (``name`` ends in its suffix): a caller that
    also hashes the file reads it once, and what is hashed is what is loaded."""
    if not data:
        raise WeightsError(f"{name} is empty")
    safetensors = name.lower().endswith(SAFETENSORS_SUFFIX)
    loaded = _read_safetensors(data, name) if safetensors else _read_pickle(data, name)
    return _flat_state(loaded, name)


def _read_safetensors(data: bytes, name: str) -> dict[str, torch.Tensor]:
    try:
        return load(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(
            f"{name}: not a readable safetensors file, truncated or corrupt ({_safetensors_reason(exc)})"
        ) from None


def _safetensors_reason(exc: Exception) -> str:
    """safetensors' reason without what it quotes from the header ("invalid JSON in header: unknown variant
    `…`" becomes "invalid JSON in header")."""
    text = str(exc).removeprefix("Error while deserializing header: ")
    return text.split(":", 1)[0].strip()[:120] or type(exc).__name__


def _read_pickle(data: bytes, name: str) -> object:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # The weights-only unpickler met something other than tensors and plain containers (a class, a
        # function such as os.system); it refuses before building it. A legacy-format checkpoint cut short
        # can read the same way.
        raise WeightsError(
            f"{name} holds Python objects other than tensors, so it was not loaded (checkpoints are "
            "read with weights_only=True, which never runs code; a truncated legacy checkpoint reads the "
            "same way)"
        ) from None
    except EOFError:
        raise WeightsError(f"{name}: not a readable PyTorch checkpoint (it ends early: truncated)") from None
    except RuntimeError as exc:
        if "zip archive" in str(exc):
            raise WeightsError(
                f"{name}: not a readable PyTorch checkpoint (a damaged zip archive: truncated or corrupt)"
            ) from None
        raise WeightsError(f"{name}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    except Exception as exc:  # torch.load fails in many ways on bytes that are not a checkpoint
        raise WeightsError(
            f"{name}: not a readable PyTorch checkpoint, truncated or corrupt ({type(exc).__name__})"
        ) from None


def _flat_state(loaded: object, name: str) -> dict[str, torch.Tensor]:
    """The state dict inside ``loaded``: unwrapped from BasicSR's and others' wrappers, DDP prefix removed."""
    state = loaded
    for _ in range(2):  # e.g. {"state_dict": {"params_ema": ...}}
        if not isinstance(state, Mapping):
            break
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping):
        raise WeightsError(f"{name} holds a {type(state).__name__}, not a state dict (names -> tensors)")
    if not state:
        raise WeightsError(f"{name} holds an empty state dict")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise WeightsError(
                f"{name}: the state dict has a {type(key).__name__} key; names must be strings"
            )
        if not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{name}: entry {key_label(key)} is of type {type(value).__name__}, not a tensor; a state dict holds "
                "tensors only"
            )
        tensors[key] = value
    if all(key.startswith(DDP_PREFIX) for key in tensors):
        tensors = {key[len(DDP_PREFIX) :]: value for key, value in tensors.items()}
    return tensors


def key_label(key: str, limit: int = 80) -> str:
    """A tensor name as messages show it: quoted, escaped and cut to ``limit`` characters."""
    return repr(key if len(key) <= limit else key[:limit] + "…")
