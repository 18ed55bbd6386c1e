"""The manifest: one Parquet row per input, so that every image of a batch is accounted for.

Each run writes its own file, ``OUTPUT/_pixelplexus/manifest-<run id>.parquet`` (run ids sort by start
time), with a row for *every* input it listed: those it processed (status ``ok``, ``error`` or ``skipped``)
and those an earlier run had already done, whose earlier row is carried over unchanged (its ``run_id`` says
which run did it). So the newest file alone answers "what is the state of this OUTPUT", and
``inputs = ok + error + skipped`` holds for every file. :func:`read_manifest` merges all of them, keeping the
newest row per input — which also covers inputs that only older runs listed (a different list file, say).

Columns: ``input`` (where it was read), ``input_key`` / ``output_key`` (relative to INPUT / OUTPUT),
``status``, ``reason`` (short and stable: group failures by it), ``detail`` (the full message),
``input_bytes``, ``width``/``height`` (decoded, EXIF orientation applied), ``output_bytes``,
``output_width``/``output_height``, ``seconds`` (this input's share of the work) and ``run_id``.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pixelplexus.io.locations import RESERVED, Location, read_uri, write_output
from pixelplexus.io.s3 import S3Settings

MANIFEST_DIR = f"{RESERVED}/"
STATUSES = ("ok", "error", "skipped")

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
        ("run_id", pa.string()),
    ]
)


def new_run_id() -> str:
    """``20261121T101502.123Z-3fa9c1``: UTC start time to the millisecond (sorts in run order), random suffix."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}Z-{secrets.token_hex(3)}"


def manifest_key(run_id: str) -> str:
    return f"{MANIFEST_DIR}manifest-{run_id}.parquet"


def to_table(rows: list[dict]) -> pa.Table:
    """Manifest rows (dicts with the schema's columns; missing numbers are null) → a table."""
    return pa.Table.from_pylist([{name: row.get(name) for name in SCHEMA.names} for row in rows], SCHEMA)


def write_manifest(
    output: Location, table: pa.Table, run_id: str, metadata: dict, settings: S3Settings
) -> str:
    """Write one run's manifest (``metadata``: the run's settings, JSON) and return its URI."""
    table = table.cast(SCHEMA).replace_schema_metadata({"pixelplexus": json.dumps(metadata, sort_keys=True)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return write_output(output, manifest_key(run_id), buffer.getvalue(), settings)


def read_manifest(output: str | Location, settings: S3Settings | None = None) -> pa.Table:
    """All runs' manifests under OUTPUT merged: the newest row per input key (empty when there are none)."""
    output = Location.parse(output) if isinstance(output, str) else output
    settings = settings or S3Settings.from_env()
    names = sorted(
        key
        for key in output.keys(settings, under=MANIFEST_DIR)
        if key.startswith(MANIFEST_DIR + "manifest-") and key.endswith(".parquet")
    )
    if not names:
        return SCHEMA.empty_table()
    tables = [pq.read_table(io.BytesIO(read_uri(output.join(name), settings))).cast(SCHEMA) for name in names]
    merged = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    newest: dict[str, int] = {key: i for i, key in enumerate(merged.column("input_key").to_pylist())}
    return merged.take(sorted(newest.values())).sort_by("input_key")


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

    @classmethod
    def of(cls, table: pa.Table, run_id: str, seconds: float) -> Summary:
        statuses = Counter(table.column("status").to_pylist())
        mine = table.filter(pc.equal(table.column("run_id"), run_id))
        pixels = pc.multiply(mine.column("width"), mine.column("height"))
        megapixels = (pc.sum(pixels).as_py() or 0) / 1e6
        errors = table.filter(pc.equal(table.column("status"), "error"))
        return cls(
            inputs=table.num_rows,
            counts={status: statuses.get(status, 0) for status in STATUSES},
            earlier=table.num_rows - mine.num_rows,
            seconds=seconds,
            images_per_second=mine.num_rows / seconds if seconds > 0 else 0.0,
            megapixels_per_second=megapixels / seconds if seconds > 0 else 0.0,
            reasons=dict(Counter(errors.column("reason").to_pylist()).most_common()),
        )

    def line(self) -> str:
        counts = ", ".join(f"{self.counts[status]} {status}" for status in STATUSES)
        text = (
            f"{self.inputs} inputs: {counts} ({self.earlier} done by earlier runs); "
            f"processed {self.inputs - self.earlier} in {self.seconds:.1f} s: "
            f"{self.images_per_second:.2f} images/s, {self.megapixels_per_second:.3f} megapixels/s"
        )
        if self.reasons:
            text += "; errors: " + ", ".join(f"{reason} ×{n}" for reason, n in self.reasons.items())
        return text
