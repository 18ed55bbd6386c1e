"""The `pixelplexus` command, driven the way the README drives it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pixelplexus import __version__
from pixelplexus.config import parse_config, shipped_config
from pixelplexus.io.images import read_image_file
from pixelplexus.metrics import psnr
from pixelplexus.references import bundled_models
from pixelplexus.tasks import get_task
from pixelplexus.visual import as_rgb8
from pixelplexus.weights import save_generator

PIXELPLEXUS = str(Path(sys.executable).with_name("pixelplexus"))


def run(*args, cwd=None):
    return subprocess.run(
        [PIXELPLEXUS, *args], capture_output=True, text=True, check=True, cwd=cwd, timeout=600
    )


def test_version_and_help():
    assert run("--version").stdout.strip() == f"pixelplexus {__version__}"
    help_text = run("--help").stdout
    for command in ("demo", "config", "archs"):
        assert command in help_text


def test_batch_flags_are_the_options_models_fields():
    """``--tile-overlap`` for ``tile_overlap``, defaults from the model (``--tile`` 512; 0: never tile), bools
    as switches; the options are parsed with the model."""
    from pixelplexus.cli import build_parser
    from pixelplexus.options import OPTIONS, parse_options

    parser = build_parser()
    enhance = parser.parse_args(["enhance", "in", "out"])
    assert (enhance.scale, enhance.tile, enhance.tile_overlap) == (None, 512, 32)
    tiled = parser.parse_args(["enhance", "in", "out", "--tile", "0", "--tile-overlap", "8", "--scale", "2"])
    options = parse_options(
        "enhance", {name: getattr(tiled, name) for name in OPTIONS["enhance"].model_fields}
    )
    assert (options.tile, options.tile_overlap, options.scale) == (None, 8, 2)
    colorize = parser.parse_args(["colorize", "in", "out", "--skip-color", "--render-size", "64"])
    assert (colorize.skip_color, colorize.render_size, colorize.strength) == (True, 64, 1.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["enhance", "in", "out", "--scale", "5"])  # the Literal's choices
    for task in ("enhance", "colorize"):  # every task's base option, with its choices
        assert parser.parse_args([task, "in", "out"]).precision == "auto"
        assert parser.parse_args([task, "in", "out", "--precision", "fp32"]).precision == "fp32"
    with pytest.raises(SystemExit):
        parser.parse_args(["enhance", "in", "out", "--precision", "fp16"])


def test_config_prints_a_loadable_default():
    for task in ("generate", "enhance", "colorize"):
        config = parse_config(yaml.safe_load(run("config", task).stdout))
        assert config.task == task


def test_archs_lists_the_registry():
    from pixelplexus.archs import ARCHS

    listed = [line.split()[0] for line in run("archs").stdout.splitlines()]
    assert listed == list(ARCHS)


def test_unknown_command_fails_with_usage():
    result = subprocess.run([PIXELPLEXUS, "paint"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr


REPO = Path(__file__).resolve().parents[1]
DEMO_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``pixelplexus demo --out tmp_path/out --size 128`` from an empty working folder, which must stay empty."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # Ray Train's controller polls every 0.5 s instead of 2 s: the run ends sooner after its last step.
    env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}
    env["MLFLOW_TRACKING_URI"] = (
        f"sqlite:///{cwd / 'mlflow.db'}"  # the user's store: the demo keeps out of it
    )
    result = subprocess.run(
        [PIXELPLEXUS, "demo", "--out", str(tmp_path / "out"), "--size", "128", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(cwd.iterdir()) == [], "the demo wrote outside its output folder"
    return result


def tiny_weights(folder: Path, scale: int) -> list[str]:
    """``--model TASK=FILE`` flags for untrained generators of the tiny configs (enhance at ``scale``)."""
    flags = []
    for task in ("enhance", "colorize", "generate"):
        config = shipped_config(f"{task}-tiny")
        if task == "enhance":
            config = config.override(**{"generator.args.upscale": scale, "crop_size": 16 * scale})
        generator = get_task(config).build_generator()
        path = save_generator(
            folder / f"{task}.safetensors", generator, get_task(config).weights_info(generator)
        )
        flags += ["--model", f"{task}={path}"]
    return flags


def check_demo_output(out: Path, stdout: str, scale: int) -> None:
    """What a demo run leaves behind: archive copies, batch outputs and manifests, grid, MLflow run, page."""
    from mlflow import MlflowClient

    from pixelplexus.batch.manifest import read_manifest

    page = (out / "index.html").read_text()
    for name in DEMO_PHOTOS:
        original = read_image_file(out / "originals" / f"{name}.png").pixels
        small = read_image_file(out / "archive" / "enhance" / f"{name}.jpg")
        gray = read_image_file(out / "archive" / "colorize" / f"{name}.jpg")
        assert small.format == gray.format == "JPEG" and gray.is_gray
        assert (small.width * scale, gray.width) == (original.shape[1], original.shape[1])
        enhanced = read_image_file(out / "enhanced" / f"{name}.png").pixels
        colorized = read_image_file(out / "colorized" / f"{name}.png").pixels
        assert enhanced.shape == colorized.shape == original.shape
        for value in (
            psnr(enhanced, original, crop_border=scale, y_channel=True),
            psnr(colorized, original),
            psnr(as_rgb8(gray.pixels), original),
        ):
            assert f"{value:.2f} dB" in page  # the page scores the files it shows
    for target in ("enhanced", "colorized"):
        manifest = read_manifest(str(out / target)).to_pylist()
        assert [(row["input_key"], row["status"]) for row in manifest] == [
            (f"{name}.jpg", "ok") for name in DEMO_PHOTOS
        ]
    for name in ("samples", "truncation", "interpolation"):
        assert read_image_file(out / "generated" / f"{name}.png").height > 2 * 16
        assert f'src="generated/{name}.png"' in page

    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("pixelplexus-demo")
    assert experiment.artifact_location == (out / "mlruns").as_uri()
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and "val_psnr_y" in run.data.metrics
    [version] = client.search_model_versions("name='pixelplexus-enhance'")
    assert version.run_id == run.info.run_id
    assert read_image_file(out / "training" / "samples.png").height > 0
    assert run.info.run_id in page and run.info.run_id in stdout
    assert f"mlflow ui --backend-store-uri {uri}" in stdout and str(out / "index.html") in stdout


@pytest.mark.slow
@pytest.mark.skipif(
    not {"enhance-x4", "colorize", "generate"} <= set(bundled_models()),
    reason="the bundled weights (enhance-x4, colorize, generate) are not installed yet",
)
def test_demo_runs_the_batch_jobs_generates_trains_and_writes_the_page_on_the_bundled_weights(tmp_path):
    result = run_demo(tmp_path, "--train-steps", "4")
    check_demo_output(tmp_path / "out", result.stdout, scale=4)
    for stage in ("batch enhance", "batch colorize", "generate", "training"):
        assert f"[demo] {stage}: " in result.stdout  # each stage is timed
    for name in ("enhance-x4-archive", "colorize", "generate"):  # the archive copies get the archive model
        assert f"<code>{name}</code>" in (tmp_path / "out" / "index.html").read_text()


def test_demo_refuses_a_bad_model_before_any_work(tmp_path):
    missing = tmp_path / "missing.safetensors"
    flags = tiny_weights(tmp_path, scale=2)[2:]  # colorize and generate
    result = subprocess.run(
        [PIXELPLEXUS, "demo", "--out", str(tmp_path / "out"), *flags, "--model", f"enhance={missing}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "pixelplexus demo: error:" in result.stderr and str(missing) in result.stderr
    assert not (tmp_path / "out").exists()
    result = subprocess.run(
        [PIXELPLEXUS, "demo", "--model", "paint=x.safetensors"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "TASK=REF" in result.stderr


def test_the_demo_page_template_ships_with_the_package_and_every_placeholder_is_filled(tmp_path):
    from types import SimpleNamespace

    import tomllib

    from pixelplexus import demo

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = setuptools["package-data"]["pixelplexus"]  # the template travels with the installed package
    assert any(Path(demo.PAGE_TEMPLATE).match(pattern) for pattern in shipped)
    model = SimpleNamespace(reference="enhance-gan", info=SimpleNamespace(arch="compact"), version="v1")
    training = demo.TrainingSummary("0123abcd", "models:/pixelplexus-enhance/1", {"val_psnr_y": 21.5}, None)
    scores = {
        name: {"bicubic": 20.0, "enhance": 21.0, "gray": 15.0, "colorize": 16.5} for name in DEMO_PHOTOS
    }
    page = demo._write_page(
        tmp_path,
        {"enhance": model},
        4,
        scores,
        {name: tmp_path / "generated" / f"{name}.png" for name in ("samples", "truncation", "interpolation")},
        training,
        "sqlite:///m.db",
    ).read_text()
    assert "$" not in page and page.startswith("<!doctype html>")
    for text in (
        "<code>enhance-gan</code> (compact, v1)",
        "<td>16.50</td>",
        "Seeds 0–31",
        "±2, 1, 0.5",
        "0123abcd",
    ):
        assert text in page
    assert "mlflow ui --backend-store-uri sqlite:///m.db" in page and 'src="generated/truncation.png"' in page
