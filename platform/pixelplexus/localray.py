"""The local Ray instance a ``pixelplexus`` command starts, and how it ends with the command.

``ray.init()`` without a cluster address starts a Ray instance of the command's own. Its GCS, raylet,
dashboard and monitors are children of the command, bound to it by the kernel's parent-death signal; the
dashboard and runtime-env agents and the workers are children of the raylet. When the command is killed
(``kill -9``, the OOM killer), the first group dies with it, but the agents, finding the raylet gone, block
reporting that to the dead GCS and run on, reparented to init (Ray 2.60: for the report's 60 s timeout here;
reruns within it piled up two more each, and nothing guarantees the wait ends).

So a command that starts an instance of its own (:func:`start`):

- records itself in the instance's session folder (``pixelplexus-driver.json``: its pid and start time) and
  starts a small watcher (``python -m pixelplexus.localray``) in a session of its own, so that
  Ctrl-C and signals to the command's process group leave it be. The watcher waits for the command to end
  (or to call :meth:`LocalRay.stop`), then stops whatever is left of that instance, within seconds;
- first sweeps the sessions such a command recorded under Ray's temp folder whose command and watcher are
  both gone (killed together), and stops their leftovers: nothing accumulates across runs;
- stops it (:meth:`LocalRay.stop`): ``serve.shutdown()`` if asked, ``ray.shutdown()``, then the leftovers;
  on a deadline if asked, past which a watchdog thread stops the instance's processes and exits;
- or, for a command whose results are all written (a batch run, after its manifest and lease), ends at
  once and leaves the instance to the watcher (:func:`leave_to_watcher`, :func:`exit_process`): a short
  batch command no longer waits ~3 s for ``ray.shutdown()`` and the interpreter's teardown.

A process belongs to an instance when a flag on its command line names the session folder (GCS, raylet,
dashboard, monitors: ``--log-dir=SESSION/logs``), when it holds a file inside that folder open for writing
(every Ray process writes its logs there: the agents and workers too, whose titles say only ``ray::…`` and
whose environment their title overwrites), or when it descends from such a process. Nothing else is touched: not other Ray instances on the machine,
not a reader of the logs (``tail -f``), not a cluster the command only joins (``RAY_ADDRESS``, or a
``ray start`` cluster that ``ray.init()`` finds).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import psutil

RECORD = "pixelplexus-driver.json"  # in the session folder of an instance a pixelplexus command started
GRACE_S = 2.0  # SIGTERM, then SIGKILL after this
WATCH_EVERY_S = 2.0  # the watcher checks that the command is alive at least this often
WATCH_ENV = "PIXELPLEXUS_LOCALRAY_WATCH"  # the watcher's orders: session folder and command (JSON)
STOP_NOW = b"stop now\n"  # to the watcher's stdin: the command is ending and leaves the instance to it

Identity = list  # [pid, start_time(pid)]: a process, safe against pid reuse


class LocalRay:
    """A Ray instance this process started: its session folder, and how to stop all of it."""

    def __init__(self, session_dir: str, started: float) -> None:
        self.session_dir = session_dir
        self.started = started  # no process of the instance is older
        self._watcher: subprocess.Popen | None = None
        self._stopping = threading.Lock()
        self.left_to_watcher = False  # :func:`leave_to_watcher`: the process may end without stopping it

    def processes(self) -> list[psutil.Process]:
        """The instance's processes running now (not the watcher, which writes its log in the session)."""
        watcher = self._watcher.pid if self._watcher is not None else None
        return [p for p in session_processes(self.session_dir, self.started) if p.pid != watcher]

    def stop(self, first: Callable[[], object] | None = None, within: float | None = None) -> None:
        """Shut the instance down: ``first`` (e.g. ``serve.shutdown``), ``ray.shutdown()``, then any of its
        processes still running; the watcher ends with it. With ``within``, for a command that is stopping
        anyway: past that many seconds (a shutdown waiting for something dead) a watchdog thread stops the
        instance's processes and exits this process with status 1."""
        import ray

        watchdog = None
        if within is not None:
            reason = f"Ray did not stop within {within:.0f} s"
            watchdog = threading.Timer(within, self.force_exit, args=(1, reason))
            watchdog.daemon = True
            watchdog.start()
        try:
            if first is not None:
                try:
                    first()
                except Exception as exc:  # ray.shutdown below stops it all the same
                    print(f"pixelplexus: {exc}", file=sys.stderr)
            ray.shutdown()
        finally:
            stop_processes(self.processes())
            self._release()
            if watchdog is not None:
                watchdog.cancel()

    def force_exit(self, code: int, reason: str = "") -> None:
        """Kill the instance's processes and exit at once (a second Ctrl-C, a hung shutdown)."""
        if not self._stopping.acquire(blocking=False):
            return
        if reason:
            print(f"pixelplexus: {reason}; stopping its processes", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            stop_processes(self.processes(), grace=0)
            self._release()
        os._exit(code)

    def _watch(self, driver: Identity) -> None:
        """Start the watcher and write the record the next command's sweep reads."""
        content = {"session_dir": self.session_dir, "driver": driver}
        log = Path(self.session_dir) / "logs" / "pixelplexus_watcher.log"
        with open(log, "ab") as out:
            self._watcher = subprocess.Popen(
                [sys.executable, "-m", "pixelplexus.localray"],
                stdin=subprocess.PIPE,  # closed when this process exits or stops the instance
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd="/",
                env=_importable_env() | {WATCH_ENV: json.dumps(content)},
                start_new_session=True,  # Ctrl-C and group signals are for the command, not its watcher
            )
        content["watcher"] = _identity(self._watcher.pid)
        (Path(self.session_dir) / RECORD).write_text(json.dumps(content))

    def _release(self) -> None:
        """Tell the watcher the instance is stopped, let it check and exit, and forget the record."""
        if self._watcher is not None and self._watcher.stdin is not None:
            with contextlib.suppress(OSError):
                self._watcher.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watcher.wait(timeout=GRACE_S + 3)  # nothing is left: it exits at once
        with contextlib.suppress(OSError):
            (Path(self.session_dir) / RECORD).unlink()
        global _started
        if _started is self:
            _started = None


_started: LocalRay | None = None  # the instance this process started and has not stopped


def leave_to_watcher() -> None:
    """Declare that this process needs nothing more from the local instance it started (if any): its
    results are written. :func:`exit_process` will then end the process without stopping the instance."""
    if _started is not None:
        _started.left_to_watcher = True


def exit_process(code: int) -> NoReturn:
    """End this process with ``code``. When it started a local instance that :func:`leave_to_watcher`
    released, the watcher is told to stop the instance now and the process ends at once (``os._exit``,
    standard streams flushed): no ``ray.shutdown()``, no atexit handlers, no interpreter teardown. Its
    GCS and raylet die with it (the parent-death signal), the watcher stops the rest within seconds.
    Otherwise a normal exit."""
    local = _started
    if local is None or not local.left_to_watcher or local._watcher is None or local._watcher.stdin is None:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        local._watcher.stdin.write(STOP_NOW)
        local._watcher.stdin.flush()
    os._exit(code)


def start(**init_kwargs: Any) -> LocalRay | None:
    """``ray.init(**init_kwargs)`` for a command. Returns the instance when this process started a local one
    (then it dies with the process, see the module docstring), ``None`` when Ray was already initialised or
    the command joined a cluster, whose processes are not the command's to stop."""
    import ray

    if ray.is_initialized():
        return None
    address = init_kwargs.get("address") or os.environ.get("RAY_ADDRESS")
    may_start = address in (None, "local")
    if may_start:
        temp_dir = init_kwargs.get("_temp_dir") or ray._common.utils.get_default_ray_temp_dir()
        stop_orphaned_sessions(temp_dir)
    ray.init(**init_kwargs)
    node = ray._private.worker._global_node
    if not may_start or node is None or not node.all_processes:  # joined a `ray start` cluster
        return None
    driver = _identity(os.getpid())
    local = LocalRay(node.get_session_dir_path(), driver[1])
    local._watch(driver)
    global _started
    _started = local
    return local


def stop_orphaned_sessions(temp_dir: str | os.PathLike) -> int:
    """Stop what is left of the instances under ``temp_dir`` whose pixelplexus command and watcher are both
    gone (killed together); returns how many processes were stopped. Instances of running commands and
    sessions no pixelplexus command recorded are left alone."""
    stopped = 0
    for record in sorted(Path(temp_dir).glob(f"session_*/{RECORD}")):
        if record.parent.is_symlink():  # session_latest
            continue
        try:
            content = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if _alive(content.get("driver")) or _alive(content.get("watcher")):
            continue
        leftovers = session_processes(str(record.parent), (content.get("driver") or [0, 0.0])[1])
        if leftovers:
            print(
                f"pixelplexus: stopping {len(leftovers)} processes of the Ray instance of an earlier command "
                f"that ended without stopping it ({record.parent})",
                file=sys.stderr,
            )
            stop_processes(leftovers)
            stopped += len(leftovers)
        with contextlib.suppress(OSError):
            record.unlink()
    return stopped


def session_processes(session_dir: str, since: float = 0.0) -> list[psutil.Process]:
    """The running processes of the instance whose session folder is ``session_dir`` (see the module
    docstring), started at ``since`` (:func:`start_time`) or later; never this process or its ancestors."""
    own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    inside = session_dir.rstrip("/") + "/"
    children: dict[int, list[int]] = {}
    found: dict[int, psutil.Process] = {}
    processes: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["ppid", "cmdline", "status"]):
        info = process.info
        if process.pid in own or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        processes[process.pid] = process
        children.setdefault(info["ppid"], []).append(process.pid)
        if _start_or_zero(process.pid) < since:
            continue
        if any(_flag_inside(arg, inside) for arg in info["cmdline"] or ()):
            found[process.pid] = process
        elif _writes_inside(process.pid, inside):
            found[process.pid] = process
    todo = list(found)
    while todo:  # and their descendants
        for child in children.get(todo.pop(), ()):
            if child not in found and child in processes:
                found[child] = processes[child]
                todo.append(child)
    return list(found.values())


def _flag_inside(arg: str, folder: str) -> bool:
    """Whether a command-line argument is a flag set to ``folder`` or a path in it (``--log-dir=…/logs``),
    as Ray passes its session folder; a bare path (``tail -f …/raylet.out``) is not."""
    name, sep, value = arg.partition("=")
    return name.startswith("--") and bool(sep) and (value + "/").startswith(folder)


def _writes_inside(pid: int, folder: str) -> bool:
    """Whether the process holds a file inside ``folder`` open for writing (Linux; elsewhere False)."""
    fds = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return False
    for name in names:
        link = os.path.join(fds, name)
        try:
            if os.readlink(link).startswith(folder) and os.lstat(link).st_mode & stat.S_IWUSR:
                return True
        except OSError:
            continue
    return False


def stop_processes(processes: Iterable[psutil.Process], grace: float = GRACE_S) -> None:
    """SIGTERM, then SIGKILL whatever still runs after ``grace`` seconds."""
    processes = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if grace > 0:
                process.terminate()
            else:
                process.kill()
    _, alive = psutil.wait_procs(processes, timeout=grace or 1.0)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=1.0)


def start_time(pid: int) -> float:
    """When process ``pid`` started, in seconds, as a number no clock adjustment moves: on Linux the start in
    clock ticks after boot (``/proc/PID/stat``); elsewhere psutil's ``create_time`` (fixed when taken).

    Not psutil's ``create_time`` on Linux: that adds the boot time, which ``/proc/stat`` gives in whole
    seconds as the wall clock minus the time since boot — when the wall clock is adjusted by a few
    milliseconds across a second's edge, every process's ``create_time`` moves by one second, and a
    watcher comparing identities to 0.01 s takes its running command for dead and stops its instance (most
    likely what stopped a training at step 350 on 2026-12-03). Raises ``psutil.NoSuchProcess`` when the
    process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rpartition(b")")[2].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime; fields[0] is field 3
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            raise psutil.NoSuchProcess(pid) from None
    except (OSError, IndexError, ValueError):
        pass
    return psutil.Process(pid).create_time()


def _start_or_zero(pid: int) -> float:
    try:
        return start_time(pid)
    except psutil.Error:
        return 0.0


def _identity(pid: int) -> Identity | None:
    try:
        return [pid, start_time(pid)]
    except psutil.Error:
        return None


def _alive(identity: Identity | None) -> psutil.Process | None:
    """The process ``identity`` names if it still runs (the same pid and start time), else None."""
    if not identity:
        return None
    pid, started = identity
    try:
        process = psutil.Process(pid)
        if abs(start_time(pid) - started) < 0.01 and process.status() != psutil.STATUS_ZOMBIE:
            return process
    except psutil.Error:
        pass
    return None


def _importable_env() -> dict[str, str]:
    """The environment with this package importable, wherever it was imported from."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{path}" if path else root)


def _watch(content: dict) -> int:
    """The watcher: wait until the command is gone or has closed our stdin, then stop what is left."""
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):  # it ends with its command, on its own
        signal.signal(number, signal.SIG_IGN)
    now = False  # the command left the instance to us (exit_process): no shutdown of its own to wait for
    while _alive(content["driver"]) is not None and not now:
        ready, _, _ = select.select([sys.stdin], [], [], WATCH_EVERY_S)
        if ready:
            order = os.read(sys.stdin.fileno(), 4096)
            if not order:
                break  # the command exited or stopped the instance
            now = STOP_NOW in order
    leftovers = session_processes(content["session_dir"], content["driver"][1])
    if not now:
        _, leftovers = psutil.wait_procs(leftovers, timeout=GRACE_S)  # a shutdown in progress: let it finish
    if leftovers:
        names = ", ".join(sorted({_name(p) for p in leftovers}))
        print(f"{time.strftime('%F %T')} stopping {len(leftovers)} leftover processes: {names}", flush=True)
        stop_processes(leftovers)
    with contextlib.suppress(OSError):
        (Path(content["session_dir"]) / RECORD).unlink()
    return 0


def _name(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return process.name()
    return str(process.pid)


if __name__ == "__main__":
    raise SystemExit(_watch(json.loads(os.environ[WATCH_ENV])))
