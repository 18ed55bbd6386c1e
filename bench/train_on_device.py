"""Train one task config in a single process without Ray or MLflow: for the lent GPU machine, which has
neither (docs/models.md says which bundled models were trained this way).

The step is the Ray loop's own (:meth:`RunState.train_on`: ``device_batch`` → ``train_step`` → EMA and
schedules, with the task's ``training_sample`` and ``collate``); what differs is the plumbing around it:
images from one local folder, batches prepared in DataLoader worker processes (each its own seeded RNG,
drawing images with replacement), and a time box instead of a fixed step count: the first
``--probe-steps`` (inside the schedule's warm-up, where the step count does not matter yet) measure the
rate, and ``train.max_steps`` is then set to what fits in ``--minutes`` (capped by ``--max-steps``), so the
cosine schedule ends when the time does; ``--recheck-after`` steps later it is set again from the rate so
far (other runs sharing the device have started by then), and a run still going at the deadline stops
there. The EMA generator is written as a PixelPlexus weights file to ``--out`` at the end, and to ``--out``
with ``-half`` before the suffix halfway through (fp16, as the bundled files are).

  # here, where the project is installed: the start a Ray run of the config makes (its seed, the backbone)
  python bench/train_on_device.py --config jobs/configs/bundled/colorize.yaml --write-start start.safetensors
  # there
  python bench/train_on_device.py --config jobs/configs/bundled/colorize.yaml --data DIR --minutes 7 \\
      --init-generator start.safetensors --out $OUT/colorize.safetensors [--set key=value ...]

``--init-generator``: a weights file to start from (the start ``--write-start`` wrote, which needs no
backbone package there and lets the run be averaged with the config's CPU runs; or a model to fine-tune).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))
# The device image lacks imagecodecs; only 16-bit PNG/TIFF decoding needs it, and this reads JPEG and PNG8.
try:
    import imagecodecs  # noqa: F401
except ImportError:
    sys.modules["imagecodecs"] = types.ModuleType("imagecodecs")

from pixelplexus.config import ConfigError, load_config
from pixelplexus.tasks import get_task
from pixelplexus.training.command import parse_overrides
from pixelplexus.training.state import RunState, lr_factor, seed_worker
from pixelplexus.training.step import Amp, build_networks
from pixelplexus.weights import save_generator

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class Batches(torch.utils.data.IterableDataset):
    """Endless collated batches of ``task.training_sample`` views of ``images``."""

    def __init__(self, task, images: list[np.ndarray], batch_size: int, seed: int):
        self.task, self.images, self.batch_size, self.seed = task, images, batch_size, seed

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, worker.id if worker else 0])
        while True:
            picks = rng.integers(0, len(self.images), self.batch_size)
            yield self.task.collate([self.task.training_sample(self.images[i], rng) for i in picks])


def save(state: RunState, path: Path) -> None:
    """Write the generator to ship (the EMA one when EMA is on) as a weights file, fp16 as the bundled are."""
    generator, step = state.inference_generator, state.position.step
    info = state.task.weights_info(generator, step=step, ema=state.ema is not None)
    save_generator(path, copy.deepcopy(generator).half(), info)
    print(f"wrote {path} (step {step})", flush=True)


def write_start(config, path: Path) -> None:
    """The generator a Ray run of ``config`` starts from (rank 0's seed, ``train.init_backbone`` and
    ``train.init_generator`` loaded), as a float16 weights file whose decoding needs no prior."""
    seed_worker(config.train.seed, 0)  # as a Ray run's rank 0
    task = get_task(config)
    generator = build_networks(task).generator
    if config.colorize is not None:  # a start has no prior or mean colour to decode with yet
        task = get_task(config.override(**{"colorize.prior_correction": 0.0, "colorize.chroma_gain": 1.0}))
    save_generator(path, generator.half(), task.weights_info(generator, step=0))
    print(f"wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="task config YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--write-start", default=None, help="write the config's starting generator; exit")
    parser.add_argument("--data", help="folder of training images (RGB)")
    parser.add_argument("--out", help="weights file to write (EMA generator)")
    parser.add_argument("--minutes", type=float, help="training time, probe included")
    parser.add_argument("--max-steps", type=int, default=None, help="at most this many steps")
    parser.add_argument("--probe-steps", type=int, default=60)
    parser.add_argument("--recheck-after", type=int, default=300, help="steps after the probe to re-time")
    parser.add_argument("--init-generator", default=None, help="weights file to start from")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader processes preparing batches")
    parser.add_argument("--log-every", type=int, default=200)
    args = parser.parse_args(argv)
    began = time.perf_counter()

    try:
        changes = parse_overrides(args.overrides)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.init_generator:
        changes.update({"train.init_generator": args.init_generator, "train.init_backbone": None})
    config = load_config(args.config).override(**changes) if changes else load_config(args.config)
    train = config.train
    if args.write_start:
        write_start(config, Path(args.write_start))
        return 0
    if not (args.data and args.out and args.minutes):
        parser.error("--data, --out and --minutes are needed to train")
    if train.schedule.kind == "cosine" and args.probe_steps > train.schedule.warmup_steps:
        parser.error(
            f"--probe-steps must stay inside the cosine schedule's warm-up ({train.schedule.warmup_steps})"
        )
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    seed_worker(train.seed, 0)
    task = get_task(config)
    loader = torch.utils.data.DataLoader(
        Batches(task, images, config.batch_size, train.seed),  # each worker forks a CPU copy of the task
        batch_size=None,
        num_workers=args.workers,
        worker_init_fn=lambda _: torch.set_num_threads(1),
        prefetch_factor=4,
        persistent_workers=True,
        multiprocessing_context="fork",
    )
    batches = iter(loader)  # fork the workers before CUDA starts in this process
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task = task.to(device)
    nets = build_networks(task, device)
    state = RunState(task, nets, Amp.create(train.precision, device), np.random.default_rng(train.seed))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"{len(images)} images, {config.batch_size}/batch, {device} {state.amp.name}", flush=True)

    probe_start, max_steps, half = None, None, None
    recheck = args.probe_steps + args.recheck_after
    deadline = began + args.minutes * 60 - 15  # 15 s for the files
    while max_steps is None or state.position.step < max_steps:
        step = state.position.step
        if step == args.probe_steps // 3:
            sync()
            probe_start = time.perf_counter()
        if step in (args.probe_steps, recheck):  # again once other work on the device has settled
            sync()
            rate = (step - args.probe_steps // 3) / (time.perf_counter() - probe_start)
            max_steps = max(step + 1, step + int(rate * (deadline - time.perf_counter())))
            max_steps = min(max_steps, args.max_steps) if args.max_steps else max_steps
            half = max_steps // 2
            factor = lr_factor(train.schedule, max_steps)
            for scheduler in state.schedulers.values():
                scheduler.lr_lambdas = [factor] * len(scheduler.lr_lambdas)
            print(f"step {step}: {rate:.2f} steps/s, training {max_steps} steps", flush=True)
        if time.perf_counter() > deadline:
            print(f"out of time at step {step} of {max_steps}", flush=True)
            break
        logs = state.train_on(next(batches), device)
        step = state.position.step
        if step % args.log_every == 0 or step == max_steps:
            rates = ", ".join(f"{k} {v:.2e}" for k, v in state.learning_rates().items())
            losses = ", ".join(f"{k} {v:.4f}" for k, v in logs.items())
            print(
                f"step {step}/{max_steps}: {losses}, {rates}, {time.perf_counter() - began:.0f} s", flush=True
            )
        if step == half:
            save(state, Path(args.out).with_name(f"{Path(args.out).stem}-half{Path(args.out).suffix}"))
    save(state, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
