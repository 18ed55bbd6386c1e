"""The training loop's parts without Ray: configs and flags, schedules, EMA, checkpoints, degradations."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelplexus.cli import main as cli_main
from pixelplexus.config import (
    ConfigError,
    DegradationConfig,
    ScheduleConfig,
    load_config,
    shipped_config,
    shipped_config_path,
)
from pixelplexus.tasks import get_task
from pixelplexus.training.command import add_arguments, build_config
from pixelplexus.training.data import read_images
from pixelplexus.training.state import EMA, RunState, checkpoint_config, lr_factor, seed_worker
from pixelplexus.training.step import Amp, build_networks, train_step
from pixelplexus.training.tracking import flatten
from pixelplexus.transforms import archive_copy, degrade
from pixelplexus.weights import load_generator
from support.corpus import pattern
from support.training import ConvDtypes

CONFIGS = Path(__file__).resolve().parents[1] / "jobs" / "configs"
TINY_CONFIGS = [shipped_config_path(f"{task}-tiny") for task in ("enhance", "colorize", "generate")]


def parse(*argv: str) -> argparse.Namespace:
    return add_arguments(argparse.ArgumentParser()).parse_args(argv)


@pytest.mark.parametrize(
    "path",
    [*sorted(CONFIGS.glob("**/*.yaml")), *TINY_CONFIGS],
    ids=lambda p: str(p.relative_to(p.parents[1])),
)
def test_every_job_config_builds_its_task(path):
    config = load_config(path)
    assert path.name.startswith(config.task)
    task = get_task(config)
    assert task.build_generator() is not None


def test_flags_override_the_config_file():
    args = parse(
        "enhance",
        "--data",
        "x",
        "--config",
        str(shipped_config_path("enhance-tiny")),
        "--max-steps",
        "7",
        "--set",
        "train.log_every=3",
        "--set",
        "losses.adversarial_weight=0.5",
        "--set",
        "optim.betas=[0.5, 0.9]",
    )
    config = build_config(args)
    assert config.train.max_steps == 7 and config.train.log_every == 3
    assert config.losses.adversarial_weight == 0.5 and config.optim.betas == (0.5, 0.9)
    assert build_config(parse("colorize", "--data", "x")).generator.args["num_downs"] == 8  # built-in default
    by_name = build_config(
        parse("enhance", "--data", "x", "--config", "enhance-tiny")
    )  # a shipped config's name
    assert by_name == build_config(
        parse("enhance", "--data", "x", "--config", str(shipped_config_path("enhance-tiny")))
    )
    with pytest.raises(ConfigError, match="config file not found: enhance-huge"):
        build_config(parse("enhance", "--data", "x", "--config", "enhance-huge"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["enhance", "--config", str(shipped_config_path("colorize-tiny"))], "is for 'colorize'"),
        (["enhance", "--set", "train.nope=1"], "nope"),
        (["enhance", "--set", "novalue"], "KEY=VALUE"),
        (["enhance", "--config", "missing.yaml"], "not found"),
    ],
)
def test_bad_configs_exit_2_with_the_reason(argv, message, capsys):
    assert cli_main(["train", *argv, "--data", "x"]) == 2
    assert message in capsys.readouterr().err


def test_learning_rate_schedules():
    cosine = lr_factor(ScheduleConfig(kind="cosine", warmup_steps=10, min_ratio=0.1), max_steps=110)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(60) == pytest.approx(0.55) and cosine(110) == pytest.approx(0.1)
    step = lr_factor(ScheduleConfig(kind="step", milestones=[5, 8], gamma=0.5), max_steps=10)
    assert [step(s) for s in (0, 4, 5, 8, 9)] == [1, 1, 0.5, 0.25, 0.25]
    assert lr_factor(ScheduleConfig(), 10)(7) == 1.0


def test_ema_follows_the_generator_before_its_start_then_averages():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.9, start=2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=1)
    assert torch.equal(ema.module.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update(model, step=2)
    assert torch.allclose(ema.module.weight, torch.full((2, 2), 1.1))


def test_amp_is_fp32_on_cpu_by_default_refuses_fp16_there_and_trains_bf16_when_asked(tiny_config):
    cpu = torch.device("cpu")
    assert Amp.create("auto", cpu).name == Amp.create("fp32", cpu).name == "fp32"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Amp.create("fp16", cpu)
    amp = Amp.create("bf16", cpu)
    assert amp.name == "bf16" and amp.scaler is None
    for name in ("enhance", "colorize"):  # a GAN step on both networks, the convolutions in bfloat16
        task = get_task(tiny_config(name))
        nets = build_networks(task)
        dtypes = ConvDtypes(nets.generator)
        before = [p.detach().clone() for p in nets.generator.parameters()]
        samples = [task.training_sample(pattern(48, 48, seed=3), np.random.default_rng(i)) for i in range(4)]
        logs = train_step(task, nets, task.collate(samples), step=0, amp=amp)
        assert set(dtypes.seen) == {torch.bfloat16}
        assert {"d_loss", "g_loss"} <= set(logs) and all(np.isfinite(v) for v in logs.values())
        after = list(nets.generator.parameters())
        assert all(p.dtype == torch.float32 for p in after)  # fp32 weights, bf16 arithmetic
        assert any(not torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("high_order", [None, {}], ids=["bicubic", "high-order"])
def test_checkpoint_restore_continues_exactly(tmp_path, tiny_config, high_order):
    """Train 4 steps; or train 2, save, restore into fresh networks and train 2 more: same weights (also with
    the LR made on the device by Real-ESRGAN's degradations, from the step's generator)."""
    config = shipped_config("enhance-tiny").override(
        generator_only_steps=1, **{"enhance.high_order": high_order}
    )
    images = [pattern(40, 48, seed=i) for i in range(4)]

    def fresh() -> RunState:
        torch.manual_seed(0)
        task = get_task(config)
        return RunState(task, build_networks(task), Amp(), np.random.default_rng(0))

    def steps(state: RunState, count: int) -> None:
        for _ in range(count):
            samples = [state.task.training_sample(image, state.rng) for image in images]
            state.train_on(state.task.collate(samples), "cpu")  # device_batch, train_step, EMA, schedules

    straight = fresh()
    steps(straight, 4)
    first = fresh()
    steps(first, 2)
    folder = first.save(tmp_path / "ckpt", [first.rng_state()], run_id="r1")
    torch.manual_seed(123)  # the restore must bring back the RNG states, whatever they are now
    resumed = fresh()
    resumed.restore(folder, rank=0)
    steps(resumed, 2)

    for a, b in zip(
        straight.nets.generator.state_dict().values(), resumed.nets.generator.state_dict().values()
    ):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.learning_rates() == resumed.learning_rates()
    assert checkpoint_config(folder) == config
    _, info = load_generator(folder / "ema.safetensors", task="enhance")
    assert info.run_id == "r1" and info.extra == {"step": 2, "ema": True}


def test_degradations_make_archive_like_lr_images():
    hr = pattern(64, 64, seed=1)
    rng = np.random.default_rng(0)
    plain = degrade(hr, 4, DegradationConfig(), rng)
    assert plain.shape == (16, 16, 3) and plain.dtype == np.uint8
    every = DegradationConfig(blur_prob=1, noise_prob=1, jpeg_prob=1, jpeg_quality=(10, 10))
    degraded = degrade(hr, 4, every, rng)
    assert degraded.shape == (16, 16, 3) and np.abs(degraded.astype(int) - plain).mean() > 2
    task = get_task(shipped_config("enhance-tiny").override(**{"enhance.degradation.noise_prob": 1.0}))
    sample = task.training_sample(hr, rng)
    assert sample["lr"].shape == (3, 16, 16) and sample["hr"].shape == (3, 32, 32)


def test_archive_copies_are_fixed_per_seed_and_damaged():
    hr = pattern(96, 128, seed=2)
    copy = archive_copy(hr, 4, seed=0)
    assert copy.shape == (24, 32, 3) and copy.dtype == np.uint8
    assert np.array_equal(copy, archive_copy(hr, 4, seed=0))
    assert not np.array_equal(copy, archive_copy(hr, 4, seed=1))  # strengths drawn per image index
    plain = degrade(hr, 4, DegradationConfig(), np.random.default_rng(0))
    assert np.abs(copy.astype(int) - plain).mean() > 2


def rgba_files(folder: Path) -> Path:
    """An emoji-like RGBA PNG (transparent left half that stores red, opaque right half) and an RGB JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # what the file stores under transparent pixels: red
    rgba[:, 8:] = (0, 90, 200, 255)
    Image.fromarray(rgba, "RGBA").save(folder / "a.png")
    Image.fromarray(pattern(16, 16, seed=3)).save(folder / "b.jpg", quality=95)
    return folder


def test_training_images_composite_alpha_over_the_configs_background(tmp_path):
    folder = rgba_files(tmp_path / "images")
    (emoji, photo), _ = read_images(str(folder), 10, background=(255, 255, 255))
    (emoji_dropped, photo_dropped), _ = read_images(str(folder), 10)
    assert emoji.shape == (16, 16, 3) and (emoji[:, :8] == 255).all()  # over white
    assert (emoji_dropped[:, :8] == (255, 0, 0)).all()  # alpha dropped: the stored colour
    assert (emoji[:, 8:] == (0, 90, 200)).all() and (emoji_dropped[:, 8:] == (0, 90, 200)).all()
    np.testing.assert_array_equal(photo, photo_dropped)  # no alpha, nothing to do
    config = load_config(CONFIGS / "bundled" / "generate.yaml")
    (emoji_config, _), _ = read_images(str(folder), 10, background=config.image_background)
    np.testing.assert_array_equal(emoji_config, emoji)


def test_params_are_flattened_for_mlflow():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": "1", "a.c.d": "[1, 2]", "e": "{}"}


def test_a_missing_degradation_key_is_a_config_error():
    with pytest.raises(ConfigError, match="blur"):
        shipped_config("enhance-tiny").override(**{"enhance.degradation.blur": 1})


def test_resume_by_run_id_finds_the_latest_checkpoint(tmp_path, mlflow_store):
    from mlflow import MlflowClient

    from pixelplexus.training.trainer import resolve_resume

    client = MlflowClient(mlflow_store)
    run_id = client.create_run(client.get_experiment_by_name("tests").experiment_id).info.run_id
    assert resolve_resume(None, mlflow_store) == (None, None)
    with pytest.raises(ValueError, match="no checkpoints"):
        resolve_resume(run_id, mlflow_store)
    for step in (4, 12, 8):
        folder = tmp_path / f"step-{step:07d}"
        folder.mkdir()
        (folder / "state.pt").write_bytes(b"x")
        client.log_artifacts(run_id, str(folder), f"checkpoints/{folder.name}")
    assert resolve_resume(run_id, mlflow_store) == (f"runs:/{run_id}/checkpoints/step-0000012", run_id)
    assert resolve_resume(str(tmp_path / "step-0000004"), mlflow_store) == (
        str(tmp_path / "step-0000004"),
        None,
    )


def test_ray_bookkeeping_lines_are_kept_off_the_console_and_ours_are_not():
    from pixelplexus.training.console import keep_lines

    cleaner = {"actor_name": "PlacementGroupCleaner", "pid": 7, "is_err": True}
    warning = "Failed to query Ray Train Controller actor state. State API may be temporarily unavailable."
    assert keep_lines({**cleaner, "lines": [warning, warning]}) is None
    assert keep_lines({**cleaner, "lines": [warning, "Traceback: it broke"]})["lines"] == [
        "Traceback: it broke"
    ]
    worker = {"actor_name": "RayTrainWorker", "pid": 8, "is_err": False}
    ours = "[enhance] step 4/8 | g_loss 0.2 | 3.0 img/s (data wait 9%) | ETA 0:00:01"
    batch = {**worker, "lines": ["Moving model to device: cpu", ours, "Reporting training result 1: ..."]}
    assert keep_lines(batch)["lines"] == [ours]
    task = {"task_name": "ReadBinary", "pid": 9, "is_err": True, "lines": ["Moving model to device: cpu"]}
    assert keep_lines(task) == task  # only Ray's own actors' lines are filtered


def test_train_on_device_trains_the_config_without_ray_to_its_step_budget(tmp_path):
    """bench/train_on_device.py (the lent GPU's trainer, no Ray or MLflow there) on the CPU: ``--write-start``
    writes the generator a Ray run of the config starts from; from it the script trains colorize-tiny to its
    step cap (probe and re-time inside the cap), writes the EMA generator halfway and at the end as loadable
    weights files, and its weights moved away from the start."""
    import subprocess
    import sys

    data = tmp_path / "photos"
    data.mkdir()
    for index in range(6):
        Image.fromarray(pattern(48, 56, seed=index)).save(data / f"p{index}.png")
    script = Path(__file__).resolve().parents[1] / "bench" / "train_on_device.py"
    tiny = str(shipped_config_path("colorize-tiny"))
    wrote = subprocess.run(
        [sys.executable, str(script), "--config", tiny, "--write-start", str(tmp_path / "start.safetensors")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr[-2000:]
    start, _ = load_generator(tmp_path / "start.safetensors", task="colorize")
    seed_worker(shipped_config("colorize-tiny").train.seed, 0)  # as a Ray run's rank 0 starts
    fresh = build_networks(get_task(shipped_config("colorize-tiny"))).generator
    for a, b in zip(start.state_dict().values(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b.half().float() if b.is_floating_point() else b)
    out = tmp_path / "out" / "tiny.safetensors"
    result = subprocess.run(
        [sys.executable, str(script), "--config", tiny,
         "--data", str(data), "--out", str(out), "--minutes", "2", "--max-steps", "24", "--probe-steps", "6",
         "--recheck-after", "6", "--workers", "1", "--log-every", "8",
         "--init-generator", str(tmp_path / "start.safetensors"), "--set", "batch_size=2"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "6 images, 2/batch" in result.stdout and "training 24 steps" in result.stdout
    trained, info = load_generator(out, task="colorize")
    _, half_info = load_generator(out.with_name("tiny-half.safetensors"), task="colorize")
    assert (info.extra["step"], info.extra["ema"], half_info.extra["step"]) == (24, True, 12)
    moved = [
        (a.float() - b.float()).abs().max().item()
        for a, b in zip(trained.state_dict().values(), start.state_dict().values())
        if a.is_floating_point()
    ]
    assert max(moved) > 1e-3
    with torch.no_grad():
        assert torch.isfinite(trained(torch.rand(1, 1, 32, 32))).all()
