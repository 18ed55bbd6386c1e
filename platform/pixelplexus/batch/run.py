"""One batch run, from the driver: plan (list, name outputs, find what is done) → the pipeline → the manifest.

Everything that can be checked before work starts is checked first — INPUT (folder, bucket, list file),
OUTPUT (bucket), the options; the model reference was resolved by the caller — and raises
:class:`~pixelplexus.io.locations.LocationError` or :class:`ValueError` without writing anything (not
even OUTPUT's folder). An input that cannot be used safely (an unsafe key, a link out of INPUT, a list
entry that is no image) is no reason to stop: it gets its error row, and the others are processed.

Then the run takes the lease on OUTPUT (:mod:`.lease`; :class:`~pixelplexus.batch.lease.LeaseHeld` when
another run holds it) and only then reads OUTPUT's state, so two runs never plan the same work; the
lease is released at the end, whatever happened.

An input is *done* when its output exists under OUTPUT and no later manifest row says otherwise (an error,
or a different output key); done inputs are not processed again unless ``overwrite``, and their earlier rows
are carried into this run's manifest. An output that exists without any manifest row (a run that was
killed before writing its manifest) counts as done too: outputs are written atomically, so it is whole.
Errors are retried by the next run. When the pipeline fails as a whole, the inputs it did not finish get
error rows, so the manifest still accounts for every input.
"""

from __future__ import annotations

import math
import posixpath
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pixelplexus import localray
from pixelplexus.batch.lease import DEFAULT_SECONDS, Lease
from pixelplexus.batch.manifest import (
    MANIFEST_DIR,
    Summary,
    new_run_id,
    read_manifest,
    to_table,
    write_manifest,
)
from pixelplexus.batch.pipeline import (
    MODEL_ACTOR_MEMORY,
    SIZES,
    Predictor,
    StageSettings,
    encode_and_write,
    new_rows,
    read_and_decode,
)
from pixelplexus.io.formats import ENCODE_FORMATS, IMAGE_EXTENSIONS, format_for_path, writable_format
from pixelplexus.io.locations import (
    RESERVED,
    UNSAFE,
    InputItem,
    Location,
    LocationError,
    S3Settings,
    scan_inputs,
)
from pixelplexus.references import ResolvedModel
from pixelplexus.tasks import inference_task

FORMATS = ("png", "jpg", "webp")  # --format choices besides "keep" (names io.formats knows)
MAX_BLOCKS = 10_000  # Ray Data blocks of input rows: enough to stream and spread, few enough to track

Progress = Callable[[int, int, Counter], None]


@dataclass(frozen=True)
class BatchRequest:
    """A batch run: what to do (task, model, options) to which inputs, where, and with what resources.

    options: the task's inference options (e.g. ``{"tile": 512}``, ``{"skip_color": True}``); batch_size:
    images per model call;
    concurrency: model actors (None: one per ``gpus_per_worker`` GPUs of the cluster, or one on CPUs);
    threads_per_worker: torch threads of a CPU actor (None: the node's cores / concurrency);
    format: "keep" or one of :data:`FORMATS`; column: the column of a CSV/Parquet list of inputs.
    follow_symlinks: read local inputs that are links leading outside INPUT (refused by default);
    force: take OUTPUT's lease even from a live run; lease_seconds: how long a lease outlives its last
    heartbeat (a killed run's lease expires after that).
    """

    task: str
    input: str
    output: str
    model: ResolvedModel
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    concurrency: int | None = None
    gpus_per_worker: float = 0.0
    threads_per_worker: int | None = None
    format: str = "keep"
    overwrite: bool = False
    column: str | None = None
    follow_symlinks: bool = False
    force: bool = False
    lease_seconds: float = DEFAULT_SECONDS
    s3: S3Settings = field(default_factory=S3Settings.from_env)


@dataclass(frozen=True)
class BatchResult:
    manifest: pa.Table  # this run's manifest: one row per input
    manifest_uri: str
    run_id: str
    summary: Summary
    startup_seconds: float  # listing, planning, connecting to Ray
    failure: str | None  # why the pipeline failed as a whole, if it did


def output_key(key: str, format: str) -> str:
    """Where an input's output goes: the same key, with the extension of ``format`` unless it is "keep".

    GIF, which is read but not written, becomes PNG.
    """
    stem, _ = posixpath.splitext(key)
    if format == "keep":
        return key if format_for_path(key) in ENCODE_FORMATS else stem + ".png"
    return key if format_for_path(key) == writable_format(format) else f"{stem}.{format}"


@dataclass
class Plan:
    output: Location
    todo: list[tuple[InputItem, str]]  # inputs to process, with their output keys
    done: list[dict[str, Any]]  # manifest rows of inputs done earlier, carried over
    refused: list[dict[str, Any]]  # error rows of inputs that cannot be processed (unsafe, collisions)


def plan(request: BatchRequest) -> Plan:
    """List the inputs and decide what to do with each; writes nothing (a run does this under its lease)."""
    return decide(request, *gather(request))


def gather(request: BatchRequest) -> tuple[Location, list[InputItem]]:
    """Check the request and list its inputs (refused ones included); raises before anything is written."""
    if request.format != "keep" and request.format not in FORMATS:
        raise ValueError(f"--format must be keep or one of {', '.join(FORMATS)}, got {request.format!r}")
    if request.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {request.batch_size}")
    if request.lease_seconds <= 0:
        raise ValueError(f"the lease time must be positive, got {request.lease_seconds}")
    output = Location.parse(request.output)
    if output.is_s3:
        output.check(request.s3)
    items = scan_inputs(
        request.input,
        request.s3,
        column=request.column,
        exclude=output,
        follow_symlinks=request.follow_symlinks,
    )
    if not items:
        extensions = " ".join(sorted(IMAGE_EXTENSIONS))
        raise LocationError(f"no images under {request.input} (looked for {extensions}, in any case)")
    return output, items


def decide(request: BatchRequest, output: Location, items: list[InputItem]) -> Plan:
    """What to do with each input, given what OUTPUT holds: process it, carry its earlier row, or refuse."""
    previous: dict[str, dict] = {}
    existing: set[str] = set()
    if not request.overwrite:
        previous = {row["input_key"]: row for row in read_manifest(output, request.s3).to_pylist()}
        existing = {key for key in output.keys(request.s3) if not key.startswith(MANIFEST_DIR)}
    todo, done, refused, claimed = [], [], [], {}
    for item in items:
        if item.reason:
            row = {"input": item.uri, "input_key": item.key, "output_key": None, "status": "error"}
            refused.append(row | {"reason": item.reason, "detail": item.detail})
            continue
        out = output_key(item.key, request.format)
        row = {"input": item.uri, "input_key": item.key, "output_key": out}
        if out.split("/")[0] == RESERVED:
            detail = f"'{out}': {RESERVED}/ under OUTPUT holds the manifests and the lease; rename the input"
            refused.append({**row, "output_key": None, "status": "error", "reason": UNSAFE, "detail": detail})
            continue
        if out in claimed:
            detail = f"{claimed[out]} has the same output key; rename one of them or use --format keep"
            refused.append({**row, "status": "error", "reason": "output key collision", "detail": detail})
            continue
        claimed[out] = item.key
        earlier = previous.get(item.key)
        if out in existing and earlier is None:
            done.append({**row, "status": "ok", "reason": "output present, no manifest row", "run_id": ""})
        elif out in existing and earlier["status"] in ("ok", "skipped") and earlier["output_key"] == out:
            done.append(earlier)
        else:
            todo.append((item, out))
    return Plan(output, todo, done, refused)


def run_batch(request: BatchRequest, *, progress: Progress | None = None) -> BatchResult:
    """Run ``request`` on the current Ray cluster (started or joined here if needed); see the module docs."""
    started = time.perf_counter()
    output, items = gather(request)
    run_id = new_run_id()
    output.check(request.s3, create=True)
    lease = Lease.acquire(output, request.s3, run_id, seconds=request.lease_seconds, force=request.force)
    with lease:
        return _run(request, output, items, run_id, lease, progress, started)


def _run(
    request: BatchRequest,
    output: Location,
    items: list[InputItem],
    run_id: str,
    lease: Lease,
    progress: Progress | None,
    started: float,
) -> BatchResult:
    """The run under its lease: decide, process, write the manifest."""
    the_plan = decide(request, output, items)
    rows, failure, seconds, startup = [], None, 0.0, time.perf_counter() - started
    if the_plan.todo:
        rows, failure, startup, seconds = _process(request, the_plan, progress, started)
    if lease.lost and not failure:
        failure = f"LeaseLost: {lease.lost}: another run may have written here too; check its manifest"
    run_rows = [{**row, "run_id": run_id} for row in the_plan.refused + rows]
    table = to_table(the_plan.done + run_rows).sort_by("input_key")
    summary = Summary.of(table, run_id, seconds)
    metadata = {
        "run_id": run_id,
        "task": request.task,
        "input": request.input,
        "output": request.output,
        "model": request.model.describe(),
        "options": request.options,
        "format": request.format,
        "overwrite": request.overwrite,
        "skip_color": bool(request.options.get("skip_color", False)),  # kept beside options for readers
        "follow_symlinks": request.follow_symlinks,
        "force": request.force,
        "failure": failure,
        "summary": summary.line(),
    }
    uri = write_manifest(the_plan.output, table, run_id, metadata, request.s3)
    return BatchResult(table, uri, run_id, summary, startup, failure)


def _process(
    request: BatchRequest, the_plan: Plan, progress: Progress | None, started: float
) -> tuple[list[dict], str | None, float, float]:
    """Run the pipeline on the plan's inputs → (rows, failure, start-up seconds, processing seconds)."""
    import ray

    if not ray.is_initialized():
        # a local Ray of its own ends with this process, even when it is killed (pixelplexus.localray)
        localray.start(configure_logging=False, include_dashboard=False)
    begin = time.perf_counter()
    startup = begin - started
    rows: list[dict] = []
    counts: Counter = Counter()
    failure = None
    try:
        for table in _dataset(request, the_plan).iter_batches(batch_size=None, batch_format="pyarrow"):
            table = _nulls_for_missing(table)
            rows.extend(table.to_pylist())
            counts.update(table.column("status").to_pylist())
            if progress is not None:
                progress(len(rows), len(the_plan.todo), counts)
    except Exception as exc:  # the pipeline as a whole (a cluster lost, a model that cannot load, ...)
        failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
    seconds = time.perf_counter() - begin
    seen = {row["input_key"] for row in rows}
    reason = "not processed: the pipeline failed" if failure else "not processed: its block was lost"
    for item, out in the_plan.todo:
        if item.key not in seen:
            detail = failure or "a Ray Data block failed beyond its retries; rerun to retry"
            rows.append(
                {"input": item.uri, "input_key": item.key, "output_key": out, "status": "error"}
                | {"reason": reason, "detail": detail}
            )
    return rows, failure, startup, seconds


def _dataset(request: BatchRequest, the_plan: Plan):
    import ray

    gpus = request.gpus_per_worker
    concurrency = request.concurrency or (
        max(1, int(ray.cluster_resources().get("GPU", 0) // gpus)) if gpus else 1
    )
    task = inference_task(request.model.info)
    settings = StageSettings(request.s3, the_plan.output, task, task.parse_options(request.options))
    rows = new_rows(the_plan.todo)
    per_block = max(request.batch_size, math.ceil(len(rows) / MAX_BLOCKS))
    ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_block))
    ds = ds.map_batches(
        read_and_decode, fn_kwargs={"settings": settings}, num_cpus=1, udf_modifying_row_count=False
    )
    ds = ds.map_batches(
        Predictor,
        fn_constructor_args=(ray.put(request.model), request.options),
        fn_constructor_kwargs={
            "batch_size": request.batch_size,
            "device": "cuda" if gpus else "cpu",
            "threads": request.threads_per_worker,
            "concurrency": concurrency,
        },
        batch_size=request.batch_size,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
        num_gpus=gpus or None,
        memory=MODEL_ACTOR_MEMORY,
        udf_modifying_row_count=False,
    )
    ds = ds.map_batches(
        encode_and_write, fn_kwargs={"settings": settings}, num_cpus=1, udf_modifying_row_count=False
    )
    ds.context.max_errored_blocks = -1  # a lost block becomes error rows here, not a failed job
    return ds


def _nulls_for_missing(table: pa.Table) -> pa.Table:
    """The stages mark unknown sizes -1 (NumPy has no null integers); the manifest says null."""
    for name in SIZES:
        column = table.column(name)
        index = table.column_names.index(name)
        table = table.set_column(index, name, pc.if_else(pc.equal(column, -1), None, column))
    return table
