"""One batch run, from the driver: plan (list, name outputs, find what is done) → the pipeline → the manifest.

Everything that can be checked before work starts is checked first — INPUT (folder, bucket, list file),
OUTPUT (bucket), the options; the model reference was resolved by the caller — and raises
:class:`~pixelplexus.io.locations.LocationError` or :class:`ValueError` without writing anything (not
even OUTPUT's folder). An input that cannot be used safely (an unsafe key, a link out of INPUT, a list
entry that is no image) is no reason to stop: it gets its error row, and the others are processed.

Then the run takes the lease on OUTPUT (:mod:`.lease`; :class:`~pixelplexus.batch.lease.LeaseHeld` when
another run holds it) and only then reads OUTPUT's state, so two runs never plan the same work; the
lease is released at the end, whatever happened.

The run streams (:mod:`.planning`, :mod:`.manifest`): the inputs are listed into Arrow tables, the ones
to process are written as plan parts under ``OUTPUT/_pixelplexus/plan-<run id>/`` that Ray Data's tasks
read, and the result rows are written as manifest parts as the pipeline's blocks come back; the driver
keeps counters, not rows. When the pipeline fails as a whole, or a block is lost beyond Ray Data's
retries, the inputs without a row get error rows, so the manifest still accounts for every input. A
driver killed mid-run leaves the manifest parts written so far (errors included) and its plan folder,
which the next run removes.
"""

from __future__ import annotations

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
    ManifestWriter,
    Summary,
    conform,
    manifest_parts,
    new_run_id,
    read_parts,
    read_run_manifest,
)
from pixelplexus.batch.pipeline import (
    BLOCK_BYTES,
    MODEL_ACTOR_MEMORY,
    SIZES,
    Predictor,
    StageSettings,
    encode_and_write,
    read_and_decode,
    read_plan_part,
)
from pixelplexus.batch.planning import (
    TODO_SCHEMA,
    Plan,
    decide,
    gather,
    plan_folder,
    remove_plans,
    write_plan,
)
from pixelplexus.batch.video import run_videos
from pixelplexus.io.locations import Listing, Location, S3Settings, remove_folder
from pixelplexus.io.video import DEFAULT_CRF
from pixelplexus.options import parse_options
from pixelplexus.references import ResolvedModel  # torch-free: the driver never imports torch

Progress = Callable[[int, int, Counter], None]
VideoProgress = Callable[[int, int, float, float, int, int], None]
"""frames done, frames known, seconds of video done, known, videos done, videos"""


@dataclass(frozen=True)
class BatchRequest:
    """A batch run: what to do (task, model, options) to which inputs, where, and with what resources.

    options: the task's inference options (e.g. ``{"tile": 512}``, ``{"skip_color": True}``); batch_size:
    images per model call;
    concurrency: model actors (None: one per ``gpus_per_worker`` GPUs of the cluster, or one on CPUs);
    threads_per_worker: torch threads of a CPU actor (None: the node's cores / concurrency);
    format: "keep" or one of :data:`FORMATS` (images); video_codec, crf: how videos are encoded
    (:data:`~pixelplexus.io.video.VIDEO_CODECS`; None: h264, or vp9 in WebM); segment_frames: frames of
    a video's segments (None: :func:`~pixelplexus.io.video.segment_frames`); column: the column of a
    CSV/Parquet list of inputs.
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
    video_codec: str | None = None
    crf: int = DEFAULT_CRF
    segment_frames: int | None = None
    s3: S3Settings = field(default_factory=S3Settings.from_env)


@dataclass(frozen=True)
class BatchResult:
    manifest_uri: str  # the folder of this run's manifest parts
    run_id: str
    summary: Summary
    startup_seconds: float  # listing, planning, connecting to Ray
    failure: str | None  # why the pipeline failed as a whole, if it did
    output: Location
    s3: S3Settings

    @property
    def manifest(self) -> pa.Table:
        """This run's manifest, read from its parts: one row per input it listed."""
        return read_run_manifest(self.output, self.run_id, self.s3)


def run_batch(
    request: BatchRequest, *, progress: Progress | None = None, video_progress: VideoProgress | None = None
) -> BatchResult:
    """Run ``request`` on the current Ray cluster (started or joined here if needed); see the module docs."""
    started = time.perf_counter()
    output, listing = gather(request)
    with listing:
        run_id = new_run_id()
        output.check(request.s3, create=True)
        lease = Lease.acquire(output, request.s3, run_id, seconds=request.lease_seconds, force=request.force)
        with lease:
            progresses = (progress, video_progress)
            return _run(request, output, listing, run_id, lease, progresses, started)


def _run(
    request: BatchRequest,
    output: Location,
    listing: Listing,
    run_id: str,
    lease: Lease,
    progresses: tuple[Progress | None, VideoProgress | None],
    started: float,
) -> BatchResult:
    """The run under its lease: decide, write the rows known now, process, write the rest."""
    remove_plans(output, request)  # left by runs that were killed: none is running (we hold the lease)
    with decide(request, output, listing) as the_plan:
        listing.close()  # the plan holds what it needs of it
        return _carry_out(request, the_plan, run_id, lease, progresses, started)


def _carry_out(
    request: BatchRequest,
    the_plan: Plan,
    run_id: str,
    lease: Lease,
    progresses: tuple[Progress | None, VideoProgress | None],
    started: float,
) -> BatchResult:
    """The plan's rows known now into the manifest, then the pipeline on its inputs, then the rest."""
    progress, video_progress = progresses
    output = the_plan.output
    if the_plan.rows["todo"] or the_plan.rows["videos"]:
        connect(request)  # before any row is written: a cluster that cannot run the model is exit 2
    metadata = {
        "run_id": run_id,
        "task": request.task,
        "input": request.input,
        "output": request.output,
        "model": request.model.describe(),
        "options": request.options,
        "format": request.format,
        "video_codec": request.video_codec,
        "crf": request.crf,
        "overwrite": request.overwrite,
        "skip_color": bool(request.options.get("skip_color", False)),  # kept beside options for readers
        "follow_symlinks": request.follow_symlinks,
        "force": request.force,
    }
    writer = ManifestWriter(output, run_id, metadata, request.s3)
    for table in the_plan.tables("refused"):
        writer.add(conform(table, run_id=run_id))
    for table in the_plan.tables("done"):
        writer.add(table)
    writer.flush()
    failure, seconds, startup = None, 0.0, time.perf_counter() - started
    if the_plan.rows["todo"]:
        failure, startup, seconds = _process(request, the_plan, run_id, writer, progress, started)
    if the_plan.rows["videos"] and not failure:
        begin = time.perf_counter()
        if not the_plan.rows["todo"]:
            startup = begin - started
        failure = _process_videos(request, the_plan, run_id, writer, video_progress)
        seconds += time.perf_counter() - begin
    elif the_plan.rows["videos"]:
        for table in the_plan.tables("videos"):
            _not_processed(table, run_id, writer, failure)
    if lease.lost and not failure:
        failure = f"LeaseLost: {lease.lost}: another run may have written here too; check its manifest"
    summary = writer.tally.summary(seconds)
    uri = writer.finish({**metadata, "failure": failure, "summary": summary.line()})
    return BatchResult(uri, run_id, summary, startup, failure, output, request.s3)


def connect(request: BatchRequest) -> None:
    """Start (or join) Ray, and check that the pipeline can run: with ``gpus_per_worker``, some live node
    must have that many GPUs, or the actors would wait for one forever; and the model actors (one CPU
    each) must leave a CPU to the read and write tasks, or none of those could ever start. Raises
    ValueError."""
    import ray

    if not ray.is_initialized():
        # a local Ray of its own ends with this process, even when it is killed (pixelplexus.localray)
        localray.start(configure_logging=False, include_dashboard=False)
    gpus = request.gpus_per_worker
    if gpus:
        most = max((node["Resources"].get("GPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
        if most < gpus:
            raise ValueError(
                f"--gpus-per-worker {gpus:g}: no node of the Ray cluster has {gpus:g} GPU(s) (the most any "
                f"node has is {most:g}), so no model actor could start; run on a cluster with GPU nodes, or "
                "pass --gpus-per-worker 0 to run on CPUs"
            )
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if request.concurrency and request.concurrency >= cpus:
        raise ValueError(
            f"--concurrency {request.concurrency}: the Ray cluster has {cpus} CPU(s) and each model actor "
            "holds one, so no CPU would be left to read and write images and the run would never progress; "
            f"pass --concurrency {max(1, cpus - 1)} or less (use --threads-per-worker for more threads per actor)"
        )


def _process(
    request: BatchRequest,
    the_plan: Plan,
    run_id: str,
    writer: ManifestWriter,
    progress: Progress | None,
    started: float,
) -> tuple[str | None, float, float]:
    """Run the pipeline on the plan's inputs, writing their rows → (failure, start-up s, processing s)."""
    parts = write_plan(the_plan, run_id, request.batch_size, request)
    total = the_plan.rows["todo"]
    begin = time.perf_counter()
    startup = begin - started
    counts: Counter = Counter()
    done = 0
    failure = None
    try:
        for table in _dataset(request, the_plan, parts).iter_batches(batch_size=None, batch_format="pyarrow"):
            table = conform(_nulls_for_missing(table), run_id=run_id)
            writer.add(table)
            done += table.num_rows
            counts.update(dict(zip(*_counts(table.column("status")))))
            if progress is not None:
                progress(done, total, counts)
    except Exception as exc:  # the pipeline as a whole (a cluster lost, a model that cannot load, ...)
        failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
    seconds = time.perf_counter() - begin
    writer.flush()
    todo = read_parts(the_plan.output, parts, request.s3, columns=["input", "input_key", "output_key"])
    _account_for_the_rest(todo, the_plan.output, run_id, writer, request, failure)
    remove_folder(the_plan.output, plan_folder(run_id), request.s3)
    return failure, startup, seconds


def _counts(column: pa.ChunkedArray) -> tuple[list, list]:
    counts = pc.value_counts(column)
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()


def _account_for_the_rest(
    todo: pa.Table,
    output: Location,
    run_id: str,
    writer: ManifestWriter,
    request: BatchRequest,
    failure: str | None,
) -> None:
    """Error rows for the inputs of the plan that have no row in this run's manifest parts."""
    seen = read_parts(output, manifest_parts(output, request.s3, run_id), request.s3, columns=["input_key"])
    missing = todo.filter(
        pc.invert(pc.is_in(todo.column("input_key"), value_set=seen.column("input_key").combine_chunks()))
    )
    _not_processed(missing, run_id, writer, failure)


def _not_processed(todo: pa.Table, run_id: str, writer: ManifestWriter, failure: str | None) -> None:
    """Error rows for plan rows ``todo`` that got none: the pipeline failed, or their block was lost."""
    if todo.num_rows == 0:
        return
    reason = "not processed: the pipeline failed" if failure else "not processed: its block was lost"
    detail = failure or "a Ray Data block failed beyond its retries; rerun to retry"
    rows = todo.select(["input", "input_key", "output_key"])
    n = rows.num_rows
    rows = rows.append_column("status", pa.array(["error"] * n)).append_column(
        "reason", pa.array([reason] * n)
    )
    writer.add(conform(rows.append_column("detail", pa.array([detail] * n)), run_id=run_id))
    writer.flush()


def _process_videos(
    request: BatchRequest,
    the_plan: Plan,
    run_id: str,
    writer: ManifestWriter,
    progress: VideoProgress | None,
) -> str | None:
    """The plan's videos through :func:`~pixelplexus.batch.video.run_videos` (a row each), then error rows
    for those left without one; returns the failure."""
    videos = [row for table in the_plan.tables("videos") for row in table.to_pylist()]
    emitted: set[str] = set()

    def emit(row: dict) -> None:
        emitted.add(row["input_key"])
        writer.add(conform(pa.Table.from_pylist([row]), run_id=run_id))

    def model_stage(ds, predictor, batch_size: int):
        return _model_stage(ds, request, predictor, batch_size)

    failure = run_videos(request, the_plan.output, videos, run_id, emit, model_stage, progress)
    missing = [row for row in videos if row["input_key"] not in emitted]
    _not_processed(pa.Table.from_pylist(missing, schema=TODO_SCHEMA), run_id, writer, failure)
    writer.flush()
    return failure


def _model_stage(ds, request: BatchRequest, predictor: type, batch_size: int):
    """``ds`` with the model actor pool added (``predictor``: :class:`Predictor`, or videos' own)."""
    import ray

    gpus = request.gpus_per_worker
    concurrency = request.concurrency or (
        max(1, int(ray.cluster_resources().get("GPU", 0) // gpus)) if gpus else 1
    )
    return ds.map_batches(
        predictor,
        fn_constructor_args=(ray.put(request.model), request.options),
        fn_constructor_kwargs={
            "batch_size": request.batch_size,
            "device": "cuda" if gpus else "cpu",
            "threads": request.threads_per_worker,
            "concurrency": concurrency,
        },
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
        num_gpus=gpus or None,
        memory=MODEL_ACTOR_MEMORY,
        udf_modifying_row_count=False,
    )


def _dataset(request: BatchRequest, the_plan: Plan, parts: list[str]):
    import ray

    rule = parse_options(request.task, request.options).passthrough_rule()
    settings = StageSettings(request.s3, the_plan.output, rule)
    # one row (a plan part's URI) per block: the blocks of input rows are read by Ray Data's tasks
    uris = [the_plan.output.join(key) for key in parts]
    ds = ray.data.from_items([{"part": uri} for uri in uris], override_num_blocks=len(uris))
    ds = ds.map_batches(read_plan_part, fn_kwargs={"settings": settings}, batch_size=1, num_cpus=1)
    # a plan part's rows are decoded and encoded a model batch at a time: a task's memory is one batch
    ds = ds.map_batches(
        read_and_decode,
        fn_kwargs={"settings": settings},
        batch_size=request.batch_size,
        num_cpus=1,
        udf_modifying_row_count=False,
    )
    ds = _model_stage(ds, request, Predictor, request.batch_size)
    ds = ds.map_batches(
        encode_and_write,
        fn_kwargs={"settings": settings},
        batch_size=request.batch_size,
        num_cpus=1,
        udf_modifying_row_count=False,
    )
    ds.context.target_max_block_size = BLOCK_BYTES  # results stream to the encoders a few images at a time
    ds.context.max_errored_blocks = -1  # a lost block becomes error rows here, not a failed job
    return ds


def _nulls_for_missing(table: pa.Table) -> pa.Table:
    """The stages mark unknown sizes -1 (NumPy has no null integers); the manifest says null."""
    for name in SIZES:
        column = table.column(name)
        index = table.column_names.index(name)
        table = table.set_column(index, name, pc.if_else(pc.equal(column, -1), None, column))
    return table
