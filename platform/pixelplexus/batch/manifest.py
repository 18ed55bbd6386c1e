"""The manifest: one Parquet row per input, so that every image of a batch is accounted for.

A run's manifest is a folder of parts, ``OUTPUT/_pixelplexus/manifest-<run id>/part-00000000.parquet``,
``part-00000001.parquet``, … (run ids sort by start time), written while the run works: first the rows
decided at planning (inputs refused, inputs an earlier run had done), then the rows of processed inputs as
the pipeline's blocks finish (:class:`ManifestWriter`: a part every :data:`PART_ROWS` rows or
:data:`FLUSH_SECONDS`, whichever comes first). A run's manifest is the union of its parts; a driver killed
mid-run leaves the parts written so far, error rows included. ``run.json`` beside the parts, written
when the run ends, holds its settings, summary and failure (each part also carries the settings as
Parquet metadata). Files ``manifest-<run id>.parquet`` (one file per run, as runs wrote before parts)
are read as one part.

A run's manifest has a row for *every* input it listed: those it processed (status ``ok``, ``error`` or
``skipped``) and those an earlier run had already done, whose earlier row is carried over unchanged (its
``run_id`` says which run did it), so ``inputs = ok + error + skipped`` holds for every run.
:func:`read_manifest` reads every run's parts, keeping the newest row per input (in run order, then part
order) — which also covers inputs that only older runs listed (a different list file, say).
:func:`read_run_manifest` reads one run's. Both are Arrow work on the parts, no Python row per input.

Columns: ``input`` (where it was read), ``input_key`` / ``output_key`` (relative to INPUT / OUTPUT),
``status``, ``reason`` (short and stable: group failures by it), ``detail`` (the full message),
``input_bytes``, ``width``/``height`` (decoded, EXIF orientation applied), ``output_bytes``,
``output_width``/``output_height``, ``seconds`` (this input's share of the work), for videos ``frames`` and
``video_seconds`` (the video's duration; both null for images), and ``run_id``. Parts written before a
column existed read as null there.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pixelplexus.io.locations import RESERVED, Location, read_uri, write_output
from pixelplexus.io.s3 import S3Settings

MANIFEST_DIR = f"{RESERVED}/"
STATUSES = ("ok", "error", "skipped")
PART_ROWS = 50_000  # rows of a manifest part at most
FLUSH_SECONDS = 10.0  # rows wait at most this long in the driver before they are written as a part
RUN_INFO = "run.json"

SCHEMA = pa.schema(
    [
        ("input", pa.string()),
        ("input_key", pa.string()),
        ("output_key", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("input_bytes", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("output_bytes", pa.int64()),
        ("output_width", pa.int64()),
        ("output_height", pa.int64()),
        ("seconds", pa.float64()),
        ("frames", pa.int64()),
        ("video_seconds", pa.float64()),
        ("run_id", pa.string()),
    ]
)


def new_run_id() -> str:
    """``20261121T101502.123Z-3fa9c1``: UTC start time to the millisecond (sorts in run order), random suffix."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}Z-{secrets.token_hex(3)}"


def manifest_folder(run_id: str) -> str:
    """Where a run's manifest parts go, relative to OUTPUT."""
    return f"{MANIFEST_DIR}manifest-{run_id}"


def part_name(index: int) -> str:
    return f"part-{index:08d}.parquet"


def conform(table: pa.Table, **constants: str | None) -> pa.Table:
    """``table`` with the schema's columns in its order: missing ones null, or ``constants`` (e.g. run_id)."""
    columns = []
    for name in SCHEMA.names:
        if name in constants:
            columns.append(pa.array([constants[name]] * table.num_rows, SCHEMA.field(name).type))
        elif name in table.column_names:
            columns.append(table.column(name).cast(SCHEMA.field(name).type))
        else:
            columns.append(pa.nulls(table.num_rows, SCHEMA.field(name).type))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def parquet_bytes(table: pa.Table, metadata: dict | None = None) -> bytes:
    """``table`` as a Parquet file (``metadata``: JSON under the key ``pixelplexus``)."""
    if metadata is not None:
        table = table.replace_schema_metadata({"pixelplexus": json.dumps(metadata, sort_keys=True)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@dataclass
class Tally:
    """Counters of manifest rows as a run writes them: what a :class:`Summary` says, without the rows."""

    run_id: str
    rows: int = 0
    earlier: int = 0  # rows of inputs done by an earlier run, carried over
    megapixels: float = 0.0  # of the inputs this run processed
    frames: int = 0  # of the videos this run processed
    video_seconds: float = 0.0
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        mine = pc.equal(table.column("run_id"), self.run_id).fill_null(False)
        self.earlier += table.num_rows - (pc.sum(mine).as_py() or 0)
        frames = pc.coalesce(table.column("frames"), 1)  # a video's pixels are its frames'
        pixels = pc.multiply(pc.multiply(table.column("width"), table.column("height")), frames).filter(mine)
        self.megapixels += (pc.sum(pixels).as_py() or 0) / 1e6
        ok = pc.and_(mine, pc.equal(table.column("status"), "ok").fill_null(False))
        self.frames += pc.sum(table.column("frames").filter(ok)).as_py() or 0
        self.video_seconds += pc.sum(table.column("video_seconds").filter(ok)).as_py() or 0.0
        for status, n in _value_counts(table.column("status")):
            self.counts[status] += n
        errors = table.filter(pc.equal(table.column("status"), "error").fill_null(False))
        for reason, n in _value_counts(errors.column("reason")):
            self.reasons[reason] += n

    def summary(self, seconds: float) -> Summary:
        processed = self.rows - self.earlier
        return Summary(
            inputs=self.rows,
            counts={status: self.counts.get(status, 0) for status in STATUSES},
            earlier=self.earlier,
            seconds=seconds,
            images_per_second=processed / seconds if seconds > 0 else 0.0,
            megapixels_per_second=self.megapixels / seconds if seconds > 0 else 0.0,
            frames=self.frames,
            video_seconds=self.video_seconds,
            reasons=dict(self.reasons.most_common()),
        )


def _value_counts(column: pa.ChunkedArray) -> list[tuple[str, int]]:
    counts = pc.value_counts(column)
    return list(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))


class ManifestWriter:
    """One run's manifest, written as parts while the run works; keeps a :class:`Tally`, not the rows.

    :meth:`add` buffers rows (a table with the schema) and writes a part when :data:`PART_ROWS` rows wait
    or the oldest has waited :data:`FLUSH_SECONDS`; :meth:`finish` writes the rest and ``run.json``.
    """

    def __init__(
        self,
        output: Location,
        run_id: str,
        metadata: dict,
        settings: S3Settings,
        *,
        part_rows: int | None = None,
        flush_seconds: float | None = None,
    ) -> None:
        self.output, self.run_id, self.metadata, self.settings = output, run_id, metadata, settings
        self.part_rows = part_rows or PART_ROWS
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self.folder = manifest_folder(run_id)
        self.tally = Tally(run_id)
        self.parts = 0
        self.bytes = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._since = time.monotonic()

    @property
    def uri(self) -> str:
        return self.output.join(self.folder)

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.tally.add(table)
        if not self._buffer:
            self._since = time.monotonic()
        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= self.part_rows or time.monotonic() - self._since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write what waits as parts (of :data:`PART_ROWS` rows at most)."""
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer, self._buffered = [], 0
        for start in range(0, table.num_rows, self.part_rows):
            data = parquet_bytes(table.slice(start, self.part_rows), self.metadata)
            write_output(self.output, f"{self.folder}/{part_name(self.parts)}", data, self.settings)
            self.parts += 1
            self.bytes += len(data)

    def finish(self, metadata: dict) -> str:
        """Write the rows that wait and ``run.json`` (``metadata``: the run's settings, summary, failure)."""
        self.flush()
        info = json.dumps(
            {**metadata, "parts": self.parts, "rows": self.tally.rows}, indent=1, sort_keys=True
        )
        write_output(self.output, f"{self.folder}/{RUN_INFO}", info.encode(), self.settings)
        return self.uri


def manifest_parts(output: Location, settings: S3Settings, run_id: str | None = None) -> list[str]:
    """The keys of the manifest parts under OUTPUT (of one run, or of all), in run and part order."""
    under = f"{manifest_folder(run_id)}/" if run_id else MANIFEST_DIR
    names = []
    for key in output.keys(settings, under=under):
        name = key[len(MANIFEST_DIR) :]
        if not key.endswith(".parquet") or not name.startswith("manifest-"):
            continue
        if "/" not in name or (name.count("/") == 1 and name.split("/")[1].startswith("part-")):
            names.append(key)
    return sorted(names)


def read_parts(
    output: Location, keys: list[str], settings: S3Settings, columns: list[str] | None = None
) -> pa.Table:
    """Manifest parts as one table (``columns``: only these), in the order given."""
    schema = pa.schema([SCHEMA.field(name) for name in columns]) if columns else SCHEMA
    tables = []
    for key in keys:
        part = pq.ParquetFile(io.BytesIO(read_uri(output.join(key), settings)))
        present = [name for name in schema.names if name in part.schema_arrow.names]
        stored = part.read(columns=present).replace_schema_metadata(None)
        tables.append(conform(stored).select(schema.names))  # parts from before a column existed: nulls

    return pa.concat_tables(tables) if tables else schema.empty_table()


def newest_per_key(table: pa.Table) -> pa.Table:
    """The last row of each ``input_key`` (rows come in run and part order), sorted by input key."""
    if table.num_rows == 0:
        return table
    order = pa.table(
        {"input_key": table.column("input_key"), "row": pa.array(range(table.num_rows), pa.int64())}
    )
    last = order.group_by("input_key", use_threads=False).aggregate([("row", "max")])
    return table.take(last.column("row_max")).sort_by("input_key")


def read_manifest(output: str | Location, settings: S3Settings | None = None) -> pa.Table:
    """Every run's manifest under OUTPUT merged: the newest row per input key (empty when there are none)."""
    output = Location.parse(output) if isinstance(output, str) else output
    settings = settings or S3Settings.from_env()
    return newest_per_key(read_parts(output, manifest_parts(output, settings), settings))


def read_run_manifest(output: str | Location, run_id: str, settings: S3Settings | None = None) -> pa.Table:
    """One run's manifest: the union of its parts, a row per input it listed, sorted by input key."""
    output = Location.parse(output) if isinstance(output, str) else output
    settings = settings or S3Settings.from_env()
    return newest_per_key(read_parts(output, manifest_parts(output, settings, run_id), settings))


@dataclass(frozen=True)
class Summary:
    """What a run did: the counts, the throughput of the inputs it processed, and the failures by reason."""

    inputs: int
    counts: dict[str, int]
    earlier: int  # inputs done by an earlier run, carried over
    seconds: float  # wall time of the processing (start-up not included)
    images_per_second: float
    megapixels_per_second: float
    reasons: dict[str, int]
    frames: int = 0  # frames of the videos processed (ok)
    video_seconds: float = 0.0  # their duration

    def line(self) -> str:
        counts = ", ".join(f"{self.counts[status]} {status}" for status in STATUSES)
        text = (
            f"{self.inputs} inputs: {counts} ({self.earlier} done by earlier runs); "
            f"processed {self.inputs - self.earlier} in {self.seconds:.1f} s: "
            f"{self.images_per_second:.2f} images/s, {self.megapixels_per_second:.3f} megapixels/s"
        )
        if self.frames:
            rate = self.frames / self.seconds if self.seconds > 0 else 0.0
            text += (
                f"; videos: {self.frames} frames ({self.video_seconds:.1f} s of video), {rate:.2f} frames/s"
            )
        if self.reasons:
            text += "; errors: " + ", ".join(f"{reason} ×{n}" for reason, n in self.reasons.items())
        return text
