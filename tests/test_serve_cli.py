"""``pixelplexus serve`` as a user runs it: a clear error without models, and a local service until Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import TINY
from pixelplexus.tasks import get_task
from pixelplexus.weights import save_generator

PIXELPLEXUS = str(Path(sys.executable).with_name("pixelplexus"))
CONFIG = str(Path(__file__).resolve().parents[1] / "serve" / "config.yaml")


@pytest.mark.parametrize("config", [None, CONFIG])
def test_serve_with_an_unusable_model_says_what_to_pass(free_port, config):
    flags = ["--port", str(free_port()), "--model", "colorize=enhance-x3"] + (
        ["--config", config] if config else []
    )
    result = subprocess.run([PIXELPLEXUS, "serve", *flags], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "enhance-x3" in result.stderr and "--model TASK=REF" in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "sharpen=x.safetensors"], "expected TASK=REF"),
        (["--model", "enhance"], "expected TASK=REF"),
        (["--config", "no-such-config.yaml"], "cannot use --config no-such-config.yaml"),
    ],
)
def test_serve_refuses_bad_arguments(tmp_path, flags, message):
    result = subprocess.run(
        [PIXELPLEXUS, "serve", *flags], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.slow
def test_serve_runs_until_interrupted(tmp_path, free_port):
    spec = get_task(TINY["enhance"])
    generator = spec.build_generator()
    path = save_generator(tmp_path / "enhance.safetensors", generator, spec.weights_info(generator))
    overrides = ["--model", f"enhance={path}"]  # colorize and generate: the bundled defaults
    port = free_port()
    server = subprocess.Popen(
        [PIXELPLEXUS, "serve", "--port", str(port), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 150
        while not any(f"serving on {url}" in line for line in lines):  # printed once the app runs
            assert server.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "pixelplexus serve did not come up:\n" + "".join(lines)
            time.sleep(0.5)
        assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        models = requests.get(f"{url}/v1/models", timeout=30).json()["models"]
        assert {m["task"]: m["reference"] for m in models} == {
            "enhance": str(path),
            "colorize": "colorize",
            "generate": "generate",
        }
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=90) == 0, "".join(lines)
        with pytest.raises(requests.RequestException):
            requests.get(f"{url}/healthz", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
