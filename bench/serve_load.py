"""Serving latency and throughput: enhance on 128×128 images through Ray Serve over HTTP.

One run measures, on the same machine and model:

* the direct in-process call (decode → ``Task.predict`` → encode, one request at a time), the baseline;
* the service at concurrency 1, 8 and 32 with batching off (``max_batch_size: 1``) and on (8), switched by
  deploying a new ``user_config`` (the hot-swap path); one enhance replica, fixed, so the autoscaler does
  not change the picture mid-run.

Every row is measured in each of ``--rounds`` interleaved rounds, so a change in background load hits all
rows alike: p50/p99 pool the rounds' latencies, req/s is the median round. Overhead is the service's p50 at
concurrency 1 minus the direct call's p50 (HTTP, proxy, ingress, handle and the batch wait). The enhance
replica gets as many torch threads as the direct call (all cores); the client threads run in this process,
on the same cores. Results go to stdout as a Markdown table.

    .venv/bin/python bench/serve_load.py [--requests 32] [--rounds 3] [--concurrency 1 8 32] [--model REF] [--gpu]

Without ``--model`` the default enhance architecture (compact ×4, 64 features, 16 convs), or the one of
``--enhance-config``, is freshly initialised: the cost of a forward pass does not depend on the weights. A
small network (``--enhance-config platform/pixelplexus/configs/enhance-tiny.yaml``) makes the serving overhead stand out.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

TASKS = ("enhance", "colorize", "generate")


def fresh_weights(folder: Path, configs: dict[str, str]) -> dict[str, str]:
    """Freshly initialised generators of each task's configuration (default or a YAML file), as weights files."""
    from pixelplexus.config import load_config as load_task_config
    from pixelplexus.tasks import get_task
    from pixelplexus.weights import save_generator

    weights = {}
    for name in TASKS:
        task = get_task(load_task_config(configs[name]) if name in configs else name)
        generator = task.build_generator()
        weights[name] = str(
            save_generator(folder / f"{name}.safetensors", generator, task.weights_info(generator))
        )
    return weights


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def direct(task, generator, data: bytes, requests_: int, device: str) -> list[float]:
    """Latencies of the in-process call: the same decode → predict → encode the service does."""
    from pixelplexus.io.images import decode_image, encode_image

    latencies = []
    for _ in range(requests_):
        start = time.perf_counter()
        record = task.predict(generator, [decode_image(data)])[0]
        encode_image(record, "PNG")
        if device == "cuda":
            import torch

            torch.cuda.synchronize()
        latencies.append(time.perf_counter() - start)
    return latencies


def load(url: str, data: bytes, concurrency: int, requests_: int) -> tuple[list[float], float]:
    """``requests_`` POSTs from ``concurrency`` threads; returns the latencies and the wall time."""
    local = threading.local()

    def call(_: int) -> float:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        start = time.perf_counter()
        response = session.post(f"{url}/v1/enhance", data=data, timeout=300)
        response.raise_for_status()
        return time.perf_counter() - start

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(min(concurrency, requests_))))  # warm-up: connections, first batches
        start = time.perf_counter()
        latencies = list(pool.map(call, range(requests_)))
        return latencies, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=32, help="requests per row and round (default: 32)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every row (default: 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--size", type=int, default=128, help="edge of the input image (default: 128)")
    parser.add_argument(
        "--model", help="enhance model reference (default: fresh default-architecture weights)"
    )
    parser.add_argument(
        "--enhance-config", help="task config YAML of the fresh enhance model (default: the task's default)"
    )
    parser.add_argument("--batch", type=int, default=8, help="max_batch_size with batching on (default: 8)")
    parser.add_argument(
        "--gpu", action="store_true", help="give the enhance replica (and the direct call) a GPU"
    )
    args = parser.parse_args()

    import ray
    import torch
    from ray import serve

    from pixelplexus.io.images import ImageRecord, encode_image
    from pixelplexus.photos import sample_photos
    from pixelplexus.references import resolve_model
    from pixelplexus.serving.deploy import (
        deploy,
        deployment,
        load_serve_config,
        with_http,
        with_models,
        with_user_config,
    )
    from pixelplexus.tasks import inference_task

    cores = os.cpu_count() or 1
    device = "cuda" if args.gpu else "cpu"
    photo = next(iter(sample_photos(args.size).values()))
    data = encode_image(ImageRecord(pixels=photo), "PNG")

    with tempfile.TemporaryDirectory() as folder:
        weights = fresh_weights(Path(folder), {"enhance": args.enhance_config} if args.enhance_config else {})
        if args.model:
            weights["enhance"] = args.model
        model = resolve_model(weights["enhance"], "enhance")
        task, generator = inference_task(model.info), model.load(device)
        direct(task, generator, data, 3, device)  # warm-up

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config = with_models(with_http(load_serve_config(), host="127.0.0.1", port=port), weights)
        for name in TASKS:
            deployment(config, name)["autoscaling_config"] = {"min_replicas": 1, "max_replicas": 1}
        enhance = deployment(config, "enhance")
        enhance["ray_actor_options"] = {"num_cpus": cores, "num_gpus": 1 if args.gpu else 0}
        enhance["max_ongoing_requests"] = max(args.concurrency)
        ray.init(address="local", num_cpus=cores + 4, include_dashboard=False, log_to_driver=False)
        direct_latencies: list[float] = []
        latencies: dict[tuple[int, int], list[float]] = defaultdict(list)
        rates: dict[tuple[int, int], list[float]] = defaultdict(list)
        try:
            # Rounds interleave every configuration, so a change in background load hits them all alike.
            for _ in range(args.rounds):
                direct_latencies += direct(task, generator, data, args.requests, device)
                for batch in (1, args.batch):
                    deploy(
                        with_user_config(config, "enhance", model=weights["enhance"], max_batch_size=batch)
                    )
                    for concurrency in args.concurrency:
                        seconds, wall = load(url, data, concurrency, args.requests)
                        latencies[batch, concurrency] += seconds
                        rates[batch, concurrency].append(args.requests / wall)
            served = requests.get(f"{url}/v1/models", timeout=30).json()["models"]
        finally:
            serve.shutdown()
            ray.shutdown()

    replica = next(m for m in served if m["task"] == "enhance")
    d50, d99 = percentiles(direct_latencies)
    print(
        f"machine: {platform.machine()}, {cores} cores, device {replica['device']}, "
        f"torch threads: direct {torch.get_num_threads()}, replica {replica['torch_threads']}; "
        f"input {args.size}×{args.size} PNG, model {replica['arch']} ×{replica['scale']}, "
        f"{args.rounds} interleaved rounds × {args.requests} requests per row\n"
    )
    print(
        "| path | max_batch_size | concurrency | p50 ms | p99 ms | req/s (median of rounds) | p50 overhead ms |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| direct call | – | 1 | {d50:.1f} | {d99:.1f} | {1 / statistics.median(direct_latencies):.2f} | – |"
    )
    for (batch, concurrency), seconds in latencies.items():
        p50, p99 = percentiles(seconds)
        overhead = f"{p50 - d50:+.1f}" if concurrency == 1 else "–"
        rate = statistics.median(rates[batch, concurrency])
        print(f"| Serve HTTP | {batch} | {concurrency} | {p50:.1f} | {p99:.1f} | {rate:.2f} | {overhead} |")
    print()
    for concurrency in args.concurrency:
        ratio = statistics.median(rates[args.batch, concurrency]) / statistics.median(rates[1, concurrency])
        print(f"batching on / off throughput at concurrency {concurrency}: {ratio:.2f}×")


if __name__ == "__main__":
    main()
