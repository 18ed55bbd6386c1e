"""A node lost for good on a real multi-node Ray cluster: a ``ray start`` head and worker nodes on loopback,
each with its own resources, and one worker node killed (its raylet and every process under it) while it
holds part of the work. The commands run as users run them on a cluster: ``pixelplexus …`` with
``RAY_ADDRESS``. What each loss should cost is in docs/scaling.md ("When something is lost").
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from pixelplexus.batch.manifest import read_manifest
from pixelplexus.config import shipped_config_path
from pixelplexus.io.images import decode_image
from support.batch import write_folder
from support.corpus import pattern
from support.ray_nodes import Node, list_nodes, wait_for_nodes
from support.training import final_state, image_files

pytestmark = pytest.mark.slow

COMMAND = str(Path(sys.executable).with_name("pixelplexus"))


def cluster_env() -> dict[str, str]:
    """The environment of the nodes and of the commands: no Ray settings of the test session's, no token
    (loopback only; test_ray_auth.py tries Ray's token authentication), and a lost node noticed within
    about 2 s instead of Ray's default of about 15 s (the GCS health-checks each raylet)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return env | {
        "RAY_AUTH_MODE": "disabled",
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_timeout_ms": "1000",
        "RAY_health_check_failure_threshold": "3",
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",  # Ray Train's controller polls its workers every 2 s
    }


def three_nodes(ray_nodes, env: dict[str, str], cpus: tuple[int, int, int]) -> tuple[Node, Node, Node]:
    """A head and worker nodes "a" and "b" (custom resources ``node_a``, ``node_b``), with ``cpus`` CPUs."""
    head = ray_nodes(env, f"--num-cpus={cpus[0]}")
    a = ray_nodes(env, f"--num-cpus={cpus[1]}", '--resources={"node_a": 1}', head=head, wait=False)
    b = ray_nodes(env, f"--num-cpus={cpus[2]}", '--resources={"node_b": 1}', head=head, wait=False)
    wait_for_nodes(head, 3, [a, b])
    return head, a, b


def dead_nodes(head: Node) -> list[str]:
    """The custom resource (``node_a``/``node_b``) of every node the cluster holds dead."""
    return sorted(
        name
        for node in list_nodes(head)
        if node["state"] == "DEAD"
        for name in node["resources_total"]
        if name.startswith("node_")
    )


def command(argv: list[str], env: dict[str, str], console: Path) -> subprocess.Popen:
    """``pixelplexus ARGV`` joining the cluster at ``RAY_ADDRESS``, its console written to ``console`` (a
    file, not a pipe: nobody reads while the test waits, and a full pipe would stall the command)."""
    with open(console, "w") as out:
        return subprocess.Popen(
            [COMMAND, *argv], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=console.parent
        )


def finished(run: subprocess.Popen, console: Path) -> str:
    """The console of ``run`` once it has succeeded (killed if it has not ended within 300 s)."""
    try:
        run.wait(timeout=300)
    except subprocess.TimeoutExpired:
        run.kill()
        raise
    text = console.read_text()
    assert run.returncode == 0, text[-3000:]
    return text


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300):
    """Poll ``condition()`` until it returns something true (returned); fail naming ``what`` if ``process``
    (the command under test) ends first or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if process.poll() is not None:
            pytest.fail(f"the command ended (exit code {process.returncode}) before {what}")
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.05)
    return value


def test_a_batch_run_that_loses_a_worker_node_accounts_for_every_input(ray_nodes, tmp_path, weights):
    env = cluster_env()
    # The head's one CPU can host at most one of the two model actors: a worker node holds the other.
    head, a, b = three_nodes(ray_nodes, env, cpus=(1, 2, 2))
    count = 300  # enough work that the node is lost mid-run on a fast machine too
    images = {}
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(pattern(48, 64, seed=i)).save(buffer, format="PNG")
        images[f"{i // 60}/{i:03d}.png"] = buffer.getvalue()
    write_folder(tmp_path / "in", images)
    out = tmp_path / "out"
    flags = ["--model", str(weights["enhance"]), "--tile", "0", "--batch-size", "8", "--concurrency", "2"]
    argv = ["enhance", str(tmp_path / "in"), str(out), *flags, "--threads-per-worker", "1"]
    run = command(argv, env | {"RAY_ADDRESS": head.address}, tmp_path / "console.txt")

    def written() -> int:
        return sum(1 for _ in out.glob("*/*.png"))

    # Once outputs appear, a model actor is at work: lose a worker node that runs one.
    lost = wait_for(
        lambda: written() and next((n for n in (a, b) if n.runs("ray::MapWorker")), None),
        run,
        "outputs with a model actor on a worker node",
    )
    lost.kill()
    written_before = written()
    finished(run, tmp_path / "console.txt")

    assert written_before < count, "the run was over before the node was lost"
    assert dead_nodes(head) == ["node_a" if lost is a else "node_b"]
    manifest = read_manifest(str(out))
    assert sorted(manifest.column("input_key").to_pylist()) == sorted(images)
    assert pc.all(pc.equal(manifest.column("status"), "ok")).as_py(), manifest.filter(
        pc.not_equal(manifest.column("status"), "ok")
    ).to_pylist()[:3]
    for key in images:
        assert decode_image((out / key).read_bytes()).pixels.shape[:2] == (96, 128), key


def test_training_that_loses_a_worker_node_resumes_from_its_checkpoint_exactly(ray_nodes, tmp_path):
    env = cluster_env()
    # Three CPUs for two training workers, on any two nodes: when a worker node is lost, the other two
    # nodes hold the restarted worker group.
    head, a, b = three_nodes(ray_nodes, env, cpus=(1, 1, 1))
    write_folder(tmp_path / "images", image_files(with_bad=False))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["train", "enhance", "--data", str(tmp_path / "images"), "--workers", "2"]
    argv += ["--config", str(shipped_config_path("enhance-tiny")), "--tracking-uri", tracking]
    argv += ["--experiment", "tests", "--storage", str(tmp_path / "ray")]  # one disk: every node reaches it
    for change in (
        "train.max_steps=20",
        "train.checkpoint_every=5",
        "train.log_every=5",
        "train.eval_every=20",
    ):
        argv += ["--set", change]

    def start(name: str) -> subprocess.Popen:
        return command(argv, env | {"RAY_ADDRESS": head.address}, tmp_path / f"{name}.txt")

    def finish(run: subprocess.Popen, name: str) -> tuple[str, dict]:
        """The run's MLflow run id and final training state, once the command succeeded."""
        console = finished(run, tmp_path / f"{name}.txt")
        checkpoint = re.search(r"checkpoint (\S+?)(;|$)", console, re.M).group(1)
        return re.search(r"MLflow run ([0-9a-f]{32})", console).group(1), final_state(checkpoint)

    straight_id, straight = finish(start("straight"), "straight")

    run = start("interrupted")
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("tests").experiment_id

    def logged_steps() -> list[int]:
        runs = [r.info.run_id for r in client.search_runs([experiment]) if r.info.run_id != straight_id]
        return [m.step for run_id in runs for m in client.get_metric_history(run_id, "g_loss")]

    # A log at step 10 means the step-5 report, and its checkpoint, completed: lose a worker's node then.
    wait_for(lambda: max(logged_steps(), default=0) >= 10, run, "the step-10 log")
    lost = next(n for n in (a, b) if n.runs("ray::RayTrainWorker"))
    lost.kill()
    run_id, resumed = finish(run, "interrupted")

    assert dead_nodes(head) == ["node_a" if lost is a else "node_b"]
    resumed_at = client.get_metric_history(run_id, "resumed_at_step")
    assert max(m.value for m in resumed_at) >= 5, resumed_at  # restarted from a checkpoint, not from 0
    assert resumed["position"] == straight["position"] and resumed["position"]["step"] == 20
    for part in ("generator", "discriminator", "ema"):
        for name, tensor in straight[part].items():
            assert torch.equal(tensor, resumed[part][name]), f"{part}.{name} differs after the node loss"
    assert np.isfinite([m.value for m in client.get_metric_history(run_id, "g_loss")]).all()
