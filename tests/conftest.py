"""Shared test set-up: tiny task configurations that train in seconds on a CPU, and a real S3 endpoint."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
import yaml

from pixelplexus.config import TASK_NAMES, shipped_config_path

sys.path.insert(0, str(Path(__file__).parent))  # tests/corpus.py is importable as `corpus`

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback, as a separate process; yields its endpoint URL."""
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
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
def free_port():
    """``free_port()`` → a TCP port on 127.0.0.1 that nothing listens on right now."""
    return _free_port


def _stop_tree(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM ``process`` (which stops what it started), then SIGKILL whatever of its tree is left.

    The tree is taken before the signal: Ray's workers start sessions of their own, so the process group
    alone would miss them, and after the head exits they would be reparented and hard to find.
    """
    import psutil

    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for child in tree:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=10)


@pytest.fixture(scope="session")
def stop_process_tree():
    """``stop_process_tree(popen)``: stop a server this test started, and everything it started."""
    return _stop_tree


@pytest.fixture
def ray_head(free_port):
    """``ray_head(env, *args)`` → the dashboard URL of a ``ray start --head`` of this test's own, on loopback.

    Own ports (fixed defaults would clash with the session's Ray cluster), own temp dir, own session; ``args``
    add ``ray start`` flags (``--num-cpus=1`` unless given). Stopped with its whole process tree at teardown:
    ``ray stop`` would stop every Ray on the machine.
    """
    import shutil
    import tempfile
    import urllib.request

    started: list[tuple[subprocess.Popen, str]] = []

    def start(env: dict[str, str], *args: str) -> str:
        dashboard = free_port()
        ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths are length-limited
        flags = [
            f"--port={free_port()}",
            f"--dashboard-port={dashboard}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--disable-usage-stats",
            f"--temp-dir={ray_tmp}",
            *(args if any(a.startswith("--num-cpus") for a in args) else ("--num-cpus=1", *args)),
        ]
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", *flags],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append((head, ray_tmp))
        url = f"http://127.0.0.1:{dashboard}"
        deadline = time.monotonic() + 120
        while True:  # public in every auth mode: KubeRay's probes and submitter use it without a token
            try:
                with urllib.request.urlopen(f"{url}/api/gcs_healthz", timeout=2) as response:
                    if response.status == 200:
                        return url
            except OSError:
                pass
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start (exit code {head.poll()})")
            time.sleep(0.3)

    yield start
    for head, ray_tmp in started:
        _stop_tree(head)
        shutil.rmtree(ray_tmp, ignore_errors=True)
