"""What rank 0 tells the user and MLflow during a run: progress lines, metrics, validation, sample grids.

The lines go to the worker's stdout, which Ray forwards to the driver's console; the metrics, sample grids
and checkpoint folders go to the run's MLflow store (:class:`~pixelplexus.training.tracking.RunLogger`).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pixelplexus.training.state import RunState
from pixelplexus.training.step import Amp
from pixelplexus.training.tracking import CHECKPOINTS, RunLogger
from pixelplexus.visual import image_grid

if TYPE_CHECKING:
    from pixelplexus.training.loop import LoopSpec


class Reporter:
    """Rank 0's progress line, MLflow metrics, validation and sample grids."""

    def __init__(self, task, state: RunState, loop: LoopSpec, world: int):
        from pixelplexus.training.data import read_images

        self.task, self.state, self.loop, self.world = task, state, loop, world
        self.train = task.config.train
        self.logger = RunLogger(loop.tracking_uri, loop.run_id)
        self.val_images, _ = read_images(
            loop.val_data, self.train.eval_images, background=task.config.image_background
        )
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
