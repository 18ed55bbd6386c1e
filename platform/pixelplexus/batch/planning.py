"""What a batch run will do with each input, decided on Arrow tables: process it, carry its earlier row, refuse it.

:func:`gather` checks the request and lists the inputs (:func:`~pixelplexus.io.locations.scan_table`);
:func:`decide` compares them with what OUTPUT holds (its outputs, and every run's manifest parts), one range
of input keys at a time (:mod:`pixelplexus.io.ranges`), and returns a :class:`Plan` of three tables spilled
to a local temporary folder; :func:`write_plan` writes the inputs to process as Parquet parts under
``OUTPUT/_pixelplexus/plan-<run id>/``, one per Ray Data block, which the pipeline reads
(:func:`~pixelplexus.batch.pipeline.read_plan_part`). The driver holds key columns and one range's rows,
never a Python row per input.

An input is *done* when its output exists under OUTPUT and no later manifest row says otherwise (an error,
or a different output key); done inputs are not processed again unless ``overwrite``, and their earlier rows
are carried into this run's manifest. An output that exists without any manifest row (a run killed before
its rows were written) counts as done too: outputs are written atomically, so it is whole. Errors are
retried by the next run.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from pixelplexus.batch.manifest import (
    MANIFEST_DIR,
    SCHEMA,
    conform,
    manifest_parts,
    newest_per_key,
    parquet_bytes,
    part_name,
    read_parts,
)
from pixelplexus.io.formats import (
    ENCODE_FORMATS,
    INPUT_EXTENSIONS,
    VIDEO_EXTENSIONS,
    format_for_path,
    writable_format,
)
from pixelplexus.io.locations import (
    RESERVED,
    UNSAFE,
    Listing,
    Location,
    LocationError,
    remove_folder,
    scan_table,
    write_output,
)
from pixelplexus.io.ranges import Spill, read
from pixelplexus.io.video import VIDEO_CODECS

if TYPE_CHECKING:
    from pixelplexus.batch.run import BatchRequest

FORMATS = ("png", "jpg", "webp")  # --format choices besides "keep" (names io.formats knows)
MIN_BLOCKS = 200  # plan parts (Ray Data blocks of input rows) a large run is cut into at least: to spread
MAX_PART_ROWS = 1024  # inputs of a plan part at most: a part is one task of each stage
PLAN_COLUMNS = ("input", "input_key", "output_key", "within")
WRITERS = 8  # plan parts written at once (S3 round trips overlap)
CHUNK = 100_000  # output keys made (in Python) at a time


def output_key(key: str, format: str) -> str:
    """Where an input's output goes: the same key, with the extension of ``format`` unless it is "keep".

    GIF, which is read but not written, becomes PNG; a video keeps its key (``--format`` is for images).
    """
    stem, extension = posixpath.splitext(key)
    if extension.lower() in VIDEO_EXTENSIONS:  # a video is written in its own container
        return key
    if format == "keep":
        return key if format_for_path(key) in ENCODE_FORMATS else stem + ".png"
    return key if format_for_path(key) == writable_format(format) else f"{stem}.{format}"


TODO_SCHEMA = pa.schema([(name, pa.string()) for name in PLAN_COLUMNS])
KINDS = {"todo": TODO_SCHEMA, "videos": TODO_SCHEMA, "done": SCHEMA, "refused": SCHEMA}
_VIDEO = "(?i)(" + "|".join(ext.replace(".", r"\.") for ext in sorted(VIDEO_EXTENSIONS)) + ")$"


class Plan:
    """What a run does, as four tables, each written range by range of input keys to a local temporary
    folder (:class:`~pixelplexus.io.ranges.Spill`) rather than held: ``todo`` (:data:`PLAN_COLUMNS`: the
    images to process, by key), ``videos`` (the same for videos: :mod:`pixelplexus.batch.video`), ``done`` (manifest rows of inputs done earlier, carried over) and
    ``refused`` (error rows of inputs that cannot be processed: unsafe, collisions; their ``run_id`` is
    filled in by the run), each sorted by input key. :meth:`tables` reads one back a range at a time;
    the properties read it whole (small plans, tests). :meth:`close` removes the folder."""

    def __init__(self, output: Location) -> None:
        self.output = output
        self.spill = Spill("pixelplexus-plan-")
        self.paths: dict[str, list[str]] = {kind: [] for kind in KINDS}
        self.rows: dict[str, int] = dict.fromkeys(KINDS, 0)

    def add(self, kind: str, table: pa.Table) -> None:
        """Append ``table`` (the next range's rows, after those added before) to ``kind``."""
        if table.num_rows:
            self.paths[kind].append(self.spill.write(f"{kind}-{len(self.paths[kind]):05d}", table))
            self.rows[kind] += table.num_rows

    def tables(self, kind: str) -> Iterator[pa.Table]:
        for path in self.paths[kind]:
            yield read(path)

    def table(self, kind: str) -> pa.Table:
        return pa.concat_tables([KINDS[kind].empty_table(), *self.tables(kind)])

    @property
    def todo(self) -> pa.Table:
        return self.table("todo")

    @property
    def done(self) -> pa.Table:
        return self.table("done")

    @property
    def refused(self) -> pa.Table:
        return self.table("refused")

    def close(self) -> None:
        self.spill.close()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plan(request: BatchRequest) -> Plan:
    """List the inputs and decide what to do with each; writes nothing under OUTPUT (a run does this under
    its lease)."""
    output, listing = gather(request)
    with listing:
        return decide(request, output, listing)


def gather(request: BatchRequest) -> tuple[Location, Listing]:
    """Check the request and list its inputs (refused ones included); raises before anything is written."""
    if request.format != "keep" and request.format not in FORMATS:
        raise ValueError(f"--format must be keep or one of {', '.join(FORMATS)}, got {request.format!r}")
    if request.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {request.batch_size}")
    if not 0 <= request.crf <= 63:
        raise ValueError(f"--crf must be between 0 and 63 (51 for h264/hevc), got {request.crf}")
    if request.segment_frames is not None and request.segment_frames < 1:
        raise ValueError(f"--segment-frames must be at least 1, got {request.segment_frames}")
    if request.video_codec is not None and request.video_codec not in VIDEO_CODECS:
        raise ValueError(
            f"--video-codec must be one of {', '.join(VIDEO_CODECS)}, got {request.video_codec!r}"
        )
    if request.lease_seconds <= 0:
        raise ValueError(f"the lease time must be positive, got {request.lease_seconds}")
    output = Location.parse(request.output)
    if output.is_s3:
        output.check(request.s3)
    listing = scan_table(
        request.input,
        request.s3,
        column=request.column,
        exclude=output,
        follow_symlinks=request.follow_symlinks,
    )
    if listing.num_rows == 0:
        listing.close()
        extensions = " ".join(sorted(INPUT_EXTENSIONS))
        raise LocationError(f"no images under {request.input} (looked for {extensions}, in any case)")
    return output, listing


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


def decide(request: BatchRequest, output: Location, listing: Listing) -> Plan:
    """What to do with each input (``listing``: :func:`~pixelplexus.io.locations.scan_table`'s), given what
    OUTPUT holds: process it, carry its earlier row, or refuse it.

    What needs every input at once is decided first on key columns (output keys, their collisions, the
    outputs present); the rest one range of input keys at a time, against the same range of the
    manifest, so that the driver holds one range's rows.
    """
    outs = pa.concat_arrays(
        [pa.array([], pa.string())]
        + [
            _output_keys(listing.keys.slice(i, CHUNK), listing.refused.slice(i, CHUNK), request.format)
            for i in range(0, listing.num_rows, CHUNK)
        ]
    )
    reserved = pc.coalesce(pc.starts_with(outs, RESERVED + "/"), pc.starts_with(listing.keys, RESERVED + "/"))
    eligible = pc.invert(pc.or_(listing.refused, reserved))
    collisions = _collisions(listing.keys, outs, eligible)
    previous, existing = None, None
    result = Plan(output)
    with Spill("pixelplexus-manifest-") as spill:
        if not request.overwrite:
            existing = _existing_outputs(output, request)
            bounds = listing.keys.take(pa.array(listing.starts[1:], pa.int64()))
            previous = _manifest_ranges(output, request, spill, bounds)
        for index, (start, items) in enumerate(listing.ranges()):
            out = pc.coalesce(outs.slice(start, items.num_rows), items.column("key"))
            items = items.append_column("output_key", out)
            if existing is not None:
                # the outputs present (both ways round: two hash tables of a range's keys, not of OUTPUT's)
                hits = existing.filter(pc.is_in(existing, value_set=out))
                items = items.append_column("present", pc.is_in(out, value_set=hits))
            earlier = newest_per_key(read(previous[index])) if previous else None
            todo, done, refused = _decide_range(items, collisions, earlier)
            video = pc.match_substring_regex(todo.column("input_key"), _VIDEO)
            result.add("videos", todo.filter(video))
            result.add("todo", todo.filter(pc.invert(video)))
            result.add("done", done)
            result.add("refused", refused)
    return result


def _output_keys(keys: pa.Array, refused: pa.Array, format: str) -> pa.Array:
    """:func:`output_key` of each of ``keys``, null where it is the key itself (most often) or the input is
    refused (its key need not name an image): the output keys of a million inputs in a few MB."""
    outs = []
    for key, no in zip(keys.to_pylist(), refused.to_pylist()):
        out = None if no else output_key(key, format)
        outs.append(None if out == key else out)
    return pa.array(outs, pa.string())


def _collisions(keys: pa.Array, outs: pa.Array, eligible: pa.Array) -> pa.Table:
    """Of the ``eligible`` inputs with the same output key (``outs``, null: the key itself), the first by
    input key claims it: the others, as a table of their ``key`` and the ``claimer``'s (few, usually
    none). Two inputs share an output key only when one of them has an output key of its own: only the
    inputs whose output key is one of those are compared."""
    own = outs.drop_null()
    shared = pc.and_(eligible, pc.or_(pc.is_valid(outs), pc.is_in(keys, value_set=own)))
    candidates = pa.table({"key": keys, "output_key": pc.coalesce(outs, keys)}).filter(shared)
    counts = pc.value_counts(candidates.column("output_key"))
    claimed = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    candidates = candidates.filter(pc.is_in(candidates.column("output_key"), value_set=claimed))
    claims = candidates.group_by("output_key", use_threads=False).aggregate([("key", "min")])
    candidates = candidates.join(claims, "output_key", use_threads=False)
    candidates = candidates.filter(pc.not_equal(candidates.column("key"), candidates.column("key_min")))
    return pa.table({"key": candidates.column("key"), "claimer": candidates.column("key_min")})


def _manifest_ranges(output: Location, request: BatchRequest, spill: Spill, bounds: pa.Array) -> list[str]:
    """Every run's manifest rows (in run and part order), cut at ``bounds`` of input keys into ``spill``."""
    keys = manifest_parts(output, request.s3)
    tables = (read_parts(output, [key], request.s3) for key in keys)
    return spill.cut("manifest", tables, "input_key", bounds, SCHEMA)


def _decide_range(
    items: pa.Table, collisions: pa.Table, earlier: pa.Table | None
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """One range of inputs (sorted by key, with their ``output_key``, and ``present`` unless overwriting)
    → the inputs to process, the rows of those done earlier (``earlier``: the range's newest manifest
    rows; None when overwriting), the rows of those refused."""
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
    live = items.filter(pc.invert(has_reason)).drop_columns(["reason", "detail"])

    reserved = pc.starts_with(live.column("output_key"), RESERVED + "/")
    if pc.any(reserved).as_py():
        hit = live.filter(reserved)
        details = [
            f"'{out}': {RESERVED}/ under OUTPUT holds the manifests and the lease; rename the input"
            for out in hit.column("output_key").to_pylist()
        ]
        refused.append(_refusals(hit, UNSAFE, details, output_keys=False))
        live = live.filter(pc.invert(reserved))

    collided = pc.is_in(live.column("key"), value_set=collisions.column("key"))
    if pc.any(collided).as_py():
        hit = live.filter(collided).join(collisions, "key", use_threads=False).sort_by("key")
        details = [
            f"{claimer} has the same output key; rename one of them or use --format keep"
            for claimer in hit.column("claimer").to_pylist()
        ]
        refused.append(_refusals(hit, "output key collision", details, output_keys=True))
        live = live.filter(pc.invert(collided))

    done = SCHEMA.empty_table()
    if earlier is not None and live.num_rows:
        live, done = _done_earlier(live, earlier)
    todo = pa.table(
        {
            "input": live.column("uri"),
            "input_key": live.column("key"),
            "output_key": live.column("output_key"),
            "within": live.column("within"),
        }
    ).combine_chunks()
    refused_table = pa.concat_tables(refused).sort_by("input_key") if refused else SCHEMA.empty_table()
    return todo, done, refused_table


def _done_earlier(live: pa.Table, previous: pa.Table) -> tuple[pa.Table, pa.Table]:
    """``live`` less the inputs done earlier, and the manifest rows of those (carried over or new)."""
    index = pa.table(
        {
            "key": previous.column("input_key"),
            "earlier_ok": pc.is_in(previous.column("status"), value_set=pa.array(["ok", "skipped"])),
            "earlier_out": previous.column("output_key"),
            "earlier_row": pa.array(range(previous.num_rows), pa.int64()),
        }
    )
    live = live.join(index, "key", use_threads=False).sort_by("key")
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
    per_block = max(batch_size, min(MAX_PART_ROWS, math.ceil(the_plan.rows["todo"] / MIN_BLOCKS)))
    folder = plan_folder(run_id)
    keys: list[str] = []

    def write(part: tuple[int, pa.Table]) -> str:
        key = f"{folder}/{part_name(part[0])}"
        write_output(the_plan.output, key, parquet_bytes(part[1]), request.s3)
        return key

    def parts(rows: pa.Table) -> list[tuple[int, pa.Table]]:
        whole = rows.num_rows - rows.num_rows % per_block
        return [
            (len(keys) + i, rows.slice(start, per_block))
            for i, start in enumerate(range(0, whole, per_block))
        ]

    # a range at a time (the parts of a range are written at once), the rows left over carried to the next
    left = TODO_SCHEMA.empty_table()
    with ThreadPoolExecutor(WRITERS) as pool:
        for table in the_plan.tables("todo"):
            rows = pa.concat_tables([left, table])
            ready = parts(rows)
            keys += pool.map(write, ready)
            left = rows.slice(len(ready) * per_block)
        if left.num_rows:
            keys.append(write((len(keys), left)))
    return keys


def remove_plans(output: Location, request: BatchRequest) -> None:
    """Remove the plan and segment folders under OUTPUT that killed runs left (call it holding the lease)."""
    prefixes = (MANIFEST_DIR + "plan-", MANIFEST_DIR + "segments-")  # and videos' encoded segments
    keys = (key for key in output.keys(request.s3, under=MANIFEST_DIR) if key.startswith(prefixes))
    for folder in sorted({key.rsplit("/", 1)[0] for key in keys if key.count("/") == 2}):
        remove_folder(output, folder, request.s3)
