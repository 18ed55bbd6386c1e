"""Training throughput: the Ray Train loop against a plain single-process PyTorch loop, same model and batch.

Both paths train the base enhance config (``jobs/configs/enhance-base.yaml``: compact ×4, 64 features,
16 convs, L1) with a smaller crop so a CPU can run it, on the same N photo-like PNG images, with the same
torch threads:

1. plain: one process decodes every image with PIL up front, then loops ``Task.training_sample`` →
   ``collate`` → ``training.step.train_step`` (no Ray, no DDP, no EMA, no logging) — the baseline;
2. Ray Train: ``run_training`` with one worker on a fresh local Ray cluster (Ray Data streaming and
   decoding, DDP wrapper, EMA, MLflow logging, checkpoints) — what ``pixelplexus train`` runs.

Steady-state images/s leave out start-up: the plain loop is timed after ``--warmup`` steps, and Ray
Train's rate is the median of the images/s it logs per interval after the first interval. Start-up (Ray,
workers, dataset) is reported separately. On a CUDA device, and on a CPU with native bfloat16
(``pixelplexus.precision.cpu_has_native_bf16``), the plain loop also runs with bf16 autocast
(``train.precision: bf16``) for the mixed-precision ratio. Each path runs in a fresh process. Prints a Markdown table.

3. plain with Real-ESRGAN's high-order degradations (``enhance.high_order``, its defaults): the same plain
   loop with the LR made on the device by ``Task.device_batch``, timed apart from ``train_step``: the
   degradation's cost per batch as a ratio of the generator step's, in the same run.

    .venv/bin/python bench/train_throughput.py [--steps 120] [--crop 64] [--batch-size 8] [--threads 2]
        [--skip-ray]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from pixelplexus.precision import cpu_has_native_bf16

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
mode, folder, steps, crop, batch, threads, warmup, precision = sys.argv[1:9]
steps, crop, batch, threads, warmup = int(steps), int(crop), int(batch), int(threads), int(warmup)
torch.set_num_threads(threads)
from pixelplexus.config import load_config
config = load_config(sys.argv[9]).override(**{
    "crop_size": crop, "batch_size": batch, "train.max_steps": steps, "train.log_every": max(1, steps // 6),
    "train.eval_every": steps, "train.checkpoint_every": steps, "train.eval_images": 2, "train.eval_size": 64,
    "train.precision": precision})
if mode == "high-order":
    config = config.override(**{"enhance.high_order": {}})
files = sorted(Path(folder, "images").glob("*.png"))
if mode in ("plain", "high-order"):
    from pixelplexus.training.state import step_generator
    from pixelplexus.training.step import Amp, build_networks, train_step
    from pixelplexus.tasks import get_task
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task = get_task(config).to(device)
    nets = build_networks(task, device)
    amp = Amp.create(precision, device)
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    rng = np.random.default_rng(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    degrading = stepping = 0.0
    for step in range(steps):
        if step == warmup:
            sync(); start = time.perf_counter(); degrading = stepping = 0.0
        picks = rng.integers(0, len(images), batch)
        samples = [task.training_sample(images[i], rng) for i in picks]
        batch_t = {k: v.to(device) for k, v in task.collate(samples).items()}
        sync(); before = time.perf_counter()
        batch_t = task.device_batch(batch_t, step_generator(0, 0, step, device))
        sync(); between = time.perf_counter()
        train_step(task, nets, batch_t, step=step, amp=amp)
        sync(); after = time.perf_counter()
        degrading, stepping = degrading + between - before, stepping + after - between
    sync()
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_s": (steps - warmup) * batch / seconds, "device": device.type,
                      "device_batch_ms": 1000 * degrading / (steps - warmup),
                      "step_ms": 1000 * stepping / (steps - warmup)}))
else:
    from mlflow import MlflowClient
    from pixelplexus.training.trainer import TrainJob, run_training
    start = time.perf_counter()
    uri = f"sqlite:///{folder}/mlflow.db"
    result = run_training(TrainJob(config=config, data=str(Path(folder, "images")), workers=1,
                                   cpus_per_worker=threads, gpus_per_worker=1 if torch.cuda.is_available() else 0,
                                   tracking_uri=uri, storage=f"{folder}/ray", experiment="bench"))
    wall = time.perf_counter() - start
    client = MlflowClient(uri)
    rate = float(np.median([m.value for m in client.get_metric_history(result.run_id, "images_per_s")][1:]))
    wait = float(np.median([m.value for m in client.get_metric_history(result.run_id, "data_wait_fraction")][1:]))
    print(json.dumps({"images_per_s": rate, "wall_s": wall, "startup_s": wall - steps * batch / rate,
                      "data_wait": wait}))
"""


def run_child(mode: str, folder: str, args: argparse.Namespace, precision: str = "fp32") -> dict:
    argv = [mode, folder, args.steps, args.crop, args.batch_size, args.threads, args.warmup, precision]
    argv += [str(REPO / "jobs" / "configs" / "enhance-base.yaml")]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, argv)], capture_output=True, text=True, cwd=folder
    )
    if out.returncode:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_images(folder: Path, count: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        base = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), np.sin(4 * (xx + yy) + 2 * i)], axis=-1)
        noise = rng.normal(0, 0.05, base.shape)
        image = np.clip((base * 0.4 + 0.5 + noise) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / "images" / f"img{i:03d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--skip-ray", action="store_true", help="only the plain loops (no Ray Train run)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        make_images(Path(tmp), args.images, 160)
        plain = run_child("plain", tmp, args)
        high_order = run_child("high-order", tmp, args)
        ray_train = None if args.skip_ray else run_child("ray", tmp, args)
        native = plain["device"] == "cuda" or cpu_has_native_bf16()  # emulated bf16 is slower than fp32
        bf16 = run_child("plain", tmp, args, "bf16") if native else None

    print(
        f"device: {plain['device']} ({platform.processor() or platform.machine()}), torch threads {args.threads}, "
        f"enhance-base (compact ×4) at crop {args.crop}, batch {args.batch_size}, {args.steps} steps\n"
    )
    print("| path | images/s | vs plain loop |")
    print("|---|---|---|")
    print(f"| plain PyTorch loop, fp32 | {plain['images_per_s']:.1f} | 1.00 |")
    print(
        f"| plain loop with enhance.high_order, fp32 | {high_order['images_per_s']:.1f} | "
        f"{high_order['images_per_s'] / plain['images_per_s']:.2f} |"
    )
    if ray_train is not None:
        ratio = ray_train["images_per_s"] / plain["images_per_s"]
        print(f"| Ray Train loop (1 worker), fp32 | {ray_train['images_per_s']:.1f} | {ratio:.2f} |")
    if bf16 is not None:
        print(
            f"| plain PyTorch loop, bf16 autocast | {bf16['images_per_s']:.1f} | "
            f"{bf16['images_per_s'] / plain['images_per_s']:.2f} |"
        )
    print(
        f"\nReal-ESRGAN's high-order degradations (Task.device_batch) per batch: "
        f"{high_order['device_batch_ms']:.1f} ms; the training step: {high_order['step_ms']:.1f} ms; "
        f"ratio {high_order['device_batch_ms'] / high_order['step_ms']:.2f}"
    )
    if ray_train is not None:
        print(f"\nRay Train steps waited for data {ray_train['data_wait']:.0%} of the time (median interval)")
        print(
            f"\nRay Train start-up (cluster, worker, dataset, MLflow run): {ray_train['startup_s']:.1f} s "
            f"of {ray_train['wall_s']:.1f} s wall"
        )


if __name__ == "__main__":
    main()
