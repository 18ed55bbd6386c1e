"""Tables too large to hold at once, cut into ranges of a sorted key and spilled to a local folder.

A batch driver plans millions of inputs one range of input keys at a time (``docs/scaling.md``): the
listing, and every earlier run's manifest, are written here cut at the same key bounds
(:meth:`Spill.cut`), then read back a range at a time, so that the driver's memory is one range's, not the
whole input's. The folder is a local temporary one (under :func:`tempfile.gettempdir`), removed by
:meth:`Spill.close` or, failing that, when the :class:`Spill` is garbage collected.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

RANGE_ROWS = 25_000  # keys of a range at least: the driver holds about one range's rows at a time
MAX_RANGES = 256  # ranges at most (files open at once while cutting): beyond, ranges grow


def range_starts(count: int) -> list[int]:
    """Where each range of ``count`` sorted keys starts (a range has RANGE_ROWS keys, or more beyond
    MAX_RANGES ranges)."""
    size = max(RANGE_ROWS, -(-count // MAX_RANGES))
    return list(range(0, max(count, 1), size))


class Spill:
    """A local temporary folder of Parquet files, one table each, read back one at a time."""

    def __init__(self, prefix: str) -> None:
        self.folder = tempfile.mkdtemp(prefix=prefix)
        self._remove = weakref.finalize(self, shutil.rmtree, self.folder, True)

    def path(self, name: str) -> str:
        return os.path.join(self.folder, f"{name}.parquet")

    def write(self, name: str, table: pa.Table) -> str:
        path = self.path(name)
        pq.write_table(table, path)
        return path

    def cut(
        self, name: str, tables: Iterable[pa.Table], column: str, bounds: pa.Array, schema: pa.Schema
    ) -> list[str]:
        """Write ``tables`` (rows in their order) as one file per range of ``column``: range 0 below
        ``bounds[0]``, range i from ``bounds[i-1]`` up to ``bounds[i]`` (nulls in range 0); returns the
        files, empty ranges included."""
        paths = [self.path(f"{name}-{i:05d}") for i in range(len(bounds) + 1)]
        writers: dict[int, pq.ParquetWriter] = {}
        try:
            for table in tables:
                keys = table.column(column)
                which = pa.array([0] * table.num_rows, pa.int32())
                for bound in bounds:
                    which = pc.add(which, pc.greater_equal(keys, bound).fill_null(False).cast(pa.int32()))
                for index in pc.unique(which).to_pylist():
                    if index not in writers:
                        writers[index] = pq.ParquetWriter(paths[index], schema)
                    writers[index].write_table(table.filter(pc.equal(which, index)))
        finally:
            for writer in writers.values():
                writer.close()
        for index, path in enumerate(paths):
            if index not in writers:
                pq.write_table(schema.empty_table(), path)
        return paths

    def close(self) -> None:
        self._remove()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read(path: str) -> pa.Table:
    """A spilled table, whole."""
    return pq.read_table(path)
