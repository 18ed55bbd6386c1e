"""Shared test fixtures: tiny task configurations that train in seconds on a CPU, a real S3 endpoint, MLflow,
Ray clusters, and the test images of :mod:`support.corpus`. Plain helpers live in the :mod:`support` package."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
import yaml

from pixelplexus.config import TASK_NAMES, shipped_config_path
from support import processes

# The tiny configs that ship with the package (platform/pixelplexus/configs/*-tiny.yaml), as mappings.
TINY = {task: yaml.safe_load(shipped_config_path(f"{task}-tiny").read_text()) for task in TASK_NAMES}


@pytest.fixture
def tiny_config():
    """``tiny_config(task)`` → a fresh copy of that task's tiny config mapping."""
    import copy

    return lambda task: copy.deepcopy(TINY[task])


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback, as a separate process; yields its endpoint URL."""
    port = processes.free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.wait_for_port(port, server, "moto_server", timeout=30)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A fresh bucket on the moto server, with the AWS environment pointing at it; yields the bucket name."""
    for name, value in {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    yield bucket


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A local MLflow tracking store (SQLite + artifact folder) set as the current tracking URI."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("tests", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("tests")
    yield uri
    mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster shared by the whole session (8 logical CPUs, whatever the machine has).

    Tests that need a cluster of their own (``ray start --head``, a killed worker) start it themselves.
    Started like the commands start theirs (:mod:`pixelplexus.localray`), so that none of its processes
    (a Ray Train controller left in a reused worker, say) outlives the test session.
    """
    import ray

    from pixelplexus import localray

    local = localray.start(num_cpus=8, include_dashboard=False, configure_logging=False, log_to_driver=True)
    yield ray
    if local is not None:
        local.stop()
    else:
        ray.shutdown()


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, str]:
    """Weights files of the tiny configs (:func:`support.weights.tiny_weights`): "enhance" (×2), "enhance-x4",
    "colorize", "generate" → path."""
    from support.weights import tiny_weights

    return tiny_weights(tmp_path_factory.mktemp("weights"), TINY)


@pytest.fixture(scope="session")
def serve_app(ray_cluster, weights):
    """The Serve application with the tiny models on the session's cluster (:class:`support.serving.ServeApp`):
    ``serve_app.up()`` → its :class:`~support.serving.Service`. Deployed once for all the tests that use it,
    and stopped after the last of them in a row (see :func:`pytest_runtest_teardown`)."""
    from support.serving import ServeApp

    app = ServeApp(weights, processes.free_port)
    yield app
    app.down()


def pytest_runtest_teardown(item, nextitem):
    """Stop the shared Serve application once the next test does not use it, so it does not hold CPUs and
    memory through the rest of the session (a later test that uses it deploys it again)."""
    if "serve_app" in item.fixturenames and (nextitem is None or "serve_app" not in nextitem.fixturenames):
        app = item.funcargs.get("serve_app")
        if app is not None:
            app.down()


@pytest.fixture(scope="session")
def free_port():
    """``free_port()`` → a TCP port on 127.0.0.1 that nothing listens on right now."""
    return processes.free_port


@pytest.fixture(scope="session")
def stop_process_tree():
    """``stop_process_tree(popen)``: stop a server this test started, and everything it started."""
    return processes.stop_tree


@pytest.fixture
def ray_nodes():
    """``ray_nodes(env, *args, head=None, wait=True)`` → a :class:`support.ray_nodes.Node`: a ``ray start``
    head of this test's own on loopback, or a worker node joining ``head`` (own ports, own temp dir; ``args``
    add ``ray start`` flags, ``--num-cpus=1`` unless given; see :func:`support.ray_nodes.start_node`). Every node is stopped with its whole process tree at
    teardown: ``ray stop`` would stop every Ray on the machine."""
    from support.ray_nodes import start_node

    started = []

    def start(env: dict[str, str], *args: str, head=None, wait: bool = True):
        started.append(start_node(env, *args, head=head, wait=wait))
        return started[-1]

    yield start
    for node in reversed(started):
        node.stop()


@pytest.fixture
def ray_head(ray_nodes):
    """``ray_head(env, *args)`` → the dashboard URL of a ``ray start --head`` of this test's own
    (:func:`ray_nodes`)."""
    return lambda env, *args: ray_nodes(env, *args).dashboard
