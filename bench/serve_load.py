"""Serving latency and throughput: enhance on 128×128 images through Ray Serve over HTTP.

One run measures, on the same machine and model:

* the direct in-process call (decode → ``Task.predict`` → encode, one request at a time), the baseline;
* ``GET /healthz`` at concurrency 1: the HTTP hop alone (client → proxy → ingress and back, no model);
* the service at concurrency 1, 8 and 32 with batching off (``max_batch_size: 1``) and on (8), switched by
  deploying a new ``user_config`` (the hot-swap path); one enhance replica, fixed, so the autoscaler does
  not change the picture mid-run.

Where the time goes: around every row the benchmark reads the CPU time (user + system) of this process (the
client, or the direct call) and of each process of the Ray instance it started, by role (Serve's proxy, the
ingress replica, the enhance replica, the rest of Ray), and prints the CPU milliseconds each request cost
there. Unlike latency, CPU time changes little with what else runs on the machine (except for threads that
spin while they wait for a core, as torch's do), so it compares code versions measured on a busy machine.
And at concurrency 1 with batching off, each request's id (``X-Request-ID``) is looked up in Serve's access
logs, where the proxy, the ingress replica and the model replica each record the milliseconds from the
request's arrival to its answer leaving: the medians, beside the client's latency and the direct call, say
which hop the overhead is spent on.

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
import re
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


ROLES = {  # a Ray worker's process title → its role in a request
    "ray::ProxyActor": "proxy",
    "ray::ServeReplica:pixelplexus:ingress": "ingress",
    "ray::ServeReplica:pixelplexus:enhance": "enhance replica",
}
IDLE, IDLE_S = "idle", 2.0
COLUMNS = ("client", "proxy", "ingress", "enhance replica", "Ray, other")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process ("client") and of the Ray processes it started, by role."""
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    totals = defaultdict(float, client=times.user + times.system)
    for process in me.children(recursive=True):
        try:
            title, times = " ".join(process.cmdline()), process.cpu_times()
        except psutil.Error:  # gone meanwhile
            continue
        role = next((role for prefix, role in ROLES.items() if title.startswith(prefix)), "Ray, other")
        totals[role] += times.user + times.system
    return totals


def cpu_cost(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: after[role] - before.get(role, 0.0) for role in after}


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


def load(
    url: str, data: bytes | None, concurrency: int, requests_: int, ids: dict[str, float] | None = None
) -> tuple[list[float], float]:
    """``requests_`` POSTs of ``data`` to /v1/enhance (None: GETs of /healthz) from ``concurrency`` threads;
    returns the latencies and the wall time. ``ids`` collects each measured request's id (Serve's
    ``X-Request-ID``) → its latency."""
    local = threading.local()

    def call(_: int) -> tuple[float, str]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        start = time.perf_counter()
        if data is None:
            response = session.get(f"{url}/healthz", timeout=300)
        else:
            response = session.post(f"{url}/v1/enhance", data=data, timeout=300)
        response.raise_for_status()
        return time.perf_counter() - start, response.headers.get("x-request-id", "")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(min(concurrency, requests_))))  # warm-up: connections, first batches
        start = time.perf_counter()
        answers = list(pool.map(call, range(requests_)))
        wall = time.perf_counter() - start
    if ids is not None:
        ids.update((request_id, seconds) for seconds, request_id in answers)
    return [seconds for seconds, _ in answers], wall


ACCESS_LOG = re.compile(
    r" ([0-9a-f]{32}) -- (?:POST /v1/enhance 200|GET /healthz 200|CALL __call__ OK) ([0-9.]+)ms$"
)
LOG_ROLES = {
    "proxy_": "proxy",
    "replica_pixelplexus_ingress_": "ingress",
    "replica_pixelplexus_enhance_": "model",
}


def access_log_ms(session_dir: str) -> dict[str, dict[str, float]]:
    """Request id → role (proxy, ingress, model) → the milliseconds Serve's access log recorded for it there:
    from a request's arrival at that process to its answer leaving it."""
    times: dict[str, dict[str, float]] = defaultdict(dict)
    for path in Path(session_dir, "logs", "serve").glob("*.log"):
        role = next((r for prefix, r in LOG_ROLES.items() if path.name.startswith(prefix)), None)
        if role is None:
            continue
        for line in path.read_text(errors="replace").splitlines():
            match = ACCESS_LOG.search(line)
            if match:
                times[match.group(1)][role] = float(match.group(2))
    return times


def breakdown(ids: dict[str, float], logged: dict[str, dict[str, float]]) -> dict[str, float]:
    """Median milliseconds a request spent in each process, outermost first: the client's latency, then what
    Serve's access log says for the proxy, the ingress replica and the model replica (each from the
    request's arrival there to the process's log line, which comes after the answer left)."""
    spent = defaultdict(list)
    for request_id, seconds in ids.items():
        spent["client (whole request)"].append(1000 * seconds)
        for role, ms in logged.get(request_id, {}).items():
            spent[role].append(ms)
    return {where: statistics.median(values) for where, values in spent.items()}


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
        health_latencies: list[float] = []
        cpu: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # row → role → seconds
        counted: dict[str, int] = defaultdict(int)  # row → requests

        walls: dict[str, float] = defaultdict(float)  # row → seconds

        def account(row: str, before: dict[str, float], requests_: int, started: float) -> None:
            for role, seconds in cpu_cost(before, cpu_seconds()).items():
                if role in before:  # (the direct call counts this process only)
                    cpu[row][role] += seconds
            counted[row] += requests_
            walls[row] += time.perf_counter() - started

        latencies: dict[tuple[int, int], list[float]] = defaultdict(list)
        health_ids: dict[str, float] = {}  # request id → latency: GET /healthz
        model_ids: dict[str, float] = {}  # the same for the model at concurrency 1, batching off
        rates: dict[tuple[int, int], list[float]] = defaultdict(list)
        try:
            # Rounds interleave every configuration, so a change in background load hits them all alike.
            for _ in range(args.rounds):
                before, started = cpu_seconds(), time.perf_counter()
                direct_latencies += direct(task, generator, data, args.requests, device)
                account("direct call", {"client": before["client"]}, args.requests, started)
                for batch in (1, args.batch):
                    deploy(
                        with_user_config(config, "enhance", model=weights["enhance"], max_batch_size=batch)
                    )
                    if batch == 1:
                        before, started = cpu_seconds(), time.perf_counter()
                        time.sleep(IDLE_S)  # what the service burns with no request: subtracted below
                        account(IDLE, before, 0, started)
                        before, started = cpu_seconds(), time.perf_counter()
                        health_latencies += load(url, None, 1, args.requests, health_ids)[0]
                        account("GET /healthz", before, args.requests + 1, started)  # with the warm-up
                    for concurrency in args.concurrency:
                        before, started = cpu_seconds(), time.perf_counter()
                        seconds, wall = load(
                            url,
                            data,
                            concurrency,
                            args.requests,
                            model_ids if (batch, concurrency) == (1, 1) else None,
                        )
                        account(
                            f"Serve HTTP, max_batch_size {batch}, concurrency {concurrency}",
                            before,
                            args.requests + min(concurrency, args.requests),  # with the warm-up
                            started,
                        )
                        latencies[batch, concurrency] += seconds
                        rates[batch, concurrency].append(args.requests / wall)
            served = requests.get(f"{url}/v1/models", timeout=30).json()["models"]
            logged = access_log_ms(ray._private.worker._global_node.get_session_dir_path())
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
    h50, h99 = percentiles(health_latencies)
    print(f"| Serve HTTP, GET /healthz (no model) | – | 1 | {h50:.1f} | {h99:.1f} | – | – |")
    for (batch, concurrency), seconds in latencies.items():
        p50, p99 = percentiles(seconds)
        overhead = f"{p50 - d50:+.1f}" if concurrency == 1 else "–"
        rate = statistics.median(rates[batch, concurrency])
        print(f"| Serve HTTP | {batch} | {concurrency} | {p50:.1f} | {p99:.1f} | {rate:.2f} | {overhead} |")
    print()
    idle = {role: seconds / walls[IDLE] for role, seconds in cpu.pop(IDLE).items()}  # CPU s per s
    print(
        "CPU milliseconds per request, by process (all rounds, warm-up requests included), less what each "
        f"process burns idle ({', '.join(f'{role} {1000 * rate:.0f}' for role, rate in idle.items())} ms "
        "per second):\n"
    )
    print(f"| row | {' | '.join(COLUMNS)} | total |")
    print(f"|---|{'---|' * (len(COLUMNS) + 1)}")
    for row, roles in cpu.items():
        busy = {r: s - (idle.get(r, 0.0) * walls[row] if r != "client" else 0.0) for r, s in roles.items()}
        per_request = {role: 1000 * busy.get(role, 0.0) / counted[row] for role in COLUMNS}
        cells = " | ".join(f"{per_request[role]:.1f}" if role in roles else "–" for role in COLUMNS)
        print(f"| {row} | {cells} | {sum(per_request.values()):.1f} |")
    print()
    print(
        "Where a request's time goes at concurrency 1 (batching off): medians of the client's latency and of "
        "the milliseconds Serve's access log records in each process the request crosses:\n"
    )
    health, model = breakdown(health_ids, logged), breakdown(model_ids, logged)
    print("| where | GET /healthz ms | POST /v1/enhance ms |")
    print("|---|---|---|")
    for where in ("client (whole request)", "proxy", "ingress", "model"):
        cells = [f"{row[where]:.1f}" if where in row else "–" for row in (health, model)]
        print(f"| {where} | {' | '.join(cells)} |")
    print(f"| direct call (decode, predict, encode) | – | {d50:.1f} |")
    print()
    for concurrency in args.concurrency:
        ratio = statistics.median(rates[args.batch, concurrency]) / statistics.median(rates[1, concurrency])
        print(f"batching on / off throughput at concurrency {concurrency}: {ratio:.2f}×")


if __name__ == "__main__":
    main()
