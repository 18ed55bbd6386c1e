"""The `pixelplexus` command, driven the way the README drives it."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pixelplexus import __version__
from pixelplexus.config import parse_config
from pixelplexus.imageio import read_image

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


@pytest.mark.slow
def test_demo_writes_panels_grid_and_page(tmp_path):
    result = run("demo", "--out", str(tmp_path / "out"), "--size", "128")
    assert "untrained" in result.stdout
    out = tmp_path / "out"
    panels = sorted(out.glob("*-panel.png"))
    assert len(panels) == 4
    for panel in panels:
        assert read_image(panel).pixels.shape[-1] == 3
    enhanced = read_image(out / "astronaut-enhanced.png")
    assert enhanced.pixels.shape[:2] == (128, 128)  # 32 px archive copy ×4
    assert read_image(out / "generate-grid.png").height > 64
    page = (out / "index.html").read_text()
    assert all(p.name in page for p in panels) and "PSNR" in page
    assert len(list((out / "weights").glob("*.safetensors"))) == 3
