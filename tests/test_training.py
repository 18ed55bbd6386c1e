"""Ray Train: the one GAN loop for every task on a real local Ray cluster, with a real MLflow store.

Each run is a real ``TorchTrainer`` with 2 workers (DDP over gloo), a tiny config from ``pixelplexus/configs/``
and images the test makes; what it logs is read back through MLflow's own client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from pixelplexus.config import shipped_config_path
from pixelplexus.io.images import ImageRecord
from pixelplexus.tasks import get_task
from pixelplexus.training.state import STATE_FILE
from pixelplexus.training.trainer import TrainJob
from pixelplexus.weights import load_generator
from support import processes
from support.corpus import bad_images, pattern
from support.training import BAD, final_state, image_files, tiny, train

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quick_train_controller(monkeypatch):
    """Ray Train's controller polls its workers every 2 s by default; every run ends up to a poll later."""
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    for relative, data in image_files().items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    return folder


def artifact_names(client: MlflowClient, run_id: str, path: str) -> list[str]:
    return sorted(Path(entry.path).name for entry in client.list_artifacts(run_id, path))


@pytest.mark.parametrize(("task", "val_metric"), [("enhance", "val_psnr_y"), ("colorize", "val_psnr_rgb")])
def test_training_logs_metrics_samples_checkpoints_and_registers_a_model(
    task, val_metric, tmp_path, images, mlflow_store, ray_cluster, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = tiny(task, **{"train.checkpoint_every": 5})
    result = train(tmp_path, config, images, mlflow_store)

    client = MlflowClient(mlflow_store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["task"] == task and run.data.params["train.max_steps"] == "20"
    assert [m.step for m in client.get_metric_history(result.run_id, "g_loss")] == [5, 10, 15, 20]
    for name in ("d_loss", "lr_g", "lr_d", "images_per_s", "data_wait_fraction"):
        assert name in run.data.metrics
    assert run.data.metrics["skipped_images"] == len(BAD)  # counted once, not once per epoch
    assert sorted(Path(p).name for p in result.skipped) == sorted(
        f"{name}{bad_images()[name].extension}" for name in BAD
    )
    assert [m.step for m in client.get_metric_history(result.run_id, val_metric)] == [10, 20]
    assert artifact_names(client, result.run_id, "samples") == ["step-0000010.png", "step-0000020.png"]
    logged = artifact_names(client, result.run_id, "checkpoints")
    assert logged == [f"step-{s:07d}" for s in (5, 10, 15, 20)]
    assert STATE_FILE in artifact_names(client, result.run_id, "checkpoints/step-0000020")
    # Ray Train keeps the last K (= 2) checkpoints in its storage.
    kept = sorted(p.name for p in Path(result.checkpoint).parent.glob("step-*"))
    assert kept == ["step-0000015", "step-0000020"]

    version = client.get_model_version(f"pixelplexus-{task}", result.model_version)
    assert version.run_id == result.run_id and float(version.tags[val_metric]) == pytest.approx(
        result.metrics[val_metric]
    )
    generator, info = load_generator(result.model_uri, task=task)  # models:/pixelplexus-<task>/<n>
    assert info.run_id == result.run_id and info.extra.get("ema") is True
    image = ImageRecord(pattern(24, 32, seed=99))
    output = get_task(config).predict(generator, [image])[0]
    assert output.pixels.shape[:2] == ((48, 64) if task == "enhance" else (24, 32))


def test_generate_trains_from_an_s3_prefix(s3_bucket, tmp_path, mlflow_store, ray_cluster, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s3 = boto3.client("s3")
    for relative, data in image_files(with_bad=False).items():
        s3.put_object(Bucket=s3_bucket, Key=f"photos/{relative}", Body=data)
    s3.put_object(Bucket=s3_bucket, Key="elsewhere/ignored.png", Body=b"not under the prefix")
    result = train(tmp_path, tiny("generate"), f"s3://{s3_bucket}/photos", mlflow_store)

    client = MlflowClient(mlflow_store)
    assert client.get_run(result.run_id).data.metrics["skipped_images"] == 0
    swd = client.get_metric_history(result.run_id, "val_swd_mean")
    assert [m.step for m in swd] == [10, 20] and all(np.isfinite(m.value) for m in swd)
    generator, _ = load_generator(result.model_uri, task="generate")
    images = get_task(tiny("generate")).predict(generator, [1, 2])
    assert images[0].pixels.shape == (16, 16, 3) and not np.array_equal(images[0].pixels, images[1].pixels)


@pytest.mark.parametrize("high_order", [None, {}], ids=["bicubic", "high-order"])
def test_resume_is_exact(tmp_path, images, mlflow_store, ray_cluster, monkeypatch, high_order):
    """8 steps straight equal 4 steps, then a resume from the step-4 checkpoint in MLflow, then 4 more; also
    with Real-ESRGAN's degradations made on each worker's device from its (seed, rank, step) generator."""
    monkeypatch.chdir(tmp_path)
    config = tiny(
        "enhance",
        generator_only_steps=2,  # 48 images / 2 workers / batch 4 → 6 batches an epoch: the resume is mid-epoch
        **{"train.max_steps": 8, "train.checkpoint_every": 4, "train.log_every": 4, "train.eval_every": 4},
        **{"enhance.high_order": high_order},
    )
    straight = train(tmp_path / "a", config, images, mlflow_store)
    halfway = f"runs:/{straight.run_id}/checkpoints/step-0000004"
    # the job's tracking URI alone tells the workers where runs:/ is
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    resumed = train(tmp_path / "b", config, images, mlflow_store, resume=halfway)

    a, b = final_state(straight), final_state(resumed)
    assert a["position"] == b["position"] == {"step": 8, "epoch": 1, "batch_in_epoch": 2}
    for part in ("generator", "discriminator", "ema"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name} differs after resume"
    for part in ("opt_g", "opt_d"):
        for index, state in a[part]["state"].items():
            assert torch.equal(state["exp_avg"], b[part]["state"][index]["exp_avg"])
    history = MlflowClient(mlflow_store).get_metric_history(resumed.run_id, "g_loss")
    assert [m.step for m in history] == [8]  # the resumed run starts logging where the checkpoint was


def test_training_against_a_remote_mlflow_server_with_artifacts_on_s3(
    s3_bucket, tmp_path, images, ray_cluster, monkeypatch, free_port
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", os.environ["AWS_ENDPOINT_URL"])
    previous, port = mlflow.get_tracking_uri(), free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            f"s3://{s3_bucket}/mlflow",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        processes.wait_for_port(port, server, "mlflow server")
        uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)  # for models:/ lookups in this process
        result = train(tmp_path, tiny("enhance", **{"train.max_steps": 10}), images, uri, experiment="remote")
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
        assert any(k.endswith("/model/generator.safetensors") for k in keys)
        assert any("/checkpoints/step-0000010/state.pt" in k for k in keys)
        assert any(k.endswith("samples/step-0000010.png") for k in keys)
        _generator, info = load_generator(result.model_uri, task="enhance")  # over HTTP, from S3
        assert (
            info.run_id == result.run_id
            and MlflowClient(uri).get_run(result.run_id).info.status == "FINISHED"
        )
    finally:
        mlflow.set_tracking_uri(previous)
        server.terminate()
        server.wait(timeout=20)


def test_a_ray_job_submitted_to_a_cluster_trains_and_succeeds(tmp_path, images, ray_head):
    from ray.job_submission import JobStatus, JobSubmissionClient

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_AUTH_MODE"] = "disabled"  # loopback only; test_ray_auth.py tries Ray's token authentication
    client = JobSubmissionClient(ray_head(env, "--num-cpus=4"))
    entrypoint = (
        f"{sys.executable} jobs/train.py enhance --data {images} --config platform/pixelplexus/configs/enhance-tiny.yaml "
        f"--workers 2 --max-steps 6 --tracking-uri sqlite:///{tmp_path / 'mlflow.db'} "
        f"--storage {tmp_path / 'ray'}"
    )
    job_id = _submit(client, entrypoint)
    deadline = time.monotonic() + 240
    while not (status := client.get_job_status(job_id)).is_terminal():
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(1)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "registered models:/pixelplexus-enhance/1" in logs and "step 6/6" in logs


def _submit(client, entrypoint: str) -> str:
    deadline = time.monotonic() + 60
    while True:  # the dashboard's job agent comes up a moment after its port opens
        try:
            return client.submit_job(
                entrypoint=entrypoint,
                runtime_env={
                    "working_dir": str(REPO),
                    "excludes": [".venv", ".git", "mlruns", "ray_results", "demo-output", "*.db"],
                },
            )
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_too_few_images_fail_before_training_with_exit_2(tmp_path, mlflow_store, ray_cluster, capsys):
    from pixelplexus.cli import main as cli_main

    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(pattern(40, 40, seed=i)).save(folder / f"{i}.png")
    argv = ["train", "enhance", "--data", str(folder), "--config", str(shipped_config_path("enhance-tiny"))]
    argv += ["--workers", "2", "--tracking-uri", mlflow_store, "--experiment", "tests"]
    assert cli_main([*argv, "--storage", str(tmp_path / "ray")]) == 2
    assert "3 usable image(s), but 2 worker(s) × batch size 4 need at least 8" in capsys.readouterr().err
    client = MlflowClient(mlflow_store)
    [run] = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.status == "FAILED"


def test_the_console_shows_our_progress_lines_and_not_rays_bookkeeping(
    tmp_path, images, mlflow_store, ray_cluster, capfd
):
    """``pixelplexus train``'s console: our progress lines and results; Ray Train's placement-group cleaner
    warning every second (it needs the State API, which a local instance without a dashboard lacks), its
    worker-group announcements and Ray Data's plans stay in Ray's log files."""
    from pixelplexus.cli import main as cli_main

    argv = ["train", "enhance", "--data", str(images), "--config", str(shipped_config_path("enhance-tiny"))]
    argv += ["--max-steps", "8", "--set", "train.log_every=4", "--tracking-uri", mlflow_store]
    assert cli_main([*argv, "--experiment", "tests", "--storage", str(tmp_path / "ray")]) == 0
    console = ""
    deadline = time.monotonic() + 30  # worker output reaches the driver a moment after it is printed
    while "[enhance] done: 8 steps" not in console and time.monotonic() < deadline:
        time.sleep(0.5)
        captured = capfd.readouterr()
        console += captured.out + captured.err
    time.sleep(3)  # and the cleaner goes on warning after the run: some seconds more of it
    captured = capfd.readouterr()
    console += captured.out + captured.err

    for line in ("[enhance] starting: 1 worker(s)", "[enhance] step 4/8 |", "[enhance] step 8/8 |"):
        assert line in console
    assert "[enhance] done: 8 steps" in console and "model: models:/pixelplexus-enhance/" in console
    bookkeeping = ("Started training worker group", "Moving model to device", "Reporting training result")
    for line in (*bookkeeping, "Failed to query Ray Train Controller", "Execution plan of Dataset"):
        assert line not in console
    session = Path(ray_cluster._private.worker._global_node.get_session_dir_path())
    logged = "".join(path.read_text(errors="replace") for path in (session / "logs").glob("worker-*"))
    for line in bookkeeping:
        assert line in logged, "Ray's log files keep what the console leaves out"


def test_the_training_dataset_composites_alpha_over_the_configs_background(tmp_path, ray_cluster):
    """What the workers train on: ``generate.background`` reaches the Ray Dataset's decoding tasks."""
    from pixelplexus.training.data import SkippedImages
    from pixelplexus.training.trainer import build_trainer

    folder = tmp_path / "emoji"
    folder.mkdir()
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 1] = 255  # stored under the transparent pixels: green
    rgba[4:12, 4:12] = (200, 30, 60, 255)
    for i in range(8):
        Image.fromarray(rgba, "RGBA").save(folder / f"{i}.png")
    skipped = SkippedImages.remote()
    for background, outside in (("#204080", (32, 64, 128)), (None, (0, 255, 0))):
        config = tiny("generate", **{"generate.background": background})
        job = TrainJob(config=config, data=str(folder), workers=1, storage=str(tmp_path / "ray"))
        trainer = build_trainer(job, "0" * 32, "sqlite:///unused.db", None, skipped)
        images = [row["image"] for row in trainer.datasets["train"].take_all()]
        assert len(images) == 8
        for image in images:
            assert (image[4:12, 4:12] == (200, 30, 60)).all() and (image[:4] == outside).all()
