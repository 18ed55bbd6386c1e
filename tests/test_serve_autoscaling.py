"""Autoscaling, seen: the generate deployment with serve/config.yaml's own ``autoscaling_config`` (the one the
KubeRay manifests embed: 1 to 2 replicas) goes from 1 replica to 2 under load and back to 1 after it, read
from Serve's status API, with no failed request. The run's replica count against time is drawn to
docs/images/serve-autoscaling.png."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import pytest

from pixelplexus.serving.app import APP_NAME
from pixelplexus.serving.deploy import deploy, deployment, load_serve_config
from support.serving import CONFIG, Service

pytestmark = pytest.mark.slow

PLOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "serve-autoscaling.png"
CLIENTS = 4  # threads, each sending requests for 16 images: far above target_ongoing_requests per replica
SAMPLE_S = 0.25


def running_replicas(name: str) -> int:
    from ray import serve

    return serve.status().applications[APP_NAME].deployments[name].replica_states.get("RUNNING", 0)


def test_generate_scales_to_two_replicas_under_load_and_back_to_one(serve_app):
    service: Service = serve_app.up()
    tested = deployment(load_serve_config(CONFIG), "generate")["autoscaling_config"]
    assert (tested["min_replicas"], tested["max_replicas"]) == (1, 2)
    config = copy.deepcopy(service.config)
    deployment(config, "generate")["autoscaling_config"] = dict(tested)  # replicas at 0.25 CPU each (2 cores)
    deploy(config)
    samples: list[tuple[float, int]] = []
    load_window: list[float] = []
    statuses: list[int] = []
    sampling, loading = threading.Event(), threading.Event()
    start = time.monotonic()

    def sample() -> None:
        while not sampling.is_set():
            samples.append((time.monotonic() - start, running_replicas("generate")))
            time.sleep(SAMPLE_S)

    def client(seed: int) -> None:
        while loading.is_set():
            statuses.append(service.post("/v1/generate", json={"n": 16, "seed": seed}).status_code)

    def wait_for(replicas: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not (samples and samples[-1][1] == replicas):
            assert time.monotonic() < deadline, f"not {replicas} replicas after {timeout_s:g} s: {samples}"
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        time.sleep(1.0)
        loading.set()
        load_window.append(time.monotonic() - start)
        clients = [threading.Thread(target=client, args=(i * 100,)) for i in range(CLIENTS)]
        for thread in clients:
            thread.start()
        wait_for(2, 60)
        time.sleep(2.0)
        loading.clear()
        for thread in clients:
            thread.join()
        load_window.append(time.monotonic() - start)
        wait_for(1, 90)
        time.sleep(1.0)
    finally:
        loading.clear()
        sampling.set()
        sampler.join()
        deploy(service.config)

    counts = [count for _, count in samples]
    assert counts[0] == 1 and 2 in counts and counts[-1] == 1
    assert counts.index(2) > 0 and max(counts) == 2
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests: {sorted(set(statuses))}"
    _plot(samples, load_window, tested, len(statuses))


def _plot(samples: list[tuple[float, int]], load: list[float], tested: dict, requests: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, counts = zip(*samples)
    figure, axes = plt.subplots(figsize=(7, 2.6), dpi=100)
    axes.axvspan(load[0], load[1], color="#f4d9a6", label=f"load: {CLIENTS} clients × 16 images per request")
    axes.step(
        times, counts, where="post", color="#2457a6", linewidth=2, label="RUNNING replicas (serve.status())"
    )
    axes.set(xlabel="seconds", ylabel="generate replicas", ylim=(0, 2.6), yticks=[0, 1, 2])
    axes.set_title(
        f"autoscaling_config {tested}: {requests} requests, none failed", fontsize=8, loc="left", wrap=True
    )
    axes.legend(loc="lower center", fontsize=8)
    figure.tight_layout()
    figure.savefig(PLOT)
    plt.close(figure)
