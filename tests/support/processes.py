"""Processes a test starts: a free port to give a server, waiting until it answers, stopping it with its tree,
and finding what a Ray instance left behind."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time

import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 90) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; fail, naming ``what`` (and killing
    ``process``), if ``process`` exits first or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def wait_for_http(url: str, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    """Return once ``url`` answers 200; fail, naming ``what``, if ``process`` exits first or after ``timeout``."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit code {process.poll()})")
        time.sleep(0.3)


def stop_tree(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM ``process`` (which stops what it started), then SIGKILL whatever of its tree is left.

    The tree is taken before the signal: Ray's workers start sessions of their own, so the process group
    alone would miss them, and after the head exits they would be reparented and hard to find.
    """
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for child in tree:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=10)


def leftovers(ray_root: str, tree: list[psutil.Process]) -> list[str]:
    """The processes of a Ray instance still running: those of ``tree`` (snapshotted while it ran) and any
    whose command line names its temp folder ``ray_root``."""
    alive = {p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE}
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if (
                ray_root in " ".join(process.info["cmdline"] or ())
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                alive.add(process)
    described = []
    for process in alive:
        with contextlib.suppress(psutil.Error):
            described.append(f"{process.pid} {' '.join(process.cmdline())[:80]}")
    return sorted(described)
