"""What of Ray's own output reaches the console during a training run.

A run's progress lines are printed by the rank-0 worker and reach the driver's console the way every
worker's output does (Ray's ``log_to_driver``). Beside them Ray Train and Ray Data print their own
bookkeeping: the placement-group cleaner warns every second that the State API is unavailable (it needs
the dashboard, which a local instance runs without, so the warning says nothing about the run), the
controller and workers announce each step of starting the worker group and each checkpoint report, and
Ray Data logs its execution plans and progress. :func:`quiet_ray_console` keeps those lines off the
console; everything else, our lines and any other warning or error of Ray's, passes
through. Nothing is lost: every line is still in the session's log files (``/tmp/ray/session_*/logs``:
``worker-*.err``/``.out`` of each actor, ``ray-data/``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

# Ray's own actor → the lines of its that tell a user of ``pixelplexus train`` nothing.
NOISE: dict[str, re.Pattern[str]] = {
    "PlacementGroupCleaner": re.compile(r"Failed to query Ray Train Controller actor state"),
    "TrainController": re.compile(
        r"Requesting resources: |Attempting to start training worker group|Started training worker group"
        r"|^- \(ip=.*world_rank=|has constructor arguments in the object store and max_restarts > 0"
    ),
    "RayTrainWorker": re.compile(
        r"Setting up process group for: |Moving model to device: |Checkpoint successfully created at: "
        r"|Reporting training result \d+: "
    ),
    "SplitCoordinator": re.compile(
        r"Starting execution of Dataset |Execution plan of Dataset |execution finished in [\d.]+ seconds"
        r"|A new progress UI is available"
    ),
}
# Driver-side loggers whose console lines are Ray's bookkeeping at INFO (their file handlers keep them).
QUIET_LOGGERS = ("ray.data",)
TQDM_WARNING = re.compile(r"tqdm is not installed")  # Ray Data's progress bars: we print our own progress
PRINT_HANDLER = "ray_print_logs"  # the name Ray gives the driver's handler of forwarded worker output


def keep_lines(batch: dict[str, Any]) -> dict[str, Any] | None:
    """A batch of forwarded worker output without the lines :data:`NOISE` names (None: nothing left)."""
    pattern = NOISE.get(batch.get("actor_name") or "")
    if pattern is None:
        return batch
    lines = [line for line in batch.get("lines", []) if not pattern.search(line)]
    return {**batch, "lines": lines} if lines else None


def quiet_ray_console() -> None:
    """From now on, the driver's console shows Ray's output less the lines of :data:`NOISE`, Ray Data's INFO
    lines and its tqdm warning; the log files keep them all.

    For the rest of this process's connection to Ray, not just the run: the placement-group cleaner of a
    finished run goes on warning until Ray shuts down (it cannot see the controller end without the State
    API). Calling it again changes nothing; after ``ray.shutdown()`` and a new ``ray.init()`` it is needed
    again. Where Ray does not forward worker output to this process (``log_to_driver=False``) only the
    driver's loggers change.
    """
    import ray.data  # noqa: F401  (configures the ray.data loggers, whose console handler is turned down here)
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    printer = dict(dispatcher.handlers).get(PRINT_HANDLER)
    if printer is not None and not getattr(printer, "quiet", False):
        dispatcher.remove_handler(PRINT_HANDLER)
        dispatcher.add_handler(PRINT_HANDLER, _Filtered(printer))
    for name in QUIET_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            console = isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            )
            if console:
                handler.setLevel(max(handler.level, logging.WARNING))
    tqdm = logging.getLogger("ray.experimental.tqdm_ray")
    if not any(isinstance(f, _DropMatching) for f in tqdm.filters):
        tqdm.addFilter(_DropMatching(TQDM_WARNING))


class _Filtered:
    """Ray's printer of forwarded worker output, less what :func:`keep_lines` drops."""

    quiet = True

    def __init__(self, printer: Callable[[dict[str, Any]], None]) -> None:
        self.printer = printer

    def __call__(self, batch: dict[str, Any]) -> None:
        kept = keep_lines(batch)
        if kept is not None:
            self.printer(kept)


class _DropMatching(logging.Filter):
    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())
