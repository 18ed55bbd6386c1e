"""The task: what Ray Train, Ray Data and Ray Serve share.

A task (``generate``, ``enhance``, ``colorize``) knows

* its networks — :meth:`Task.build_generator`, :meth:`Task.build_discriminator` from a :class:`TaskConfig`;
  an inference task (:meth:`Task.for_inference`) knows only the generator a weights file describes;
* its data — :meth:`Task.training_sample` turns one decoded RGB image into one training example;
* one training step's losses — :meth:`Task.generator_output` (the "fake"), :meth:`Task.discriminator_loss`
  and :meth:`Task.generator_loss`;
* inference — :meth:`Task.prepare` (item → model input), :meth:`Task.run` (the network, tiled where it
  helps) and :meth:`Task.finish` (model output → image), composed by :meth:`Task.predict`; its options are
  the task's ``Options`` model, declared once in :mod:`pixelplexus.options` (the CLI flags and the HTTP
  query parameters are derived from it), which also says which inputs pass through untouched
  (``passthrough_rule``: it runs in the batch driver and read workers, which do without torch).

Everything here is plain PyTorch and NumPy with no hidden per-call state, so one task instance can serve
concurrent requests and the Ray layers stay thin.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from pixelplexus.archs import build_network
from pixelplexus.config import ConfigError, NetworkSpec, TaskConfig, parse_config
from pixelplexus.io.images import ImageRecord
from pixelplexus.losses import AdversarialLoss, PixelLoss, load_vgg19, r1_penalty
from pixelplexus.losses.perceptual import PerceptualLoss, TextureLoss
from pixelplexus.options import InferenceOptions, parse_options
from pixelplexus.precision import resolve as resolve_precision
from pixelplexus.weights import WeightsInfo

Logs = dict[str, float]


@dataclass
class Evaluation:
    """Validation results: mean metrics and, per image, the pictures of a sample grid row."""

    metrics: dict[str, float]
    rows: list[list[np.ndarray]] = field(default_factory=list)  # e.g. [input, output, real] per image
    columns: tuple[str, ...] = ()  # what each picture of a row shows


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP / compiled wrapper."""
    while hasattr(module, "module"):
        module = module.module
    return getattr(module, "_orig_mod", module)


class Autocast(nn.Module):
    """A network whose forward runs under bfloat16 autocast (:mod:`pixelplexus.precision`) and returns
    float32. ``module`` is the network itself (:func:`unwrap` finds it, and its attributes such as
    ``z_dim``); its weights stay float32 and are not copied."""

    def __init__(self, module: nn.Module, device_type: str = "cpu") -> None:
        super().__init__()
        self.module = module
        self.device_type = device_type  # where the module's weights are: "cpu" or "cuda"

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            y = self.module(x)
        return y.float()


def at_precision(generator: nn.Module, precision: str) -> nn.Module:
    """``generator`` run at ``precision`` (resolved on its parameters' device): itself for fp32, else an
    :class:`Autocast` around it (one already wrapped is kept as it is)."""
    if isinstance(generator, Autocast):
        return generator
    device = next(generator.parameters()).device
    return Autocast(generator, device.type) if resolve_precision(precision, device) == "bf16" else generator


class Task(ABC):
    """Base class of the three tasks. Subclasses set ``name`` and ``Options`` and fill in the hooks.

    ``Task(config)`` is a task to train (its networks and losses from a :class:`TaskConfig`);
    :meth:`Task.for_inference` is one to run a weights file, built from its metadata alone.
    """

    name: ClassVar[str]
    Options: ClassVar[type[InferenceOptions]] = InferenceOptions
    config: TaskConfig | None = None  # the training config; None on an inference task
    generator_spec: NetworkSpec  # the generator: the config's, or the one a weights file describes
    pixel_loss: PixelLoss | None = None
    adversarial: AdversarialLoss | None = None
    perceptual: PerceptualLoss | None = None
    texture: TextureLoss | None = None

    def __init__(self, config: TaskConfig | Mapping[str, Any] | None = None):
        if config is None:
            config = self.default_config()
        elif not isinstance(config, TaskConfig):
            config = parse_config({"task": self.name, **dict(config)})
        if config.task != self.name:
            raise ConfigError(f"a {config.task!r} config was given to the {self.name!r} task")
        self.config = config
        self.generator_spec = config.generator
        losses = config.losses
        self.pixel_loss = PixelLoss(losses.pixel)
        self.adversarial = AdversarialLoss(losses.adversarial) if losses.uses_adversarial else None
        if self.adversarial is not None and config.discriminator is None:
            raise ConfigError(
                f"{self.name}: losses.adversarial is {losses.adversarial!r} but no discriminator is configured; "
                "add a discriminator section or set losses.adversarial: none"
            )
        if losses.needs_vgg:
            vgg = load_vgg19(losses.vgg_weights, losses.vgg_layers)
            if losses.perceptual_weight > 0:
                self.perceptual = PerceptualLoss(vgg, losses.perceptual_layers)
            if losses.texture_weight > 0:
                self.texture = TextureLoss(vgg, losses.texture_layers, patch_size=losses.texture_patch)

    @classmethod
    def for_inference(cls, info: WeightsInfo) -> Task:
        """The task that runs the generator ``info`` (a weights file's metadata) describes.

        It has no training config and builds no losses (no VGG): only the inference methods work on it.
        """
        if info.task != cls.name:
            raise ConfigError(f"a {info.task!r} generator was given to the {cls.name!r} task")
        task = cls.__new__(cls)
        task.generator_spec = NetworkSpec(arch=info.arch, args=dict(info.args))
        return task

    # ----------------------------------------------------------------------------------- configuration
    @classmethod
    @abstractmethod
    def default_config(cls) -> TaskConfig:
        """A working configuration for this task; YAML files and flags override it."""

    def to(self, device: str | torch.device) -> Task:
        """Move the loss networks (e.g. VGG) to ``device``; returns ``self``."""
        for module in (self.perceptual, self.texture):
            if module is not None:
                module.to(device)
        return self

    # ----------------------------------------------------------------------------------------- networks
    def build_generator(self) -> nn.Module:
        spec = self.generator_spec
        return build_network(spec.arch, **spec.args)

    def build_discriminator(self) -> nn.Module | None:
        """The discriminator, or ``None`` when no adversarial loss is configured."""
        spec = self.config.discriminator
        if self.adversarial is None or spec is None:
            return None
        return build_network(spec.arch, **spec.args)

    def weights_info(self, generator: nn.Module, *, run_id: str | None = None, **extra: Any) -> WeightsInfo:
        """What a weights file of this task's generator says about itself."""
        spec = self.generator_spec
        return WeightsInfo(
            task=self.name,
            arch=spec.arch,
            args=dict(spec.args),
            scale=getattr(unwrap(generator), "upscale", None),
            run_id=run_id,
            extra=extra,
        )

    # --------------------------------------------------------------------------------------------- data
    @abstractmethod
    def training_sample(self, rgb: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One training example (a dict of C×H×W float32 arrays) from an H×W×3 uint8 RGB image."""

    @staticmethod
    def collate(samples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Tensor]:
        """Stack examples into a batch of tensors."""
        return {key: torch.from_numpy(np.stack([s[key] for s in samples])) for key in samples[0]}

    def device_batch(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        """The batch once on the training device, completed there before the step: as it is here; a task
        that makes inputs on the device (enhance's high-order degradations) adds them. ``generator`` (on the
        device, seeded per run, rank and step: :func:`pixelplexus.training.state.step_generator`) is the
        only source of randomness, so a resumed run makes the same batches."""
        return batch

    # ------------------------------------------------------------------------------------ training step
    @abstractmethod
    def generator_output(self, generator: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
        """The generator's output for a batch: the "fake" both losses look at."""

    @abstractmethod
    def real_and_fake(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Tensor]:
        """The discriminator's inputs for the real and the generated side."""

    def discriminator_loss(
        self, discriminator: nn.Module, batch: Mapping[str, Tensor], fake: Tensor
    ) -> tuple[Tensor, Logs]:
        """Adversarial loss of the discriminator (+ R1 on reals and any self-supervised terms)."""
        assert self.adversarial is not None, "discriminator_loss needs an adversarial loss"
        losses = self.config.losses
        real, fake_in = self.real_and_fake(batch, fake.detach())
        if losses.r1_weight > 0:
            real = real.detach().requires_grad_(True)
        real_logits, extra, logs = self.discriminate_real(discriminator, real)
        fake_logits = discriminator(fake_in)
        loss = self.adversarial.discriminator(real_logits, fake_logits)
        logs.update(d_adv=loss.item(), d_real=real_logits.mean().item(), d_fake=fake_logits.mean().item())
        if losses.r1_weight > 0:
            r1 = r1_penalty(real_logits, real)
            logs["d_r1"] = r1.item()
            loss = loss + losses.r1_weight * r1
        loss = loss + extra
        logs["d_loss"] = loss.item()
        return loss, logs

    def discriminate_real(self, discriminator: nn.Module, real: Tensor) -> tuple[Tensor, Tensor, Logs]:
        """Logits for reals, plus any extra discriminator loss computed on them (0 here; a task may add
        a term, as generate's self-supervised reconstruction)."""
        return discriminator(real), real.new_zeros(()), {}

    def generator_loss(
        self,
        discriminator: nn.Module | None,
        batch: Mapping[str, Tensor],
        fake: Tensor,
        *,
        adversarial: bool = True,
    ) -> tuple[Tensor, Logs]:
        """Content losses (``content_loss``) plus the adversarial term when ``adversarial`` and a D exist."""
        loss, logs = self.content_loss(batch, fake)
        if adversarial and discriminator is not None and self.adversarial is not None:
            real, fake_in = self.real_and_fake(batch, fake)
            fake_logits = discriminator(fake_in)
            real_logits = discriminator(real).detach() if self.adversarial.kind == "ragan" else None
            adv = self.adversarial.generator(fake_logits, real_logits)
            logs["g_adv"] = adv.item()
            loss = loss + self.config.losses.adversarial_weight * adv
        logs["g_loss"] = loss.item()
        return loss, logs

    def content_loss(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Logs]:
        """Non-adversarial generator losses; none by default."""
        return fake.new_zeros(()), {}

    # ---------------------------------------------------------------------------------------- inference
    @classmethod
    def parse_options(cls, options: InferenceOptions | Mapping[str, Any] | None = None, **kwargs: Any):
        """Validate inference options (a model, a mapping or keywords) → ``cls.Options``
        (:func:`pixelplexus.options.parse_options`)."""
        return parse_options(cls.name, options, **kwargs)

    def check_options(self, options: Any) -> None:
        """Raise :class:`OptionsError` when ``options`` ask for what this task's generator cannot do."""
        return None

    @abstractmethod
    def prepare(self, item: Any, options: Any, generator: nn.Module) -> Tensor:
        """One input item (an image record, or a seed for generate) → the network's C×H×W input."""

    def run(self, generator: nn.Module, x: Tensor, options: Any) -> Tensor:
        """The network on a batch of prepared inputs."""
        return generator(x)

    @abstractmethod
    def finish(self, y: Tensor, item: Any, options: Any) -> ImageRecord:
        """One network output (C×H×W, on the CPU) and its input item → the result image."""

    def smooth_frames(self, frames: np.ndarray, context: tuple[int, int] = (0, 0)) -> np.ndarray:
        """A video segment's results (N×H×W×3 uint8 RGB, in time order) made consistent over time, for
        tasks whose per-frame results flicker (colorize); by default as they are. ``context``: how many of
        the first and last frames belong to the neighbouring segments (the options' ``video_context``
        at most, each); only the frames between them are returned."""
        return frames[context[0] : len(frames) - context[1]]

    @abstractmethod
    def evaluate(self, generator: nn.Module, images: Sequence[np.ndarray]) -> Evaluation:
        """Score ``generator`` (eval mode) on validation images (H×W×3 uint8 RGB) and picture a few results.
        Runs it at fp32 whatever the machine (so scores compare across machines); to score another precision,
        pass an :class:`Autocast` around it."""

    @torch.no_grad()
    def predict(
        self,
        generator: nn.Module,
        items: Sequence[Any],
        options: InferenceOptions | Mapping[str, Any] | None = None,
        *,
        batch_size: int = 8,
    ) -> list[ImageRecord]:
        """Run the whole inference path on ``items``; inputs of equal shape are batched together.

        The generator is used as it is (call ``.eval()`` first, as :func:`load_generator` does), at the
        options' ``precision`` (:func:`at_precision`).
        """
        options = self.parse_options(options)
        self.check_options(options)
        device = next(generator.parameters()).device
        generator = at_precision(generator, options.precision)
        prepared = [self.prepare(item, options, generator) for item in items]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, x in enumerate(prepared):
            groups[tuple(x.shape)].append(index)
        results: list[ImageRecord | None] = [None] * len(items)
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                x = torch.stack([prepared[i] for i in chunk]).to(device)
                y = self.run(generator, x, options).float().cpu()
                for i, out in zip(chunk, y):
                    results[i] = self.finish(out, items[i], options)
        return results  # type: ignore[return-value]

    def predict_or_errors(
        self,
        generator: nn.Module,
        items: Sequence[Any],
        options: InferenceOptions | Mapping[str, Any] | None = None,
        *,
        batch_size: int = 8,
    ) -> list[ImageRecord | Exception]:
        """:meth:`predict`, but a failure is the failing item's result instead of everyone's.

        The items run as one batch; when that fails (an image too large for memory, a bad item), each runs
        alone so that only the bad ones get their exception in their place.
        """
        try:
            return list(self.predict(generator, items, options, batch_size=batch_size))
        except Exception:  # find the culprit: each item alone
            return [self._predict_one(generator, item, options) for item in items]

    def _predict_one(self, generator: nn.Module, item: Any, options: Any) -> ImageRecord | Exception:
        try:
            return self.predict(generator, [item], options, batch_size=1)[0]
        except Exception as exc:  # delivered to its caller; the replica or actor keeps working
            return exc
