"""The Ray Data pipeline: the plan's parts → read + decode (CPU tasks) → the model (an actor pool) → encode + write.

Each stage is a plain function over a batch (a dict of NumPy columns, one row per input) that turns any
failure of a row into that row's ``status = "error"`` with a ``reason``: nothing raises out of a batch, so
Ray Data never drops a block because of one bad image, and every stage returns exactly the rows it got.
A row is pending while ``status`` is ""; ``payload`` carries what the next stage needs: the decoded image
(pickled between this job's own stages), or, for an input the task passes through untouched
(the options' ``passthrough_rule``: colorize's ``--skip-color`` on a colour image), the original file's bytes.

Only the model stage imports torch: the read and encode stages carry the task's pass-through rule, not the
task, so their Ray workers start without torch's import (~3 s of CPU each).

Error details name the input and the problem, never its content: a decoder's message that quotes the
file's bytes (Pillow's and ours have done so: ``b'root:x:0:0:root:'`` for ``/etc/passwd`` behind a link)
is withheld by :func:`safe_detail`, which the manifest and the command's output then never show.

The model stage is a callable class (:class:`Predictor`), so each actor loads the generator once, from the weights bytes the
driver put in the object store. Actors reserve a fixed amount of memory (a Ray logical resource), which
also keeps Ray Data from fusing the decode tasks into the actors: decoding runs in parallel CPU tasks while
the actors only run the model. A killed actor is restarted by Ray and its batch retried (Ray Data's
defaults for actor pools: ``max_restarts=-1``, ``max_task_retries=-1``).
"""

from __future__ import annotations

import io
import os
import pickle
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelplexus.io.formats import format_for_path
from pixelplexus.io.images import ImageDecodeError, ImageRecord, decode_image, encode_image
from pixelplexus.io.locations import (
    OUTSIDE,
    Location,
    OutsideInput,
    OutsideOutput,
    UnsafeKey,
    read_uri,
    write_output,
)
from pixelplexus.io.s3 import S3Settings

Batch = dict[str, np.ndarray]

BLOCK_BYTES = 4 << 20
"""The largest block the pipeline's stages emit (Ray Data's default is 128 MiB). The model actor hands on its
results a block at a time, and a block is only released when it is full or the actor's task ends: with
small blocks the encode tasks start on the first outputs while the actor runs the next batches, and the run
ends one small block after the model does, instead of waiting on a bundle of up to a hundred images."""

MODEL_ACTOR_MEMORY = 1 << 30
"""Memory a model actor reserves with Ray (the generator, one batch and torch's working set)."""


@dataclass(frozen=True)
class StageSettings:
    """What the stages need besides the rows: the S3 settings, where outputs go, and the rule that says
    which images pass through untouched (the options' ``passthrough_rule``; None: none do)."""

    s3: S3Settings
    output: Location
    passthrough: Callable[[ImageRecord], str | None] | None = None


def read_plan_part(batch: Batch, settings: StageSettings):
    """The first stage: each row names a plan part (``part``: its URI); returns the rows of those parts, the
    pipeline's input rows (where to read each input, its key and its output key)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(io.BytesIO(read_uri(uri, settings.s3))) for uri in batch["part"]]
    return pa.concat_tables(tables)


SIZES = ("input_bytes", "width", "height", "output_bytes", "output_width", "output_height")
COLUMNS = ("input", "input_key", "output_key", "status", "reason", "detail", "seconds", *SIZES)
"""The columns every stage returns (the manifest's, less ``run_id``); sizes are -1 while unknown."""


def _pack(record: ImageRecord) -> bytes:
    """A record as bytes for the next stage. Protocol 4 copies arrays out on loading (protocol 5 would make
    read-only views into the bytes, misaligned for uint16, which some encoders refuse)."""
    return pickle.dumps(record, protocol=4)


def _fail(row: dict[str, Any], reason: str, exc: BaseException | None = None, detail: str = "") -> None:
    detail = detail or (f"{type(exc).__name__}: {exc}" if exc else "")
    row.update(status="error", reason=reason, detail=detail, payload=b"")


ECHO = 8
"""A detail that shares this many characters in a row with its input is withheld."""

ECHO_HEAD = 64 << 10
ECHO_SCAN = 16 << 20
"""Bytes of an input searched for echoes: every piece in the head, aligned pieces up to ECHO_SCAN."""


def safe_detail(detail: str, data: bytes, *, reason: str) -> str:
    """``detail`` unless it may quote the input's content; then a fixed sentence with ``reason``.

    Withheld: a ``b'…'`` literal, any :data:`ECHO` characters in a row that also occur in the input's
    first :data:`ECHO_HEAD` bytes (where decoders read headers), and any run of 2·ECHO − 1 characters
    that occurs in its first :data:`ECHO_SCAN` bytes (such a run holds a piece that starts at a multiple
    of ECHO). A few scans of the input, on the error path only.
    """
    withheld = (
        f"{reason}; the decoder's message quoted the file's content and is withheld "
        "(open the file to see what it is)"
    )
    if re.search(r"""\bb(['"]).*?\1""", detail):
        return withheld
    encoded = detail.encode("utf-8", "replace")
    head, scan = data[:ECHO_HEAD], data[:ECHO_SCAN]
    for start in range(max(1, len(encoded) - ECHO + 1)):
        piece = encoded[start : start + ECHO]
        if len(piece) == ECHO and (piece in head or (start % ECHO == 0 and piece in scan)):
            return withheld
    return detail


def _rows(batch: Batch) -> list[dict[str, Any]]:
    names = list(batch)
    return [dict(zip(names, values)) for values in zip(*(batch[name] for name in names))]


def _batch(rows: list[dict[str, Any]], *, payload: bool) -> Batch:
    """Rows → columns: :data:`COLUMNS`, and ``payload`` when the next stage needs it."""
    out: Batch = {}
    for name in (*COLUMNS, "payload") if payload else COLUMNS:
        values = [row.get(name) for row in rows]
        if name in SIZES:
            out[name] = np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
        elif name == "seconds":
            out[name] = np.array([float(v or 0.0) for v in values], dtype=np.float64)
        else:
            out[name] = np.empty(len(values), dtype=object)
            out[name][:] = values
    return out


# ---------------------------------------------------------------------------------------- read + decode


def read_and_decode(batch: Batch, settings: StageSettings) -> Batch:
    """Read each input's bytes and decode them; the inputs the task passes through are marked so."""
    rows = _rows(batch)
    for row in rows:
        start = time.perf_counter()
        row.update(status="", reason="", detail="", payload=b"")
        try:
            data = read_uri(row["input"], settings.s3, within=row.get("within") or "")
        except OutsideInput as exc:  # swapped for a link after the listing
            _fail(row, OUTSIDE, detail=str(exc))
        except Exception as exc:
            _fail(row, "cannot read the input", exc)
        else:
            row["input_bytes"] = len(data)
            try:
                record = decode_image(data)
            except ImageDecodeError as exc:
                _fail(row, exc.reason, detail=safe_detail(str(exc), data, reason=exc.reason))
            except Exception as exc:  # MemoryError on a huge image, ...
                detail = safe_detail(f"{type(exc).__name__}: {exc}", data, reason="cannot decode image")
                _fail(row, "cannot decode image", detail=detail)
            else:
                row.update(width=record.width, height=record.height)
                passed = settings.passthrough and settings.passthrough(record)
                if passed:
                    row.update(status="skipped", reason=passed, payload=data)
                else:
                    row["payload"] = _pack(record)
        row["seconds"] = time.perf_counter() - start
    return _batch(rows, payload=True)


# ------------------------------------------------------------------------------------------------ model


class Predictor:
    """An actor of the model pool: loads the generator once, then runs ``Task.predict`` on pending rows.

    model: an ObjectRef of the driver's :class:`~pixelplexus.references.ResolvedModel` (or the model itself).
    options: the task's inference options; batch_size: images per network call.
    device: "cpu" or "cuda"; threads: torch threads on the CPU (None: the node's cores / ``concurrency``).
    """

    def __init__(
        self,
        model: Any,
        options: dict[str, Any],
        *,
        batch_size: int,
        device: str,
        threads: int | None,
        concurrency: int,
    ) -> None:
        import ray
        import torch

        from pixelplexus.tasks import inference_task

        if isinstance(model, ray.ObjectRef):
            model = ray.get(model)
        if device == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            torch.set_num_threads(threads or max(1, cores // concurrency))
        self.task = inference_task(model.info)
        self.options = self.task.parse_options(options)
        self.generator = model.load_for_inference(device)
        self.batch_size = batch_size

    def __call__(self, batch: Batch) -> Batch:
        rows = _rows(batch)
        pending = [row for row in rows if row["status"] == ""]
        if pending:
            records = [pickle.loads(row["payload"]) for row in pending]
            start = time.perf_counter()
            # one image too large for memory, ...: only it fails, the others are kept
            results = self.task.predict_or_errors(
                self.generator, records, self.options, batch_size=self.batch_size
            )
            share = (time.perf_counter() - start) / len(pending)
            for row, result in zip(pending, results):
                row["seconds"] += share
                if isinstance(result, Exception):
                    _fail(row, "model failed", result)
                else:
                    row.update(output_width=result.width, output_height=result.height)
                    row["payload"] = _pack(result)
        return _batch(rows, payload=True)


# ------------------------------------------------------------------------------------------ encode + write


def fail_write(row: dict[str, Any], exc: Exception) -> None:
    """Mark ``row`` failed for an output that could not be written, with the reason that says why."""
    if isinstance(exc, UnsafeKey):  # planning refuses these first; this is the last line of defence
        _fail(row, "unsafe key", exc)
    elif isinstance(exc, OutsideOutput):
        _fail(row, "output path leaves OUTPUT", detail=str(exc))
    else:
        _fail(row, "cannot write the output", exc)


def encode_and_write(batch: Batch, settings: StageSettings) -> Batch:
    """Encode each result in its output key's format and write it atomically; pass-throughs are copied."""
    rows = _rows(batch)
    for row in rows:
        if row["status"] == "error":
            continue
        start = time.perf_counter()
        try:
            if row["status"] == "skipped":
                data = row["payload"]
                row.update(output_width=row["width"], output_height=row["height"])
            else:
                record = pickle.loads(row["payload"])
                data = encode_image(record, format_for_path(row["output_key"]))
        except Exception as exc:
            _fail(row, "cannot encode the result", exc)
        else:
            try:
                write_output(settings.output, row["output_key"], data, settings.s3)
            except Exception as exc:
                fail_write(row, exc)
            else:
                row["output_bytes"] = len(data)
                if row["status"] == "":
                    row["status"] = "ok"
        row["seconds"] += time.perf_counter() - start
    return _batch(rows, payload=False)
