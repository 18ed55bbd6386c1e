"""The local Ray instance a command starts ends with the command, even when the command is killed.

Ray binds its GCS, raylet and dashboard to the command that starts them, but its dashboard and runtime-env
agents (children of the raylet) outlive a ``kill -9`` of the command, reparented to init (Ray 2.60: for a
minute, blocked reporting the raylet's death to the dead GCS). The
command's watcher stops them within seconds; if the watcher was killed too, the next command's start-up
sweep does. Neither touches another Ray instance, nor anything when the command joined a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from pixelplexus import localray
from support.processes import leftovers

PIXELPLEXUS = str(Path(sys.executable).with_name("pixelplexus"))


@pytest.fixture
def ray_root():
    """A Ray temp folder of the test's own (``RAY_TMPDIR``), short: Ray's socket paths live under it."""
    root = tempfile.mkdtemp(prefix="pp-ray-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def command_env(ray_root: str) -> dict[str, str]:
    """A command that starts its own local Ray under ``ray_root``."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return env | {"RAY_TMPDIR": ray_root}


def kill_all(tree: list[psutil.Process], driver: subprocess.Popen | None = None) -> None:
    """Kill ``driver`` if it still runs, and every process of ``tree`` (only what the test started)."""
    if driver is not None and driver.poll() is None:
        driver.kill()
        driver.wait()
    for process in tree:
        with contextlib.suppress(psutil.Error):
            process.kill()


@pytest.mark.slow
def test_a_killed_batch_driver_leaves_no_ray_process(tmp_path, ray_root, weights):
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "in" / f"{i}.png")
    command = [
        "enhance",
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        "--model",
        weights["enhance"],
        "--batch-size",
        "2",
    ]
    log = open(tmp_path / "driver.log", "wb")
    driver = subprocess.Popen(
        [PIXELPLEXUS, *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=command_env(ray_root),
        start_new_session=True,
    )
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while not any(
            "read_and_decode" in c or "MapWorker" in c for c in _cmdlines(tree)
        ):  # the pipeline runs
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the batch pipeline did not start"
            time.sleep(0.1)
            tree = psutil.Process(driver.pid).children(recursive=True)
        tree = psutil.Process(driver.pid).children(recursive=True)
        driver.kill()
        assert driver.wait() == -9  # killed mid-run, not finished
        deadline = time.monotonic() + 15
        while (left := leftovers(ray_root, tree)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == []
    finally:
        kill_all(tree, driver)
        log.close()


@pytest.mark.slow
def test_a_finished_batch_command_ends_at_once_and_its_watcher_stops_the_rest(tmp_path, ray_root, weights):
    """After its summary a batch command does not wait for Ray's shutdown: it exits at once, leaving the
    instance to its watcher, which stops every process of it within seconds."""
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "in" / f"{i}.png")
    command = [
        PIXELPLEXUS,
        "enhance",
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        "--model",
        weights["enhance"],
    ]
    driver = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=command_env(ray_root) | {"PYTHONUNBUFFERED": "1"},  # each line when it is printed
        text=True,
    )
    tree: list[psutil.Process] = []
    try:
        lines = []
        for line in driver.stdout:
            lines.append(line)
            if not tree:
                with contextlib.suppress(psutil.Error):
                    tree = psutil.Process(driver.pid).children(recursive=True)
            if line.startswith("manifest:"):
                break
        printed = time.monotonic()
        assert driver.wait(timeout=30) == 0, lines
        assert time.monotonic() - printed < 1.0  # ray.shutdown() and the teardown took 2–3 s here
        assert "6 ok" in lines[0] and len(list((tmp_path / "out").glob("*.png"))) == 6
        (session,) = Path(ray_root, "ray").glob("session_2*")
        record = session / localray.RECORD
        deadline = time.monotonic() + 15  # the watcher clears its record just after the last process is gone
        while ((left := leftovers(ray_root, tree)) or record.exists()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == []
        assert not record.exists()  # the watcher finished its job and cleared it
        assert "leftover processes" in (session / "logs" / "pixelplexus_watcher.log").read_text()
    finally:
        kill_all(tree, driver)


DRIVER_WITHOUT_TORCH = """
import json, sys
from pixelplexus.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


@pytest.mark.slow
def test_the_batch_driver_never_imports_torch(tmp_path, ray_root, weights):
    """The driver of ``pixelplexus enhance`` — flags, the model's check, planning, Ray Data, the manifest —
    does without torch (~2 s and ~300 MB per command); only the model actors load it."""
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(tmp_path / "in" / f"{i}.png")
    command = ["enhance", str(tmp_path / "in"), str(tmp_path / "out"), "--model", weights["enhance"]]
    run = subprocess.run(
        [sys.executable, "-c", DRIVER_WITHOUT_TORCH, *command],
        capture_output=True,
        text=True,
        timeout=180,
        env=command_env(ray_root),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.splitlines()[-1]) == {"code": 0, "torch": False}
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["0.png", "1.png", "2.png"]


def _cmdlines(tree: list[psutil.Process]) -> list[str]:
    lines = []
    for process in tree:
        with contextlib.suppress(psutil.Error):
            lines.append(" ".join(process.cmdline()))
    return lines


def start_script(script: str, ray_root) -> subprocess.Popen:
    """A Python ``script`` in a session of its own, as a command would run (stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=command_env(ray_root),
        start_new_session=True,
    )


DRIVER = """
import time
from pixelplexus import localray
local = localray.start(configure_logging=False, include_dashboard=False)
print(local.session_dir, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_the_next_command_stops_what_a_killed_command_and_its_watcher_left(ray_root):
    driver = start_script(DRIVER, ray_root)
    tree: list[psutil.Process] = []
    try:
        session = Path(driver.stdout.readline().strip())
        assert (session / localray.RECORD).is_file(), driver.communicate(timeout=5)
        tree = psutil.Process(driver.pid).children(recursive=True)
        assert localray.stop_orphaned_sessions(f"{ray_root}/ray") == 0  # its command runs: left alone
        (watcher,) = [p for p in tree if "pixelplexus.localray" in " ".join(p.cmdline())]
        watcher.kill()  # killed together, as by the OOM killer or `kill -9 -- -PGID`
        driver.kill()
        driver.wait()
        time.sleep(4)  # the agents' check of their raylet: 5 × 0.4 s, then they hang
        before = leftovers(ray_root, tree)
        assert any("Agent" in line for line in before), (
            f"Ray's agents no longer outlive a killed driver (they did in Ray 2.60): {before}"
        )
        assert localray.stop_orphaned_sessions(f"{ray_root}/ray") >= 1
        assert leftovers(ray_root, tree) == []
        assert not (session / localray.RECORD).exists()
    finally:
        kill_all(tree, driver)


HUNG = """
import time
from pixelplexus import localray
local = localray.start(configure_logging=False, include_dashboard=False)
print(local.session_dir, flush=True)
local.stop(first=lambda: time.sleep(600), within=3)  # a shutdown that hangs
"""


@pytest.mark.slow
def test_a_hung_shutdown_is_cut_off_at_its_deadline(ray_root):
    driver = start_script(HUNG, ray_root)
    tree: list[psutil.Process] = []
    try:
        assert driver.stdout.readline().strip()
        tree = psutil.Process(driver.pid).children(recursive=True)
        begun = time.monotonic()
        _, err = driver.communicate(timeout=30)
        assert driver.returncode == 1 and time.monotonic() - begun < 8, err[-2000:]
        assert "Ray did not stop within 3 s" in err
        assert leftovers(ray_root, tree) == []
    finally:
        kill_all(tree, driver)


def sleeper(*args: str, log: Path | None = None) -> subprocess.Popen:
    """A stand-in process whose command line carries ``args``; it holds ``log`` open for appending."""
    code = (
        f"import time; log = open({str(log)!r}, 'a'); time.sleep(120)"
        if log
        else "import time; time.sleep(120)"
    )
    return subprocess.Popen([sys.executable, "-c", code, *args])


def dead_process() -> list:
    """The identity ([pid, start time]) of a process that has ended."""
    process = sleeper()
    identity = [process.pid, localray.start_time(process.pid)]
    process.kill()
    process.wait()
    return identity


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat's boot time is Linux's")
def test_a_clock_adjustment_does_not_make_a_running_command_look_dead(monkeypatch):
    """psutil's ``create_time`` on Linux adds the boot time of ``/proc/stat``: whole seconds, the wall clock
    minus the time since boot, so an adjustment of milliseconds across a second's edge moves every process's
    ``create_time`` by one second. The identity a watcher checks its command by must not move with it."""
    from psutil import _pslinux

    process = sleeper()
    try:
        identity = localray._identity(process.pid)
        assert localray._alive(identity) is not None
        before = psutil.Process(process.pid).create_time()
        boot_time = _pslinux.boot_time
        monkeypatch.setattr(_pslinux, "boot_time", lambda: boot_time() + 1.0)  # the clock stepped
        assert psutil.Process(process.pid).create_time() == pytest.approx(before + 1.0)
        assert localray._alive(identity) is not None  # still the same running process
        assert localray.session_processes(f"/nonexistent-{process.pid}", since=identity[1]) == []
    finally:
        process.kill()
        process.wait()
    assert localray._alive(identity) is None  # and gone once it ends


def test_only_leftovers_of_dead_commands_are_stopped_and_joining_a_cluster_stops_nothing(
    ray_root, ray_cluster
):
    sessions = Path(ray_root) / "ray"
    ended, other, running = sessions / "session_1", sessions / "session_10", sessions / "session_2"
    for folder in (ended, other, running):
        (folder / "logs").mkdir(parents=True)
    (ended / "logs" / "agent.log").touch()
    driver = dead_process()
    processes = {
        "named": sleeper(f"--log-dir={ended}/logs"),  # GCS, raylet, monitors name their session
        "agent": sleeper(log=ended / "logs" / "agent.log"),  # an agent: titled ray::…, writing its log
        "reader": subprocess.Popen(["tail", "-f", str(ended / "logs" / "agent.log")]),  # someone reading it
        "other": sleeper(f"--log-dir={other}/logs", log=other / "logs" / "agent.log"),  # another instance
        "running": sleeper(f"--session-dir={running}"),  # the instance of a command still running
    }
    try:
        for folder, identity in [(ended, driver), (running, [os.getpid(), localray.start_time(os.getpid())])]:
            record = {"session_dir": str(folder), "driver": identity, "watcher": None}
            (folder / localray.RECORD).write_text(json.dumps(record))

        # a command that joins a cluster (RAY_ADDRESS) stops nothing
        joined = subprocess.run(
            [sys.executable, "-c", "from pixelplexus import localray; print(localray.start())"],
            env=dict(
                os.environ, RAY_TMPDIR=ray_root, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert joined.stdout.strip() == "None", joined.stderr[-2000:]
        assert all(p.poll() is None for p in processes.values())

        # one that starts its own sweeps first: the ended command's leftovers only
        assert localray.stop_orphaned_sessions(sessions) == 2
        time.sleep(0.5)
        assert {name: p.poll() is None for name, p in processes.items()} == {
            "named": False,
            "agent": False,
            "reader": True,
            "other": True,
            "running": True,
        }
        assert not (ended / localray.RECORD).exists() and (running / localray.RECORD).exists()
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
