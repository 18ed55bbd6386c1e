"""Everything a training run carries from step to step, and its checkpoints.

A checkpoint is a folder:

* ``state.pt`` — G, D, EMA-G, both optimisers and schedulers, the gradient scaler, the step, the data
  position (epoch, batch within the epoch) and every rank's RNG states. Only tensors and plain Python
  values, so it loads with ``torch.load(weights_only=True)``: reading a checkpoint never runs code.
* ``generator.safetensors`` and ``ema.safetensors`` — the two generators as PixelPlexus weights files,
  loadable by ``pixelplexus.weights.load_generator`` (and by batch jobs and Serve) without this module.
* ``config.json`` — the task config the run used.

Restoring ``state.pt`` into freshly built networks and continuing gives the same weights as never having
stopped (on the CPU, where the kernels are deterministic).
"""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelplexus.config import ScheduleConfig, TaskConfig
from pixelplexus.tasks.base import Logs, Task, unwrap
from pixelplexus.training.step import Amp, Networks, train_step
from pixelplexus.weights import save_generator

STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.safetensors"
EMA_FILE = "ema.safetensors"


def seed_worker(seed: int, rank: int) -> None:
    """Seed torch's global generator as a training worker of rank ``rank`` does before it builds its task and
    networks: the same ``train.seed`` gives every run of a config the same starting weights (what lets their
    results be averaged)."""
    torch.manual_seed(seed * 1000 + rank)


def step_generator(seed: int, rank: int, step: int, device: torch.device | str) -> torch.Generator:
    """The ``torch.Generator`` of one rank's training step, on ``device``, for the draws a task makes on the
    device (:meth:`Task.device_batch`): seeded from (seed, rank, step) alone, so a run resumed at any step
    draws what the straight run drew, with no state to checkpoint."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0]))
    return generator


class EMA:
    """Exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019).

    Buffers (e.g. BatchNorm statistics) are copied, not averaged. Before ``start`` steps the average simply
    follows the generator, so early random weights do not linger in it.
    """

    def __init__(self, generator: nn.Module, decay: float, start: int = 0):
        self.module = copy.deepcopy(unwrap(generator)).eval().requires_grad_(False)
        self.decay = decay
        self.start = start

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        source = unwrap(generator)
        keep = self.decay if step >= self.start else 0.0
        for average, param in zip(self.module.parameters(), source.parameters()):
            average.lerp_(param.detach(), 1.0 - keep)
        for average, buffer in zip(self.module.buffers(), source.buffers()):
            average.copy_(buffer)


def lr_factor(schedule: ScheduleConfig, max_steps: int):
    """The multiplier of the initial learning rate at each step (for ``LambdaLR``)."""

    def factor(step: int) -> float:
        if step < schedule.warmup_steps:
            return (step + 1) / schedule.warmup_steps
        if schedule.kind == "cosine":
            progress = min(1.0, (step - schedule.warmup_steps) / max(1, max_steps - schedule.warmup_steps))
            return schedule.min_ratio + (1 - schedule.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if schedule.kind == "step":
            return schedule.gamma ** sum(step >= milestone for milestone in schedule.milestones)
        return 1.0

    return factor


@dataclass
class Position:
    """Where the run is: optimiser steps taken, the data epoch, and batches already used in that epoch."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


class RunState:
    """Networks, optimisers, schedulers, EMA and scaler of one worker, with checkpoint save/restore."""

    def __init__(self, task: Task, nets: Networks, amp: Amp, rng: np.random.Generator):
        train = task.config.train
        self.task, self.nets, self.amp, self.rng = task, nets, amp, rng
        factor = lr_factor(train.schedule, train.max_steps)
        self.schedulers = {"g": torch.optim.lr_scheduler.LambdaLR(nets.opt_g, factor)}
        if nets.opt_d is not None:
            self.schedulers["d"] = torch.optim.lr_scheduler.LambdaLR(nets.opt_d, factor)
        self.ema = EMA(nets.generator, train.ema_decay, train.ema_start) if train.ema_decay > 0 else None
        self.position = Position()

    @property
    def inference_generator(self) -> nn.Module:
        """The generator to evaluate and ship: the EMA one when EMA is on."""
        return self.ema.module if self.ema is not None else unwrap(self.nets.generator)

    def after_step(self) -> None:
        """Advance the EMA and the schedules after an optimiser step."""
        self.position.step += 1
        self.position.batch_in_epoch += 1
        if self.ema is not None:
            self.ema.update(self.nets.generator, self.position.step)
        with warnings.catch_warnings():
            # During the generator-only warm-up D's schedule advances without D steps; torch warns about that.
            warnings.filterwarnings(
                "ignore", re.escape("Detected call of `lr_scheduler.step()`"), UserWarning
            )
            for scheduler in self.schedulers.values():
                scheduler.step()

    def train_on(self, batch: dict[str, torch.Tensor], device: torch.device | str, rank: int = 0) -> Logs:
        """One optimisation step on a collated batch of :meth:`Task.training_sample` outputs (on the CPU): to
        ``device``, the task's device-side draws (:meth:`Task.device_batch`, seeded by :func:`step_generator`),
        :func:`train_step`, then EMA and schedules. The Ray loop and ``bench/train_on_device.py`` both step here."""
        task, train, step = self.task, self.task.config.train, self.position.step
        batch = {key: value.to(device) for key, value in batch.items()}
        batch = task.device_batch(batch, step_generator(train.seed, rank, step, device))
        logs = train_step(task, self.nets, batch, step=step, amp=self.amp, d_steps=train.d_steps)
        self.after_step()
        return logs

    def learning_rates(self) -> dict[str, float]:
        return {f"lr_{name}": scheduler.get_last_lr()[0] for name, scheduler in self.schedulers.items()}

    # ----------------------------------------------------------------------------------- checkpoints
    def rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def set_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        self.rng.bit_generator.state = state["numpy"]
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def save(self, folder: Path, rng_states: list[dict[str, Any]], *, run_id: str | None = None) -> Path:
        """Write a checkpoint folder (``rng_states``: every rank's :meth:`rng_state`, in rank order)."""
        folder.mkdir(parents=True, exist_ok=True)
        nets = self.nets
        state = {
            "position": vars(self.position).copy(),
            "generator": unwrap(nets.generator).state_dict(),
            "discriminator": unwrap(nets.discriminator).state_dict() if nets.discriminator else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "opt_g": nets.opt_g.state_dict(),
            "opt_d": nets.opt_d.state_dict() if nets.opt_d is not None else None,
            "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()},
            "scaler": self.amp.scaler.state_dict() if self.amp.scaler is not None else None,
            "rng": rng_states,
        }
        torch.save(state, folder / STATE_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(self.task.config.model_dump(mode="json"), indent=2))
        generator = unwrap(nets.generator)
        step = self.position.step
        save_generator(
            folder / GENERATOR_FILE, generator, self.task.weights_info(generator, run_id=run_id, step=step)
        )
        if self.ema is not None:
            info = self.task.weights_info(self.ema.module, run_id=run_id, step=step, ema=True)
            save_generator(folder / EMA_FILE, self.ema.module, info)
        return folder

    def restore(self, folder: Path, rank: int) -> None:
        """Load a checkpoint folder written by :meth:`save` into this (freshly built) state."""
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        nets = self.nets
        unwrap(nets.generator).load_state_dict(state["generator"])
        if nets.discriminator is not None:
            unwrap(nets.discriminator).load_state_dict(state["discriminator"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.module.load_state_dict(state["ema"])
        nets.opt_g.load_state_dict(state["opt_g"])
        if nets.opt_d is not None:
            nets.opt_d.load_state_dict(state["opt_d"])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        if self.amp.scaler is not None and state["scaler"] is not None:
            self.amp.scaler.load_state_dict(state["scaler"])
        self.position = Position(**state["position"])
        if rank < len(state["rng"]):
            self.set_rng_state(state["rng"][rank])


def checkpoint_config(folder: Path) -> TaskConfig:
    """The task config saved in a checkpoint folder."""
    from pixelplexus.config import parse_config

    return parse_config(json.loads((folder / CONFIG_FILE).read_text()), source=str(folder / CONFIG_FILE))
