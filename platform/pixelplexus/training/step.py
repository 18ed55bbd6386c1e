"""One GAN training step for every task, in plain PyTorch.

The step is the same for all tasks: the generator makes its output, the discriminator takes ``d_steps``
steps on (real, detached fake), then the generator takes a step on its content losses plus the
adversarial term from the updated discriminator (as in pix2pix and SRGAN). During ``generator_only_steps``
only the generator trains, on its content losses (SRResNet → SRGAN). Mixed precision is an :class:`Amp`; the
distributed loop (``pixelplexus.training.loop``) adds DDP wrappers, EMA and schedules around this function
without changing it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pixelplexus.config import ConfigError
from pixelplexus.tasks.base import Logs, Task, unwrap


@dataclass
class Networks:
    """The networks and optimisers one training run updates."""

    generator: nn.Module
    discriminator: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None


def build_networks(task: Task, device: str | torch.device = "cpu") -> Networks:
    """Generator, discriminator (if the task trains one) and their Adam optimisers from the task's config.

    The generator's encoder starts from ``train.init_backbone``'s ImageNet weights and the whole generator from
    ``train.init_generator`` when the config names them.
    """
    optim = task.config.optim
    generator = task.build_generator()
    if task.config.train.init_backbone:
        from pixelplexus.references import load_backbone_weights

        load_backbone_weights(generator, task.config.train.init_backbone)
    if task.config.train.init_generator:
        from pixelplexus.references import load_initial_weights

        load_initial_weights(generator, task.config.train.init_generator, task)
    generator = generator.to(device)
    discriminator = task.build_discriminator()
    opt_g = torch.optim.Adam(
        _parameter_groups(generator, optim.lr_g, optim.encoder_lr_scale),
        optim.lr_g,
        betas=optim.betas,
        weight_decay=optim.weight_decay,
    )
    opt_d = None
    if discriminator is not None:
        discriminator = discriminator.to(device)
        opt_d = torch.optim.Adam(
            discriminator.parameters(), optim.lr_d, betas=optim.betas, weight_decay=optim.weight_decay
        )
    return Networks(generator, discriminator, opt_g, opt_d)


def _parameter_groups(generator: nn.Module, lr: float, encoder_scale: float) -> list[dict]:
    """One group at ``lr``; or, for a generator with a pretrained encoder (an ``encoder_parameters`` method)
    and ``encoder_scale`` < 1, its encoder at ``lr × encoder_scale`` and the rest at ``lr``."""
    encoder = getattr(generator, "encoder_parameters", None)
    if encoder_scale == 1:
        return [{"params": list(generator.parameters())}]
    if encoder is None:
        raise ConfigError(
            f"optim.encoder_lr_scale is {encoder_scale:g} but {type(generator).__name__} has no pretrained "
            "encoder (effnet_unet has one); leave it at 1"
        )
    slow = list(encoder())
    ids = {id(p) for p in slow}
    rest = [p for p in generator.parameters() if id(p) not in ids]
    return [{"params": rest}, {"params": slow, "lr": lr * encoder_scale}]


@dataclass
class Amp:
    """Mixed precision: autocast to ``dtype`` (None = fp32) and, for fp16, a gradient scaler.

    ``precision`` "auto" means bf16 on GPUs that support it, fp16 with a scaler on older GPUs and fp32 on the
    CPU. ``bf16`` also runs on a CPU when asked (weights, optimiser state and losses stay fp32): on one with
    native bfloat16 (:func:`pixelplexus.precision.cpu_has_native_bf16`) a step takes ~0.6× the fp32 time
    (docs/benchmarks.md, "Training throughput"); without it oneDNN emulates bfloat16, slower than fp32.
    "auto" keeps fp32 on CPUs so that a CPU run trains the same on every machine. fp16 needs a GPU.
    """

    device_type: str = "cpu"
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def create(cls, precision: str, device: torch.device) -> Amp:
        if device.type != "cuda" or precision == "fp32":
            if precision == "fp16" and device.type != "cuda":
                raise ValueError(f"precision 'fp16' needs a CUDA device; use fp32, bf16 or auto on {device}")
            return cls(device.type, torch.bfloat16 if precision == "bf16" else None)
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if precision == "bf16":
            return cls("cuda", torch.bfloat16)
        return cls("cuda", torch.float16, torch.amp.GradScaler("cuda"))

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        if self.scaler is not None:
            self.scaler.update()


def train_step(
    task: Task,
    nets: Networks,
    batch: Mapping[str, Tensor],
    *,
    step: int,
    amp: Amp | None = None,
    d_steps: int = 1,
) -> Logs:
    """One optimisation step of both networks on ``batch``; returns the step's scalar logs.

    ``nets`` may hold DDP-wrapped networks: the discriminator steps go through the wrapper (so its gradients
    are averaged across workers), while the generator's step calls the bare discriminator, which is frozen
    then and needs no gradient synchronisation.
    """
    amp = amp or Amp()
    discriminator = nets.discriminator
    adversarial = discriminator is not None and step >= task.config.generator_only_steps
    logs: Logs = {}
    if adversarial:
        assert nets.opt_d is not None
        for index in range(d_steps):
            last = index == d_steps - 1  # earlier D steps see a fresh fake that G never backpropagates
            with amp.autocast(), torch.set_grad_enabled(last):
                fake = task.generator_output(nets.generator, batch)
            with amp.autocast():
                d_loss, d_logs = task.discriminator_loss(discriminator, batch, fake)
            nets.opt_d.zero_grad(set_to_none=True)
            amp.backward(d_loss)
            amp.step(nets.opt_d)
        logs.update(d_logs)
    else:
        with amp.autocast():
            fake = task.generator_output(nets.generator, batch)
    bare_d = unwrap(discriminator) if discriminator is not None else None
    if bare_d is not None:
        bare_d.requires_grad_(False)  # G's step needs gradients through D, not for D
    with amp.autocast():
        g_loss, g_logs = task.generator_loss(bare_d, batch, fake, adversarial=adversarial)
    nets.opt_g.zero_grad(set_to_none=True)
    amp.backward(g_loss)
    amp.step(nets.opt_g)
    amp.update()
    if bare_d is not None:
        bare_d.requires_grad_(True)
    logs.update(g_logs)
    return logs
