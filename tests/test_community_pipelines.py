"""Imported community weights are first-class models: a Real-ESRGAN ncnn model, imported, runs through the Ray
Data batch pipeline from S3 to S3 with tiles, and gives what the same model gives in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest

from pixelplexus.batch.manifest import read_manifest
from pixelplexus.community.importer import import_weights
from pixelplexus.io.images import ImageRecord, decode_image, encode_image
from pixelplexus.references import resolve_model
from pixelplexus.tasks import inference_task
from support.corpus import pattern
from support.weights import ncnn_wheel_models

pytestmark = pytest.mark.slow
PIXELPLEXUS = str(Path(sys.executable).with_name("pixelplexus"))


@pytest.fixture(scope="module")
def imported_x2(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("imported") / "realesr-animevideov3-x2.safetensors"
    import_weights(ncnn_wheel_models() / "realesr-animevideov3-x2.param", path, license_text="BSD-3-Clause")
    return str(path)


def test_an_imported_model_runs_the_s3_batch_pipeline_with_tiles(ray_cluster, s3_bucket, imported_x2):
    s3 = boto3.client("s3")
    images = {"scan/big.png": pattern(100, 90, seed=1), "scan/small.png": pattern(24, 20, seed=2)}
    for key, pixels in images.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=encode_image(ImageRecord(pixels=pixels), "PNG"))
    s3.put_object(Bucket=s3_bucket, Key="scan/broken.png", Body=b"\x89PNG\r\n\x1a\n not really")
    tiles = ["--tile", "48", "--tile-overlap", "24"]  # the big scan is cut into several tiles
    env = dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address)
    command = [
        PIXELPLEXUS,
        "enhance",
        f"s3://{s3_bucket}/scan",
        f"s3://{s3_bucket}/x2",
        "--model",
        imported_x2,
    ]
    run = subprocess.run([*command, *tiles], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "3 inputs: 2 ok, 1 error" in run.stdout

    rows = {row["input_key"]: row for row in read_manifest(f"s3://{s3_bucket}/x2").to_pylist()}
    assert rows["broken.png"]["status"] == "error"
    model = resolve_model(imported_x2, "enhance")
    task, network = inference_task(model.info), model.load()
    for key, pixels in images.items():
        name = key.removeprefix("scan/")
        assert rows[name]["status"] == "ok", rows[name]["detail"]
        body = s3.get_object(Bucket=s3_bucket, Key=f"x2/{rows[name]['output_key']}")["Body"].read()
        got = decode_image(body).pixels.astype(int)
        want = task.predict(network, [ImageRecord(pixels=pixels)], {"tile": 48, "tile_overlap": 24})[0].pixels
        assert got.shape == (2 * pixels.shape[0], 2 * pixels.shape[1], 3)
        assert np.abs(got - want.astype(int)).max() <= 1  # the actor runs what this process runs


def test_an_imported_anime_video_model_runs_on_a_video_with_tiles(ray_cluster, tmp_path, imported_x2):
    """Real-ESRGAN's anime video model on a clip: every frame, at its time, as the model gives it (within the
    encoder's loss), the sound copied."""
    from support.clips import audio_packets, frames_of, write_clip

    clip = write_clip(tmp_path / "episode.mkv", frames=24, size=(64, 48))
    env = dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address)
    command = [PIXELPLEXUS, "enhance", str(clip), str(tmp_path / "x2"), "--model", imported_x2]
    options = ["--tile", "32", "--tile-overlap", "8", "--precision", "fp32", "--segment-frames", "12"]
    run = subprocess.run([*command, *options], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "videos: 24 frames" in run.stdout
    model = resolve_model(imported_x2, "enhance")
    task, network = inference_task(model.info), model.load()
    frames, times = frames_of(clip)
    got, got_times = frames_of(tmp_path / "x2" / "episode.mkv")
    assert got_times == times and got.shape == (24, 96, 128, 3)
    want = task.predict(
        network, [ImageRecord(f) for f in frames], {"tile": 32, "tile_overlap": 8, "precision": "fp32"}
    )
    luma = np.array([0.299, 0.587, 0.114])  # (4:2:0 halves the chroma: compare the luma the codec keeps)
    got, want = got @ luma, np.stack([w.pixels for w in want]) @ luma
    error = np.abs(got - want).mean(axis=(1, 2))
    assert error.mean() < 3  # crf 18 on a busy synthetic pattern: ~1.5 levels
    assert (
        error < np.abs(got[1:] - want[:-1]).mean(axis=(1, 2)).min()
    ).all()  # each frame nearer its own model output than the previous frame's
    assert audio_packets(tmp_path / "x2" / "episode.mkv") == audio_packets(clip)
