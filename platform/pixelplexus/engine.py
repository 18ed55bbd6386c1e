"""One GAN training step for every task, in plain PyTorch.

The step is the same for all tasks: the generator makes its output once, the discriminator takes a step
on (real, detached fake), then the generator takes a step on its content losses plus the adversarial term
from the updated discriminator (as in pix2pix and SRGAN). During ``warmup_steps`` only the generator
trains, on its content losses (SRResNet → SRGAN). The distributed loop adds DDP, mixed precision and EMA
around this function; it does not change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pixelplexus.tasks.base import Logs, Task


@dataclass
class Networks:
    """The networks and optimisers one training run updates."""

    generator: nn.Module
    discriminator: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None


def build_networks(task: Task, device: str | torch.device = "cpu") -> Networks:
    """Generator, discriminator (if the task trains one) and their Adam optimisers from the task's config."""
    optim = task.config.optim
    generator = task.build_generator().to(device)
    discriminator = task.build_discriminator()
    opt_g = torch.optim.Adam(
        generator.parameters(), optim.lr_g, betas=optim.betas, weight_decay=optim.weight_decay
    )
    opt_d = None
    if discriminator is not None:
        discriminator = discriminator.to(device)
        opt_d = torch.optim.Adam(
            discriminator.parameters(), optim.lr_d, betas=optim.betas, weight_decay=optim.weight_decay
        )
    return Networks(generator, discriminator, opt_g, opt_d)


def train_step(task: Task, nets: Networks, batch: Mapping[str, Tensor], *, step: int) -> Logs:
    """One optimisation step of both networks on ``batch``; returns the step's scalar logs."""
    adversarial = nets.discriminator is not None and step >= task.config.warmup_steps
    fake = task.generator_output(nets.generator, batch)
    logs: Logs = {}
    if adversarial:
        assert nets.opt_d is not None
        nets.discriminator.requires_grad_(True)
        d_loss, d_logs = task.discriminator_loss(nets.discriminator, batch, fake)
        nets.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        nets.opt_d.step()
        logs.update(d_logs)
        nets.discriminator.requires_grad_(False)  # G's step needs gradients through D, not for D
    g_loss, g_logs = task.generator_loss(nets.discriminator, batch, fake, adversarial=adversarial)
    nets.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    nets.opt_g.step()
    if nets.discriminator is not None:
        nets.discriminator.requires_grad_(True)
    logs.update(g_logs)
    return logs
