"""``pixelplexus serve`` as a user runs it: a clear error without models, and a local service until Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from support.processes import leftovers

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
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_runs_until_interrupted_and_leaves_nothing_behind(free_port, weights, stop):
    """Started as a script's background job (``setsid pixelplexus serve … &``: SIGINT ignored, a session of
    its own), the service still stops on SIGINT and on SIGTERM within 15 s, and no process of its Ray
    instance (raylet, GCS, agents, workers, replicas) outlives it."""
    path = weights["enhance"]
    overrides = ["--model", f"enhance={path}"]  # colorize and generate: the bundled defaults
    port = free_port()
    ray_root = tempfile.mkdtemp(prefix="pp-serve-")  # short: Ray's socket paths live under it
    server = subprocess.Popen(
        [PIXELPLEXUS, "serve", "--port", str(port), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, RAY_TMPDIR=ray_root),
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `&` in a script does
    )
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    tree: list[psutil.Process] = []
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
        tree = psutil.Process(server.pid).children(recursive=True)
        assert any(p.name() == "raylet" for p in tree), tree
        sent = time.monotonic()
        server.send_signal(stop)
        assert server.wait(timeout=60) == 0, "".join(lines)
        assert time.monotonic() - sent <= 15, f"stopping took {time.monotonic() - sent:.1f} s"
        with pytest.raises(requests.RequestException):
            requests.get(f"{url}/healthz", timeout=2)
        assert leftovers(ray_root, tree) == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for process in tree:  # whatever is left of a failed run: only this test's Ray instance
            with contextlib.suppress(psutil.Error):
                process.kill()
        shutil.rmtree(ray_root, ignore_errors=True)
