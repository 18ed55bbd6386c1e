"""The training loop every Ray Train worker runs, the same for all tasks.

Per step: a batch from this worker's shard of the Ray Dataset → ``Task.training_sample`` per image (with
this rank's RNG) → on the device, ``Task.device_batch`` (with the step's ``torch.Generator``) →
:func:`pixelplexus.training.step.train_step` on DDP-wrapped networks → EMA and schedules
(:meth:`RunState.train_on`).
Every ``log_every`` steps rank 0 prints a progress line and logs losses, learning rates, images/s and the
skipped-image count to MLflow; every ``eval_every`` steps it scores the EMA generator on the validation
images and logs a sample grid; every ``checkpoint_every`` steps all ranks gather their RNG states, rank 0
writes the checkpoint, and everyone calls ``ray.train.report`` with it (Ray keeps the last K and restarts
from the newest after a worker dies).

The progress lines and MLflow logging are :mod:`pixelplexus.training.reporting`; writing, reporting and
fetching checkpoint folders is :mod:`pixelplexus.training.checkpoints`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelplexus.config import TaskConfig, parse_config
from pixelplexus.tasks import get_task
from pixelplexus.training.checkpoints import fetch_checkpoint, save_checkpoint
from pixelplexus.training.reporting import Reporter
from pixelplexus.training.state import RunState, seed_worker
from pixelplexus.training.step import Amp, build_networks


@dataclass
class LoopSpec:
    """What the driver tells every worker (plain values: it travels through Ray)."""

    config: dict[str, Any]
    tracking_uri: str
    run_id: str
    val_data: str
    resume_from: str | None = None  # a checkpoint folder: local path, s3:// or runs:/ URI
    skipped: Any = None  # the SkippedImages actor

    def task_config(self) -> TaskConfig:
        return parse_config(self.config)


def train_worker(spec: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``."""
    import ray.train
    import ray.train.torch

    loop = LoopSpec(**spec)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    config = loop.task_config()
    train = config.train
    seed_worker(train.seed, rank)
    device = ray.train.torch.get_device()
    task = get_task(config).to(device)
    nets = build_networks(task, device)
    state = RunState(
        task, nets, Amp.create(train.precision, device), np.random.default_rng([train.seed, rank])
    )

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # Ray restarted the run after a failure: continue from its newest checkpoint
        with checkpoint.as_directory() as folder:
            state.restore(Path(folder), rank)
    elif loop.resume_from:
        state.restore(fetch_checkpoint(loop.resume_from), rank)
    resumed_at = state.position.step

    nets.generator = ray.train.torch.prepare_model(nets.generator)
    if nets.discriminator is not None:
        nets.discriminator = ray.train.torch.prepare_model(nets.discriminator)

    reporter = Reporter(task, state, loop, world) if rank == 0 else None
    if reporter is not None:
        reporter.started(resumed_at, device, state.amp)
    shard = ray.train.get_dataset_shard("train")
    position = state.position
    while position.step < train.max_steps:
        batches = shard.iter_batches(
            batch_size=config.batch_size,
            drop_last=True,
            batch_format="numpy",
            local_shuffle_buffer_size=train.shuffle_buffer or None,
            local_shuffle_seed=(train.seed * 1_000_003 + rank) * 10_007 + position.epoch,
        )
        seen, ready = 0, time.perf_counter()
        for index, rows in enumerate(batches):
            seen += 1
            if index < position.batch_in_epoch:
                continue  # already trained on before the checkpoint this run resumed from
            waited = time.perf_counter() - ready  # the step waited this long for its data
            partners = {key: rows[key] for key in rows if key not in ("path", "image")}  # e.g. a pair's "lr"
            samples = [
                task.training_sample(image, state.rng, **{key: values[i] for key, values in partners.items()})
                for i, image in enumerate(rows["image"])
            ]
            logs = state.train_on(task.collate(samples), device, rank)
            if reporter is not None:
                reporter.step(logs, config.batch_size * world, waited)
            if position.step % train.checkpoint_every == 0 or position.step == train.max_steps:
                save_checkpoint(state, loop.run_id, rank, world, reporter)
            if position.step >= train.max_steps:
                break
            ready = time.perf_counter()
        if seen == 0:
            raise RuntimeError(
                f"no training batch: the data has fewer usable images than {world} worker(s) × batch size "
                f"{config.batch_size}; add images or lower batch_size"
            )
        if position.step < train.max_steps:
            position.epoch += 1
            position.batch_in_epoch = 0
    if reporter is not None:
        reporter.finished()
