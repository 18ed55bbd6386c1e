"""Training enhance on prepared pairs (``enhance.pairs``): aligned crops, the hr/ + lr/ reader (local and S3,
with bad partners recorded), and pairs distilled from a teacher model (:mod:`pixelplexus.distillation`)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from pixelplexus.config import ConfigError, shipped_config
from pixelplexus.distillation import blend_frequencies, prepare_pairs
from pixelplexus.io.images import ImageRecord, decode_image, encode_image
from pixelplexus.tasks import get_task
from pixelplexus.training.data import decode_pair
from pixelplexus.training.trainer import TrainJob, run_training
from pixelplexus.transforms import random_crop_pair, random_flip, random_flips, resize
from pixelplexus.weights import save_generator
from support.corpus import pattern


def png(pixels: np.ndarray) -> bytes:
    return encode_image(ImageRecord(pixels), "png")


def pairs_config(**changes):
    return shipped_config("enhance-tiny").override(**{"enhance.pairs": True, **changes})


def test_aligned_crops_and_flips_keep_the_pair_in_register():
    hr = pattern(96, 80, seed=3)
    lr = resize(hr, (40, 48), "box")  # ÷2: every LR pixel is the mean of its 2×2 HR block
    rng = np.random.default_rng(0)
    for _ in range(20):
        hr_crop, lr_crop = random_crop_pair(hr, lr, 32, 2, rng)
        hr_crop, lr_crop = random_flips([hr_crop, lr_crop], rng, rotate=True)
        assert hr_crop.shape == (32, 32, 3) and lr_crop.shape == (16, 16, 3)
        np.testing.assert_allclose(resize(hr_crop, (16, 16), "box"), lr_crop, atol=1)
    # one image: the same draws as before (exact resumes of runs that predate pairs)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert np.array_equal(random_flip(hr, a, rotate=True), random_flips([hr], b, rotate=True)[0])
    assert a.random() == b.random()


def test_a_pair_of_the_wrong_sizes_is_refused_with_the_reason():
    hr, rng = pattern(64, 64), np.random.default_rng(0)
    with pytest.raises(ValueError, match="the LR must be the HR ÷ 2"):
        random_crop_pair(hr, pattern(20, 32), 32, 2, rng)
    with pytest.raises(ValueError, match="smaller than the 16² crop"):
        random_crop_pair(pattern(24, 24), pattern(12, 12), 32, 2, rng)


def test_the_task_trains_on_the_partner_not_on_a_bicubic_copy():
    task = get_task(pairs_config())
    hr = pattern(64, 64, seed=1)
    lr = 255 - resize(hr, (32, 32))  # a partner no downscaling would make
    sample = task.training_sample(hr, np.random.default_rng(0), lr=lr)
    made = task.training_sample(hr, np.random.default_rng(0))
    assert sample["lr"].shape == made["lr"].shape == (3, 16, 16)
    assert np.corrcoef(sample["lr"].ravel(), made["lr"].ravel())[0, 1] < -0.5


def test_pairs_and_a_degradation_are_refused_together():
    with pytest.raises(ConfigError, match=r"remove enhance\.degradation and enhance\.high_order"):
        pairs_config(**{"enhance.degradation.jpeg_prob": 0.5})


class Recorder:
    """What the training job's skipped-images actor receives (``skipped.add.remote(path, reason)``)."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}
        self.add = self
        self.remote = self.reasons.__setitem__


def test_the_reader_pairs_by_name_and_records_bad_partners(tmp_path):
    root = tmp_path / "pairs"
    hr = pattern(32, 32, seed=2)
    files = {
        "hr/a/good.png": png(hr),
        "lr/a/good.png": png(resize(hr, (16, 16))),
        "hr/orphan.png": png(hr),
        "hr/wrong.png": png(hr),
        "lr/wrong.png": png(pattern(10, 16)),
        "hr/broken.png": png(hr),
        "lr/broken.png": b"not an image",
        "hr/small.png": png(pattern(24, 40)),
        "lr/small.png": png(pattern(12, 20)),
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    recorder, rows = Recorder(), []
    for name in ("a/good.png", "orphan.png", "wrong.png", "broken.png", "small.png"):
        path = str(root / "hr" / name)
        rows += decode_pair(
            {"path": path, "bytes": files[f"hr/{name}"]},
            str(root / "hr"),
            str(root / "lr"),
            2,
            recorder,
            crop=32,
        )
    assert [row["path"] for row in rows] == [str(root / "hr/a/good.png")]
    assert rows[0]["lr"].shape == (16, 16, 3) and rows[0]["image"].shape == (32, 32, 3)
    reasons = recorder.reasons
    assert reasons[str(root / "hr/orphan.png")] == "no readable file of the same name under lr/"
    assert reasons[str(root / "hr/wrong.png")] == "lr/ image is not the hr/ image ÷ 2"
    assert reasons[str(root / "hr/small.png")] == "smaller than the 32² training crop"
    assert (
        str(root / "hr/broken.png") in reasons and "not an image" not in reasons[str(root / "hr/broken.png")]
    )


def test_the_blend_takes_low_frequencies_from_the_original_and_high_ones_from_the_teacher():
    original = pattern(64, 64, seed=4)
    teacher = np.clip(
        original.astype(int) + np.random.default_rng(0).integers(-40, 41, original.shape), 0, 255
    )
    teacher = teacher.astype(np.uint8)
    teacher = np.roll(teacher, 2, axis=1)  # its shapes sit 2 px off: the blend must not follow them
    target = blend_frequencies(original, teacher, 1.5).astype(np.float32)
    low = lambda x: gaussian_filter(np.asarray(x, np.float32), (3, 3, 0))  # noqa: E731
    assert np.abs(low(target) - low(original)).mean() < 0.3 * np.abs(low(teacher) - low(original)).mean()
    high = lambda x: np.asarray(x, np.float32) - gaussian_filter(np.asarray(x, np.float32), (1.5, 1.5, 0))  # noqa: E731
    assert np.corrcoef(high(target).ravel(), high(teacher).ravel())[0, 1] > 0.9


def test_distilled_pairs_are_written_under_out_with_their_recipe(tmp_path):
    torch.manual_seed(0)
    teacher_task = get_task(shipped_config("enhance-tiny"))  # ×2
    network = teacher_task.build_generator()
    teacher = save_generator(tmp_path / "teacher.safetensors", network, teacher_task.weights_info(network))
    images = [("one", pattern(40, 36, seed=5)), ("two", pattern(33, 50, seed=6)), ("tiny", pattern(10, 10))]

    def degrade(hr, seed):
        noise = np.random.default_rng(seed).normal(0, 8, (hr.shape[0] // 2, hr.shape[1] // 2, 3))
        return np.clip(resize(hr, (hr.shape[1] // 2, hr.shape[0] // 2)) + noise, 0, 255).astype(np.uint8)

    out = tmp_path / "pairs"
    report = prepare_pairs(
        images, str(out), str(teacher), degrade, scale=2, copies=2, progress=lambda _: None
    )
    assert report.written == 4 and list(report.skipped) == ["tiny"]
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert names == sorted(
        f"{d}/{n}-{k}.png" for d in ("hr", "lr", "teacher") for n in ("one", "two") for k in (0, 1)
    )
    lr = decode_image((out / "lr/two-1.png").read_bytes()).pixels
    target = decode_image((out / "hr/two-1.png").read_bytes()).pixels
    assert lr.shape == (16, 25, 3) and target.shape == (32, 50, 3)
    assert not np.array_equal(lr, decode_image((out / "lr/two-0.png").read_bytes()).pixels)  # own damage
    recipe = json.loads((out / "pairs.json").read_text())
    assert recipe["pairs"] == 4 and recipe["sigma"] == 1.5 and len(recipe["teacher_sha256"]) == 64
    with pytest.raises(ValueError, match="upscales ×2, not ×4"):
        prepare_pairs(images, str(tmp_path / "x4"), str(teacher), degrade, scale=4)
    assert not (tmp_path / "x4").exists()


@pytest.mark.slow
def test_training_on_pairs_from_s3_skips_bad_partners(
    s3_bucket, tmp_path, mlflow_store, ray_cluster, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    s3 = boto3.client("s3")
    for i in range(12):
        hr = pattern(48, 40, seed=i)
        s3.put_object(Bucket=s3_bucket, Key=f"pairs/hr/set/{i:02d}.png", Body=png(hr))
        if i != 0:  # 00 has no partner
            lr = resize(hr, (20, 24)) if i != 1 else pattern(10, 10)  # 01's partner has the wrong size
            s3.put_object(Bucket=s3_bucket, Key=f"pairs/lr/set/{i:02d}.png", Body=png(lr))
    job = TrainJob(
        config=pairs_config(**{"train.max_steps": 6, "train.eval_every": 6, "train.checkpoint_every": 6}),
        data=f"s3://{s3_bucket}/pairs",
        workers=1,
        tracking_uri=mlflow_store,
        experiment="tests",
        storage=str(tmp_path / "ray"),
    )
    result = run_training(job)
    assert sorted(Path(path).name for path in result.skipped) == ["00.png", "01.png"]
    assert sorted(result.skipped.values()) == [
        "lr/ image is not the hr/ image ÷ 2",
        "no readable file of the same name under lr/",
    ]
    assert np.isfinite(result.metrics["val_psnr_y"])
