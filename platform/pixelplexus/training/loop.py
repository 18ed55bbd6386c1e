"""The training loop every Ray Train worker runs, the same for all tasks.

Per step: a batch from this worker's shard of the Ray Dataset → ``Task.training_sample`` per image (with
this rank's RNG) → :func:`pixelplexus.engine.train_step` on DDP-wrapped networks → EMA and schedules.
Every ``log_every`` steps rank 0 prints a progress line and logs losses, learning rates, images/s and the
skipped-image count to MLflow; every ``eval_every`` steps it scores the EMA generator on the validation
images and logs a sample grid; every ``checkpoint_every`` steps all ranks gather their RNG states, rank 0
writes the checkpoint, and everyone calls ``ray.train.report`` with it (Ray keeps the last K and restarts
from the newest after a worker dies).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelplexus.config import TaskConfig, parse_config
from pixelplexus.engine import Amp, build_networks, train_step
from pixelplexus.tasks import get_task
from pixelplexus.training.state import RunState
from pixelplexus.training.tracking import CHECKPOINTS, RunLogger
from pixelplexus.visual import image_grid


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
    torch.manual_seed(train.seed * 1000 + rank)
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
            samples = [task.training_sample(image, state.rng) for image in rows["image"]]
            batch = {key: value.to(device) for key, value in task.collate(samples).items()}
            logs = train_step(task, nets, batch, step=position.step, amp=state.amp, d_steps=train.d_steps)
            state.after_step()
            if reporter is not None:
                reporter.step(logs, config.batch_size * world, waited)
            if position.step % train.checkpoint_every == 0 or position.step == train.max_steps:
                save_checkpoint(state, loop, rank, world, reporter)
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


def save_checkpoint(
    state: RunState, loop: LoopSpec, rank: int, world: int, reporter: Reporter | None
) -> None:
    """All ranks: gather RNG states; rank 0 writes and logs the checkpoint; all report to Ray Train."""
    import ray.train
    import torch.distributed as dist

    rng_states = [state.rng_state()]
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, rng_states[0])
        rng_states = gathered
    step = state.position.step
    metrics = {"step": step, "epoch": state.position.epoch}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            folder = state.save(Path(tmp) / f"step-{step:07d}", rng_states, run_id=loop.run_id)
            if reporter is not None:
                metrics.update(reporter.evaluate_if_due(step))
                reporter.checkpoint(folder)
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"step-{step:07d}")


def fetch_checkpoint(uri: str) -> Path:
    """A local copy of the checkpoint folder at ``uri`` (local path, ``s3://…`` or an MLflow URI)."""
    from pixelplexus.io.files import MLFLOW_SCHEMES, localize, scheme_of

    if scheme_of(uri) in MLFLOW_SCHEMES or scheme_of(uri) in ("", "file"):
        folder = localize(uri)
    else:
        import ray.train

        folder = Path(ray.train.Checkpoint(path=uri).to_directory())
    if (folder / "state.pt").is_file():
        return folder
    if folder.name == "state.pt":
        return folder.parent
    raise FileNotFoundError(f"{uri} is not a PixelPlexus checkpoint (no state.pt)")


class Reporter:
    """Rank 0's progress line, MLflow metrics, validation and sample grids."""

    def __init__(self, task, state: RunState, loop: LoopSpec, world: int):
        from pixelplexus.training.data import read_images

        self.task, self.state, self.loop, self.world = task, state, loop, world
        self.train = task.config.train
        self.logger = RunLogger(loop.tracking_uri, loop.run_id)
        self.val_images, _ = read_images(loop.val_data, self.train.eval_images)
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0
        self.images = 0
        self.data_wait = 0.0  # seconds the steps of this interval waited for their batches
        self.interval_start = self.run_start = time.perf_counter()
        self.last_eval = -1

    def started(self, step: int, device: torch.device, amp: Amp) -> None:
        what = f"resuming at step {step}" if step else "starting"
        _say(
            f"[{self.task.name}] {what}: {self.world} worker(s) on {device.type} "
            f"({torch.get_num_threads()} torch threads each), {amp.name}, "
            f"{self.train.max_steps} steps, batch {self.task.config.batch_size} per worker"
        )
        self.start_step = step
        self.logger.metrics({"resumed_at_step": step}, step)

    def step(self, logs: dict[str, float], images: int, data_wait: float) -> None:
        for key, value in logs.items():
            self.sums[key] += value
        self.count += 1
        self.images += images
        self.data_wait += data_wait
        step = self.state.position.step
        if step % self.train.log_every == 0 or step == self.train.max_steps:
            self.log_interval(step)
        if step % self.train.eval_every == 0 and step % self.train.checkpoint_every != 0:
            self.evaluate_if_due(step)

    def log_interval(self, step: int) -> None:
        now = time.perf_counter()
        rate = self.images / max(now - self.interval_start, 1e-9)
        losses = {key: total / max(self.count, 1) for key, total in self.sums.items()}
        waiting = self.data_wait / max(now - self.interval_start, 1e-9)
        metrics = {
            **losses,
            **self.state.learning_rates(),
            "images_per_s": rate,
            "data_wait_fraction": waiting,
        }
        if self.loop.skipped is not None:
            import ray

            metrics["skipped_images"] = float(ray.get(self.loop.skipped.count.remote()))
        self.logger.metrics(metrics, step)
        done = step - self.start_step
        left = (self.train.max_steps - step) * (now - self.run_start) / max(done, 1)
        shown = " ".join(f"{k} {v:.4g}" for k, v in sorted(losses.items()))
        skipped = f" | skipped {int(metrics['skipped_images'])}" if "skipped_images" in metrics else ""
        _say(
            f"[{self.task.name}] step {step}/{self.train.max_steps} | {shown} | {rate:.1f} img/s "
            f"(data wait {waiting:.0%}){skipped} "
            f"| ETA {_duration(left)}"
        )
        self.sums.clear()
        self.count = self.images = 0
        self.data_wait = 0.0
        self.interval_start = now

    def evaluate_if_due(self, step: int) -> dict[str, float]:
        """Score the EMA generator and log a sample grid, at eval intervals and at the end (once per step)."""
        if step == self.last_eval or not (step % self.train.eval_every == 0 or step == self.train.max_steps):
            return {}
        self.last_eval = step
        generator = self.state.inference_generator
        was_training = generator.training
        generator.eval()
        evaluation = self.task.evaluate(generator, self.val_images)
        generator.train(was_training)
        metrics = {f"val_{key}": value for key, value in evaluation.metrics.items()}
        self.logger.metrics(metrics, step)
        grid = image_grid(evaluation.rows[:4])
        self.logger.image(grid, f"samples/step-{step:07d}.png")
        _say(
            f"[{self.task.name}] eval at step {step}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            + f" (sample grid columns: {' / '.join(evaluation.columns)})"
        )
        return metrics

    def checkpoint(self, folder: Path) -> None:
        self.logger.folder(folder, f"{CHECKPOINTS}/{folder.name}")

    def finished(self) -> None:
        _say(
            f"[{self.task.name}] done: {self.state.position.step} steps in "
            f"{_duration(time.perf_counter() - self.run_start)}"
        )


def _say(line: str) -> None:
    """One progress line on the worker's stdout (Ray forwards it to the driver). Ray Train patches ``print``
    into its logger and, when another library wraps stdout, also prints it, so lines would appear twice."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
