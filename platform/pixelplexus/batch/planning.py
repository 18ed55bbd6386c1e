"""What a batch run will do with each input, decided on Arrow tables: process it, carry its earlier row, refuse it.

:func:`gather` checks the request and lists the inputs (:func:`~pixelplexus.io.locations.scan_table`);
:func:`decide` compares them with what OUTPUT holds (its outputs, and every run's manifest parts) and
returns a :class:`Plan` of three tables; :func:`write_plan` writes the inputs to process as Parquet parts
under ``OUTPUT/_pixelplexus/plan-<run id>/``, one per Ray Data block, which the pipeline reads
(:func:`~pixelplexus.batch.pipeline.read_plan_part`). The driver holds columns, never a Python row per input.

An input is *done* when its output exists under OUTPUT and no later manifest row says otherwise (an error,
or a different output key); done inputs are not processed again unless ``overwrite``, and their earlier rows
are carried into this run's manifest. An output that exists without any manifest row (a run killed before
its rows were written) counts as done too: outputs are written atomically, so it is whole. Errors are
retried by the next run.
"""

from __future__ import annotations

import math
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from pixelplexus.batch.manifest import MANIFEST_DIR, SCHEMA, conform, parquet_bytes, part_name, read_manifest
from pixelplexus.io.formats import ENCODE_FORMATS, IMAGE_EXTENSIONS, format_for_path, writable_format
from pixelplexus.io.locations import (
    RESERVED,
    UNSAFE,
    Location,
    LocationError,
    remove_folder,
    scan_table,
    write_output,
)

if TYPE_CHECKING:
    from pixelplexus.batch.run import BatchRequest

FORMATS = ("png", "jpg", "webp")  # --format choices besides "keep" (names io.formats knows)
MIN_BLOCKS = 200  # plan parts (Ray Data blocks of input rows) a large run is cut into at least: to spread
MAX_PART_ROWS = 1024  # inputs of a plan part at most: a part is one task of each stage
PLAN_COLUMNS = ("input", "input_key", "output_key", "within")
WRITERS = 8  # plan parts written at once (S3 round trips overlap)


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
    """What a run does, as tables: ``todo`` (:data:`PLAN_COLUMNS`: the inputs to process, by key),
    ``done`` (manifest rows of inputs done earlier, carried over) and ``refused`` (error rows of inputs
    that cannot be processed: unsafe, collisions; their ``run_id`` is filled in by the run)."""

    output: Location
    todo: pa.Table
    done: pa.Table
    refused: pa.Table


def plan(request: BatchRequest) -> Plan:
    """List the inputs and decide what to do with each; writes nothing (a run does this under its lease)."""
    return decide(request, *gather(request))


def gather(request: BatchRequest) -> tuple[Location, pa.Table]:
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
    items = scan_table(
        request.input,
        request.s3,
        column=request.column,
        exclude=output,
        follow_symlinks=request.follow_symlinks,
    )
    if items.num_rows == 0:
        extensions = " ".join(sorted(IMAGE_EXTENSIONS))
        raise LocationError(f"no images under {request.input} (looked for {extensions}, in any case)")
    return output, items


def _refusals(table: pa.Table, reason: str, details: list[str], output_keys: bool) -> pa.Table:
    rows = {
        "input": table.column("uri"),
        "input_key": table.column("key"),
        "output_key": table.column("output_key") if output_keys else pa.nulls(table.num_rows, pa.string()),
        "status": pa.array(["error"] * table.num_rows, pa.string()),
        "reason": pa.array([reason] * table.num_rows, pa.string()),
        "detail": pa.array(details, pa.string()),
    }
    return conform(pa.table(rows))


def decide(request: BatchRequest, output: Location, items: pa.Table) -> Plan:
    """What to do with each input (``items``: :func:`~pixelplexus.io.locations.scan_table`'s table, by key),
    given what OUTPUT holds: process it, carry its earlier row, or refuse it."""
    refused = []
    has_reason = pc.not_equal(items.column("reason"), "")
    bad = items.filter(has_reason)
    if bad.num_rows:
        rows = {
            "input": bad.column("uri"),
            "input_key": bad.column("key"),
            "status": ["error"] * bad.num_rows,
        }
        refused.append(
            conform(pa.table(rows | {"reason": bad.column("reason"), "detail": bad.column("detail")}))
        )
    live = items.filter(pc.invert(has_reason)).select(["uri", "key", "within"])
    outs = pa.chunked_array(
        [
            pa.array([output_key(key, request.format) for key in chunk.to_pylist()], pa.string())
            for chunk in live.column("key").chunks
        ],
        pa.string(),
    )
    live = live.append_column("output_key", outs)

    reserved = pc.starts_with(live.column("output_key"), RESERVED + "/")
    if pc.any(reserved).as_py():
        hit = live.filter(reserved)
        details = [
            f"'{out}': {RESERVED}/ under OUTPUT holds the manifests and the lease; rename the input"
            for out in hit.column("output_key").to_pylist()
        ]
        refused.append(_refusals(hit, UNSAFE, details, output_keys=False))
        live = live.filter(pc.invert(reserved))

    # of inputs with the same output key, the first by input key claims it; the others are refused
    claims = live.group_by("output_key", use_threads=False).aggregate([("key", "min")])
    live = live.join(claims, "output_key", use_threads=False).sort_by("key")
    collided = pc.not_equal(live.column("key"), live.column("key_min"))
    if pc.any(collided).as_py():
        hit = live.filter(collided)
        details = [
            f"{claimer} has the same output key; rename one of them or use --format keep"
            for claimer in hit.column("key_min").to_pylist()
        ]
        refused.append(_refusals(hit, "output key collision", details, output_keys=True))
        live = live.filter(pc.invert(collided))
    live = live.drop_columns(["key_min"])

    done = SCHEMA.empty_table()
    if not request.overwrite and live.num_rows:
        live, done = _done_earlier(request, output, live)
    todo = pa.table(
        {
            "input": live.column("uri"),
            "input_key": live.column("key"),
            "output_key": live.column("output_key"),
            "within": live.column("within"),
        }
    ).combine_chunks()
    refused_table = pa.concat_tables(refused).sort_by("input_key") if refused else SCHEMA.empty_table()
    return Plan(output, todo, done, refused_table)


def _done_earlier(request: BatchRequest, output: Location, live: pa.Table) -> tuple[pa.Table, pa.Table]:
    """``live`` less the inputs done earlier, and the manifest rows of those (carried over or new)."""
    previous = read_manifest(output, request.s3)
    existing = _existing_outputs(output, request)
    present = pc.is_in(live.column("output_key"), value_set=existing)
    index = pa.table(
        {
            "key": previous.column("input_key"),
            "earlier_ok": pc.is_in(previous.column("status"), value_set=pa.array(["ok", "skipped"])),
            "earlier_out": previous.column("output_key"),
            "earlier_row": pa.array(range(previous.num_rows), pa.int64()),
        }
    )
    live = live.append_column("present", present).join(index, "key", use_threads=False).sort_by("key")
    present = live.column("present")
    no_row = pc.and_(present, pc.is_null(live.column("earlier_row")))
    carried = pc.and_kleene(
        pc.and_kleene(present, live.column("earlier_ok")),
        pc.equal(live.column("earlier_out"), live.column("output_key")),
    ).fill_null(False)
    fresh = live.filter(no_row)
    done = [
        previous.take(live.filter(carried).column("earlier_row")),
        conform(
            pa.table(
                {
                    "input": fresh.column("uri"),
                    "input_key": fresh.column("key"),
                    "output_key": fresh.column("output_key"),
                    "status": ["ok"] * fresh.num_rows,
                    "reason": ["output present, no manifest row"] * fresh.num_rows,
                }
            ),
            run_id="",
        ),
    ]
    todo = live.filter(pc.invert(pc.or_(no_row, carried))).select(["uri", "key", "within", "output_key"])
    return todo, pa.concat_tables(done).sort_by("input_key")


def _existing_outputs(output: Location, request: BatchRequest) -> pa.Array:
    """The keys of every file under OUTPUT but its own folder, as one Arrow array (built a chunk at a time)."""
    chunks, chunk = [], []
    for key in output.keys(request.s3):
        if not key.startswith(MANIFEST_DIR):
            chunk.append(key)
            if len(chunk) == 100_000:
                chunks.append(pa.array(chunk, pa.string()))
                chunk = []
    chunks.append(pa.array(chunk, pa.string()))
    return pa.concat_arrays(chunks)


def plan_folder(run_id: str) -> str:
    """Where a run's plan parts go, relative to OUTPUT."""
    return f"{MANIFEST_DIR}plan-{run_id}"


def write_plan(the_plan: Plan, run_id: str, batch_size: int, request: BatchRequest) -> list[str]:
    """Write the inputs to process as Parquet parts of one Ray Data block each; returns their keys.

    A part has at least ``batch_size`` inputs, and up to :data:`MAX_PART_ROWS` when there are more than
    :data:`MIN_BLOCKS` × that: fewer, larger tasks cost less per input. Memory does not grow with a
    part: the stages take it ``batch_size`` rows at a time and Ray Data cuts their output into blocks.
    """
    todo = the_plan.todo
    per_block = max(batch_size, min(MAX_PART_ROWS, math.ceil(todo.num_rows / MIN_BLOCKS)))
    folder = plan_folder(run_id)

    def write(index: int) -> str:
        key = f"{folder}/{part_name(index)}"
        write_output(
            the_plan.output, key, parquet_bytes(todo.slice(index * per_block, per_block)), request.s3
        )
        return key

    with ThreadPoolExecutor(WRITERS) as pool:
        return list(pool.map(write, range(math.ceil(todo.num_rows / per_block))))


def remove_plans(output: Location, request: BatchRequest) -> None:
    """Remove the plan folders under OUTPUT that killed runs left (call it holding the lease)."""
    prefix = MANIFEST_DIR + "plan-"
    keys = (key for key in output.keys(request.s3, under=MANIFEST_DIR) if key.startswith(prefix))
    for folder in sorted({key.rsplit("/", 1)[0] for key in keys if key.count("/") == 2}):
        remove_folder(output, folder, request.s3)
