"""Where a batch reads and writes: local folders and ``s3://bucket/prefix``, and lists of inputs.

Training's validation sets are read through the same lists (:func:`list_inputs`).

INPUT is a folder or prefix (listed recursively; image and video extensions in any case), one image or
video file (its key is its name), or a list file — ``.txt`` /
``.lst`` with one path or key per line, or a ``.csv`` / ``.parquet`` column. A relative entry of a list is
relative to the folder the list file is in; an absolute one (``/data/a.jpg``, ``s3://bucket/a.jpg``) is used
as it is. Every input gets a *key*: its path relative to INPUT (or to the list's folder), which is also where
its output goes under OUTPUT.

S3 goes through :mod:`pixelplexus.io.s3`: the driver's :class:`~pixelplexus.io.s3.S3Settings` travel with
the stages. Writes are atomic: a local file is written to a hidden temporary name in the same folder and
renamed (:func:`~pixelplexus.io.files.write_atomic`); an S3 object appears whole.

Keys are data, not instructions (:func:`check_key` is the one place that decides): a key is a relative
POSIX path whose segments are not empty, ``.`` or ``..``, with no backslash and no control character. A
key that breaks a rule is never rewritten: its input becomes a refused :class:`InputItem` (an error row
in the manifest) and nothing is read or written for it. Local outputs are written by :func:`write_output`,
which walks OUTPUT's sub-folders without following symbolic links (``O_NOFOLLOW`` on each one, relative to
the previous folder's descriptor), so that a link planted inside OUTPUT cannot send a write elsewhere, and
never writes through a link at the final name either. A local input that is a symbolic link to a file
outside INPUT (or a folder link leading out of it) is refused unless ``follow_symlinks``.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import posixpath
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pixelplexus.io.files import scheme_of, write_atomic
from pixelplexus.io.formats import INPUT_EXTENSIONS, VIDEO_EXTENSIONS
from pixelplexus.io.s3 import S3Reader, S3Settings, s3_error, split_s3

LIST_EXTENSIONS = (".txt", ".lst", ".csv", ".parquet")
LIST_COLUMNS = ("key", "path", "uri", "input")  # tried in this order when a table has several columns


class LocationError(OSError):
    """An INPUT or OUTPUT that cannot be used: missing folder or bucket, access denied, bad list file."""


class UnsafeKey(ValueError):
    """A key (or list entry) that could name a place outside INPUT or OUTPUT; the message says which rule."""


class OutsideInput(OSError):
    """A local input that is a link leading outside INPUT, read without ``follow_symlinks``."""


class OutsideOutput(OSError):
    """A write that would leave OUTPUT through a symbolic link (or land on one)."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DRIVE = re.compile(r"^[A-Za-z]:$")
RESERVED = "_pixelplexus"  # OUTPUT's own folder (manifests, lease): no input's output goes there


def check_key(key: str) -> str:
    """``key`` itself when it is a safe relative key, else :class:`UnsafeKey` naming the broken rule.

    Safe: not empty, no control character (NUL and newline included), no backslash (a separator on
    Windows and in some sync tools), not absolute, and no empty, ``.`` or ``..`` segment. Nothing is
    normalised away: ``a/./b.png`` is refused, not read as ``a/b.png``, so that what is written is exactly
    what was listed.
    """
    if not key:
        raise UnsafeKey("the key is empty")
    if _CONTROL.search(key):
        raise UnsafeKey("the key has a control character (NUL, newline, ...)")
    if "\\" in key:
        raise UnsafeKey("the key has a backslash")
    if key.startswith("/"):
        raise UnsafeKey("the key is absolute")
    segments = key.split("/")
    if _DRIVE.match(segments[0]):
        raise UnsafeKey("the key starts with a drive letter")
    for segment in segments:
        if segment in ("", ".", ".."):
            what = "an empty" if segment == "" else f"a {segment!r}"
            raise UnsafeKey(f"the key has {what} segment")
    return key


def printable(text: str) -> str:
    """``text`` with backslashes doubled and control characters as ``\\xNN``: one line, and distinct texts
    stay distinct (a refused key is recorded this way)."""
    text = text.replace("\\", "\\\\")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@dataclass(frozen=True)
class Location:
    """A local folder or an S3 prefix. ``root`` is the folder path, or the prefix ("" or ending in "/")."""

    uri: str
    bucket: str | None
    root: str

    @classmethod
    def parse(cls, text: str) -> Location:
        scheme = scheme_of(text)
        if scheme == "s3":
            bucket, prefix = split_s3(text)
            if prefix.strip("/"):
                try:
                    check_key(prefix.rstrip("/"))
                except UnsafeKey as exc:
                    raise LocationError(f"{text}: the prefix is not a clean key ({exc})") from None
            return cls(text, bucket, prefix.rstrip("/") + "/" if prefix.strip("/") else "")
        if scheme not in ("", "file"):
            raise LocationError(f"{text}: INPUT and OUTPUT are local folders or s3://bucket/prefix URIs")
        path = text[len("file://") :] if scheme == "file" else text
        return cls(text, None, os.path.abspath(os.path.expanduser(path)))

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def join(self, key: str) -> str:
        """The URI (or local path) of ``key`` under this location; :class:`UnsafeKey` for an unsafe key."""
        check_key(key)
        if self.is_s3:
            return f"s3://{self.bucket}/{self.root}{key}"
        return os.path.join(self.root, *key.split("/"))

    def check(self, settings: S3Settings, *, create: bool = False) -> None:
        """Fail early with the reason when the folder or bucket cannot be used (``create``: make the folder)."""
        if self.is_s3:
            try:
                settings.client().head_bucket(Bucket=self.bucket)
            except Exception as exc:
                raise _s3_problem(exc, self.uri) from None
        elif create:
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise LocationError(f"cannot create the output folder {self.uri}: {exc}") from None
        elif not os.path.isdir(self.root):
            raise LocationError(f"{self.uri}: no such folder")

    def keys(self, settings: S3Settings, *, under: str = "") -> Iterator[str]:
        """Every file below this location (or below its ``under`` sub-folder), as keys relative to it.

        Keys come as stored (S3 keys may be unsafe: see :func:`check_key`); local links are neither
        listed nor descended (a link in OUTPUT is no output)."""
        if self.is_s3:
            pages = settings.client().get_paginator("list_objects_v2")
            try:
                for page in pages.paginate(Bucket=self.bucket, Prefix=self.root + under):
                    for item in page.get("Contents", ()):
                        yield item["Key"][len(self.root) :]
            except Exception as exc:
                raise _s3_problem(exc, self.uri) from None
            return
        top = os.path.join(self.root, under)
        if not os.path.isdir(top):
            return
        for folder, dirs, files in os.walk(top, onerror=_raise):
            dirs.sort()
            relative = os.path.relpath(folder, self.root)
            for name in sorted(files):
                if not os.path.islink(os.path.join(folder, name)):
                    yield name if relative == "." else posixpath.join(*Path(relative).parts, name)


def _raise(exc: OSError) -> None:
    raise LocationError(f"cannot list {exc.filename}: {exc.strerror}")


def _s3_problem(exc: Exception, uri: str) -> LocationError:
    """An S3 failure on INPUT or OUTPUT (a bucket or prefix), in :func:`~pixelplexus.io.s3.s3_error`'s words."""
    return LocationError(str(s3_error(exc, uri)))


# ------------------------------------------------------------------------------------------------ reading


def read_uri(uri: str, settings: S3Settings, *, within: str = "") -> bytes:
    """The bytes of a local file or an S3 object.

    within: a local file's real path must lie in this real folder when it is opened (a file swapped for
    a link out of INPUT after the listing is refused with :class:`OutsideInput`, not read).
    """
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
        return settings.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    with open_input(uri, settings, within=within) as f:
        return f.read()


def open_input(uri: str, settings: S3Settings, *, within: str = "") -> BinaryIO:
    """A local file or an S3 object opened for reading and seeking (S3: ranged reads,
    :class:`~pixelplexus.io.s3.S3Reader`); ``within`` as for :func:`read_uri`. The caller closes it."""
    if uri.startswith("s3://"):
        return io.BufferedReader(S3Reader(settings, uri), buffer_size=1 << 20)
    f = open(uri, "rb")
    if within:
        opened = f"/proc/self/fd/{f.fileno()}"  # what was opened, not what the name says now
        real = os.readlink(opened) if os.path.islink(opened) else os.path.realpath(uri)
        if not _within(real, within):
            f.close()
            raise OutsideInput(f"{uri} links to a file outside INPUT; pass --follow-symlinks to read it")
    return f


# ------------------------------------------------------------------------------------------------ writing

# os.replace takes dir_fd wherever os.rename does (both are renameat)
_NO_FOLLOW = hasattr(os, "O_NOFOLLOW") and {os.open, os.mkdir, os.stat, os.rename} <= os.supports_dir_fd
_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


def write_output(output: Location, key: str, data: bytes, settings: S3Settings) -> str:
    """Write ``data`` atomically at ``key`` under OUTPUT, and only there; returns its URI.

    Raises :class:`UnsafeKey` for an unsafe key and :class:`OutsideOutput` when a sub-folder on the way,
    or the file itself, is a symbolic link: sub-folders are opened one by one with ``O_NOFOLLOW``
    relative to the previous one (so the resolved path is inside OUTPUT's real path by construction, with
    no window between a check and the write), and the file is renamed into place, which replaces a
    directory entry and never writes through one. OUTPUT itself may be a link: the user named it.
    """
    uri = output.join(key)
    if output.is_s3:
        settings.client().put_object(Bucket=output.bucket, Key=output.root + key, Body=data)
        return uri
    *folders, name = key.split("/")
    if not _NO_FOLLOW:  # no O_NOFOLLOW / dir_fd here (Windows): check the resolved path instead
        real_root = os.path.realpath(output.root)
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        if os.path.islink(uri) or not _within(os.path.realpath(os.path.dirname(uri)), real_root):
            raise OutsideOutput(f"{uri} is outside OUTPUT's real path {real_root} (a symbolic link)")
        write_atomic(uri, data)
        return uri
    fd = open_folder(output.root, folders, create=True)
    try:
        _refuse_link(fd, name, uri)
        write_atomic(name, data, dir_fd=fd)
    finally:
        os.close(fd)
    return uri


@contextlib.contextmanager
def output_file(output: Location, key: str, settings: S3Settings) -> Iterator[BinaryIO]:
    """A file to write ``key`` under OUTPUT into, for outputs too large to hold (a video): put in place
    atomically when the ``with`` block ends without error, removed when it raises.

    Local: a hidden temporary file in the output's folder, reached as :func:`write_output` reaches one
    (never through a link), then renamed over ``key``. S3: a local temporary file, uploaded at the end
    (multipart for large files; the object appears whole)."""
    uri = output.join(key)
    if output.is_s3:
        with tempfile.TemporaryFile() as f:
            yield f
            f.flush()
            f.seek(0)
            settings.client().upload_fileobj(f, output.bucket, output.root + key)
        return
    *folders, name = key.split("/")
    if _NO_FOLLOW:
        fd = open_folder(output.root, folders, create=True)
    else:  # no O_NOFOLLOW / dir_fd here (Windows): check the resolved path instead
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        if os.path.islink(uri) or not _within(
            os.path.realpath(os.path.dirname(uri)), os.path.realpath(output.root)
        ):
            raise OutsideOutput(f"{uri} is outside OUTPUT's real path (a symbolic link)")
        fd, name = None, uri
    try:
        if fd is not None:
            _refuse_link(fd, name, uri)
        folder, base = os.path.split(name)
        temporary = os.path.join(folder, f".{base}.{secrets.token_hex(8)}.tmp")
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        handle = os.open(temporary, flags, 0o666, dir_fd=fd)
        try:
            with os.fdopen(handle, "w+b") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=fd)
            raise
    finally:
        if fd is not None:
            os.close(fd)


def remove_folder(output: Location, key: str, settings: S3Settings) -> None:
    """Remove the folder (S3: the prefix) ``key`` under OUTPUT and the files in it; nothing if it is missing.

    Only for folders of files a run wrote itself (a run's plan): sub-folders are not descended, and
    the folder is reached as :func:`write_output` reaches one, never through a link.
    """
    check_key(key)
    if output.is_s3:
        client = settings.client()
        for name in list(output.keys(settings, under=key + "/")):
            client.delete_object(Bucket=output.bucket, Key=output.root + name)
        return
    *folders, name = key.split("/")
    try:
        parent = open_folder(output.root, folders, create=False)
    except FileNotFoundError:
        return
    try:
        try:
            fd = os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError:
            return
        try:
            for entry in os.listdir(fd):
                os.unlink(entry, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent)
    finally:
        os.close(parent)


def open_folder(root: str, folders: list[str], *, create: bool) -> int:
    """A descriptor of ``root/folders…``, each folder opened without following links (made if ``create``).

    Raises :class:`OutsideOutput` when one of ``folders`` is a symbolic link; the caller closes the fd.
    """
    fd = os.open(root, _FOLDER)
    try:
        for depth, folder in enumerate(folders):
            try:
                child = os.open(folder, _FOLDER | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(folder, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                child = os.open(folder, _FOLDER | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    _refuse_link(fd, folder, os.path.join(root, *folders[: depth + 1]))
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_link(fd: int, name: str, shown: str) -> None:
    try:
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise OutsideOutput(
            f"{shown} is a symbolic link: outputs are never written through links (it could lead outside "
            "OUTPUT); remove the link or choose another OUTPUT"
        )


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# ------------------------------------------------------------------------------------------------ inputs

UNSAFE = "unsafe key"
OUTSIDE = "symlink points outside INPUT"
NOT_AN_IMAGE = "not an image file name"
BAD_ENTRY = "bad list entry"


@dataclass(frozen=True)
class InputItem:
    """One input: where to read it and its key (its path relative to INPUT, and to OUTPUT).

    A *refused* input has a ``reason`` (and a ``detail`` naming it and the fix): it becomes an error row,
    and nothing is read or written for it. Its ``uri`` and ``key`` are then as listed, made
    :func:`printable`. ``within``: the real folder a local input must still lie in when it is read.
    """

    uri: str
    key: str
    reason: str = ""
    detail: str = ""
    within: str = ""


def _refused(uri: str, key: str, reason: str, detail: str) -> InputItem:
    return InputItem(printable(uri), printable(key), reason, detail)


def is_input_key(key: str) -> bool:
    """Whether a batch reads ``key``: an image or a video (:data:`~pixelplexus.io.formats.INPUT_EXTENSIONS`)."""
    return posixpath.splitext(key)[1].lower() in INPUT_EXTENSIONS


def is_video_key(key: str) -> bool:
    return posixpath.splitext(key)[1].lower() in VIDEO_EXTENSIONS


def scan_inputs(
    text: str,
    settings: S3Settings,
    *,
    column: str | None = None,
    exclude: Location | None = None,
    follow_symlinks: bool = False,
) -> list[InputItem]:
    """The inputs INPUT names, refused ones included, sorted by key (see the module docs for the rules).

    exclude: skip files under OUTPUT when it lies inside INPUT; follow_symlinks: read local links that
    lead outside INPUT (or outside a list's folder) instead of refusing them. A list that names a key
    twice keeps its first entry. A batch run takes the same inputs as a table (:func:`scan_table`).
    """
    items, seen = [], set()
    for item in iter_inputs(text, settings, column=column, exclude=exclude, follow_symlinks=follow_symlinks):
        if item.key not in seen:
            seen.add(item.key)
            items.append(item)
    return sorted(items, key=lambda item: item.key)


INPUT_COLUMNS = ("uri", "key", "reason", "detail", "within")
SCAN_CHUNK = 10_000  # inputs turned into Arrow at a time while listing


class Listing:
    """:func:`scan_inputs` for millions of inputs: the keys in memory, the rows on disk by key range.

    ``keys`` is every input's key, sorted, once each (a list's first entry wins), and ``refused`` says
    (aligned with it) which inputs have a ``reason``; :meth:`ranges` reads the rows (columns
    :data:`INPUT_COLUMNS`) back one range of keys at a time, from a local temporary folder
    (:class:`~pixelplexus.io.ranges.Spill`) that :meth:`close` removes.
    """

    def __init__(self, keys, refused, starts: list[int], paths: list[str], spill) -> None:
        self.keys, self.refused, self.starts, self.paths, self.spill = keys, refused, starts, paths, spill

    @property
    def num_rows(self) -> int:
        return len(self.keys)

    def ranges(self):
        """``(start, table)`` per range of keys, in key order: ``table`` holds ``keys[start:start + n]``'s rows."""
        from pixelplexus.io.ranges import read

        for start, path in zip(self.starts, self.paths):
            table = read(path).sort_by([("key", "ascending"), ("order", "ascending")])
            yield start, _first_of_each_key(table).drop_columns(["order"])

    def close(self) -> None:
        self.spill.close()

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan_table(
    text: str,
    settings: S3Settings,
    *,
    column: str | None = None,
    exclude: Location | None = None,
    follow_symlinks: bool = False,
) -> Listing:
    """The inputs of :func:`scan_inputs` as a :class:`Listing`, for millions of inputs.

    The listing is turned into Arrow :data:`SCAN_CHUNK` inputs at a time and written to a local
    temporary file, so no Python object per input outlives its chunk, and only the key column stays in
    memory; the keys are sorted (duplicates: the first entry wins) and the rows cut into ranges of keys
    (:mod:`pixelplexus.io.ranges`), which are sorted one at a time when read.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pixelplexus.io.ranges import Spill, range_starts

    schema = pa.schema([(name, pa.string()) for name in INPUT_COLUMNS] + [("order", pa.int64())])
    spill = Spill("pixelplexus-listing-")
    keys, refused = [pa.array([], pa.string())], [pa.array([], pa.bool_())]
    listing = iter_inputs(text, settings, column=column, exclude=exclude, follow_symlinks=follow_symlinks)
    with pq.ParquetWriter(spill.path("listing"), schema) as writer:
        for batch in _batches(listing, schema):
            writer.write_batch(batch)
            keys.append(batch.column("key"))
            refused.append(pc.not_equal(batch.column("reason"), ""))
    everyone, flags = pa.concat_arrays(keys), pa.concat_arrays(refused)
    del keys, refused
    by_key = pc.sort_indices(everyone)  # stable: of equal keys, the first listed comes first
    first = _first_of_each_key(pa.table({"key": everyone.take(by_key), "row": by_key}))
    del everyone, by_key
    keys = first.column("key").combine_chunks()
    flags = flags.take(first.column("row"))
    del first
    starts = range_starts(len(keys))
    bounds = keys.take(pa.array(starts[1:], pa.int64()))
    rows = pq.ParquetFile(spill.path("listing"))
    paths = spill.cut(
        "range", (pa.Table.from_batches([b]) for b in rows.iter_batches(SCAN_CHUNK)), "key", bounds, schema
    )
    rows.close()
    os.remove(spill.path("listing"))
    return Listing(keys, flags, starts, paths, spill)


def _first_of_each_key(table):
    """``table`` (sorted by key) less every row whose key is the previous row's."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows < 2:
        return table
    keys = table.column("key")
    first = pc.not_equal(keys.slice(1), keys.slice(0, table.num_rows - 1))
    return table.filter(pa.concat_arrays([pa.array([True]), first.combine_chunks()]))


def _batches(items: Iterator[InputItem], schema):
    """``items`` as Arrow record batches of :data:`SCAN_CHUNK` rows, numbered in listing order (``order``)."""
    import pyarrow as pa

    def batch(chunk: list[InputItem], start: int):
        columns = [pa.array([getattr(item, name) for item in chunk], pa.string()) for name in INPUT_COLUMNS]
        order = pa.array(range(start, start + len(chunk)), pa.int64())
        return pa.RecordBatch.from_arrays([*columns, order], schema=schema)

    chunk, start = [], 0
    for item in items:
        chunk.append(item)
        if len(chunk) == SCAN_CHUNK:
            yield batch(chunk, start)
            chunk, start = [], start + SCAN_CHUNK
    if chunk:
        yield batch(chunk, start)


def iter_inputs(
    text: str,
    settings: S3Settings,
    *,
    column: str | None = None,
    exclude: Location | None = None,
    follow_symlinks: bool = False,
) -> Iterator[InputItem]:
    """The inputs INPUT names, as they are listed: in no particular order, a list's duplicates included."""
    if posixpath.splitext(text)[1].lower() in LIST_EXTENSIONS:
        yield from _list_file(text, settings, column, follow_symlinks)
        return
    if is_input_key(text) and _is_file(text, settings):  # one image or video: as a list naming just it
        folder = posixpath.dirname(text) if text.startswith("s3://") else os.path.dirname(text) or "."
        base = Location.parse(folder)
        if exclude is not None and (exclude.bucket, exclude.root.rstrip("/")) == (
            base.bucket,
            base.root.rstrip("/"),
        ):
            raise LocationError(
                f"OUTPUT is the folder of INPUT ({text}): the output would replace the original; write elsewhere"
            )
        real_base = "" if base.is_s3 or follow_symlinks else os.path.realpath(base.root)
        yield _item(posixpath.basename(text) if base.is_s3 else os.path.basename(text), base, real_base)
        return
    source = Location.parse(text)
    source.check(settings)
    skip = _inside(exclude, source)
    if skip == "":
        raise LocationError(f"OUTPUT is INPUT ({text}): outputs would replace the originals; write elsewhere")
    if source.is_s3:
        for key in source.keys(settings):
            if not is_input_key(key) or (skip and key.startswith(skip)):
                continue
            try:
                yield InputItem(source.join(key), key)
            except UnsafeKey as exc:
                uri = f"s3://{source.bucket}/{source.root}{key}"
                yield _refused(uri, key, UNSAFE, _unsafe_detail(key, exc, "rename the object"))
    else:
        yield from _local_items(source.root, skip, follow_symlinks)


def _is_file(text: str, settings: S3Settings) -> bool:
    """Whether INPUT names one file (a local file, or an S3 object) rather than a folder or prefix."""
    if text.startswith("s3://"):
        bucket, key = split_s3(text)
        try:
            settings.client().head_object(Bucket=bucket, Key=key)
        except Exception:
            return False
        return True
    path = text[len("file://") :] if text.startswith("file://") else text
    return os.path.isfile(path)


def list_inputs(
    text: str, settings: S3Settings, *, column: str | None = None, exclude: Location | None = None
) -> list[InputItem]:
    """The images a reader may use (training's validation sets): :func:`scan_inputs` less refused ones
    and videos, following links (reading never writes)."""
    items = scan_inputs(text, settings, column=column, exclude=exclude, follow_symlinks=True)
    return [item for item in items if not item.reason and not is_video_key(item.key)]


def _unsafe_detail(key: str, exc: Exception, fix: str) -> str:
    return f"'{printable(key)}': {exc}; keys must stay below INPUT and OUTPUT: {fix}"


def _local_items(root: str, skip: str | None, follow: bool) -> Iterator[InputItem]:
    """The image files below a local folder: links out of it refused unless ``follow`` (then each real
    folder is walked once, so link cycles end)."""
    real_root = os.path.realpath(root)
    walked: set[str] = set()
    for folder, dirs, files in os.walk(root, onerror=_raise, followlinks=follow):
        dirs.sort()
        if follow:
            real = os.path.realpath(folder)
            if real in walked:
                dirs[:] = []
                continue
            walked.add(real)
        relative = os.path.relpath(folder, root)
        prefix = "" if relative == "." else "/".join(Path(relative).parts) + "/"
        for name in dirs if not follow else ():
            path = os.path.join(folder, name)
            if os.path.islink(path) and not _within(os.path.realpath(path), real_root):
                detail = (
                    f"{path} links to a folder outside INPUT; pass --follow-symlinks to read the images in it"
                )
                yield _refused(path, prefix + name, OUTSIDE, detail)
        for name in sorted(files):
            key, path = prefix + name, os.path.join(folder, name)
            if not is_input_key(key) or (skip and key.startswith(skip)):
                continue
            try:
                check_key(key)
            except UnsafeKey as exc:
                yield _refused(path, key, UNSAFE, _unsafe_detail(key, exc, "rename the file"))
                continue
            if not follow and os.path.islink(path) and not _within(os.path.realpath(path), real_root):
                detail = f"{printable(path)} links to a file outside INPUT; pass --follow-symlinks to read it"
                yield _refused(path, key, OUTSIDE, detail)
                continue
            yield InputItem(path, key, within="" if follow else real_root)


def _inside(inner: Location | None, outer: Location) -> str | None:
    """``inner``'s root relative to ``outer`` ("sub/dir/") when it lies inside it, else None."""
    if inner is None or inner.bucket != outer.bucket:
        return None
    if inner.is_s3:
        return inner.root[len(outer.root) :] if inner.root.startswith(outer.root) else None
    relative = os.path.relpath(inner.root, outer.root)
    if relative == "." or relative.startswith(".."):
        return "" if relative == "." else None
    return "/".join(Path(relative).parts) + "/"


def _list_file(text: str, settings: S3Settings, column: str | None, follow: bool) -> Iterator[InputItem]:
    try:
        data = read_uri(text, settings) if text.startswith("s3://") else Path(text).read_bytes()
    except Exception as exc:
        problem = _s3_problem(exc, text) if text.startswith("s3://") else exc
        raise LocationError(f"cannot read the input list {text}: {problem}") from None
    entries = _entries(data, posixpath.splitext(text)[1].lower(), column, text)
    del data
    base = Location.parse(
        posixpath.dirname(text) if text.startswith("s3://") else os.path.dirname(text) or "."
    )
    real_base = "" if base.is_s3 or follow else os.path.realpath(base.root)
    named = False
    for entry in entries:
        named = True
        yield _item(entry, base, real_base)
    if not named:
        raise LocationError(f"the input list {text} names no files")


_LINE = re.compile("[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")  # a line, as str.splitlines cuts


def _entries(data: bytes, extension: str, column: str | None, source: str) -> Iterator[str] | list[str]:
    if extension in (".txt", ".lst"):
        if column:
            raise LocationError(f"--column is for .csv and .parquet lists, not {source}")
        # one line at a time (where str.splitlines splits), not a list of them
        lines = (m.group() for m in _LINE.finditer(data.decode("utf-8-sig")))
        return (line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if extension == ".csv":
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        names = list(rows[0]) if rows else []
        name = _pick_column(names, column, source)
        return [row[name].strip() for row in rows if (row.get(name) or "").strip()]
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:
        raise LocationError(f"cannot read the input list {source}: {exc}") from None
    name = _pick_column(table.column_names, column, source)
    return [str(value).strip() for value in table.column(name).to_pylist() if value and str(value).strip()]


def _pick_column(names: list[str], column: str | None, source: str) -> str:
    if column is not None:
        if column not in names:
            raise LocationError(f"{source} has no column {column!r}; its columns: {', '.join(names)}")
        return column
    if len(names) == 1:
        return names[0]
    for name in LIST_COLUMNS:
        if name in names:
            return name
    raise LocationError(
        f"{source} has columns {', '.join(names) or '(none)'}: say which one holds the inputs with --column"
    )


def _item(entry: str, base: Location, real_base: str) -> InputItem:
    """A list entry → an input (refused when unsafe); relative entries are relative to the list's folder.

    ``s3://bucket/key`` and absolute local paths are used as they are, with the key relative to the list's
    folder when they lie under it, else ``bucket/key`` or the path without its leading ``/``. Whatever the
    form, the key (and an absolute path) must pass :func:`check_key`: ``..`` never reaches a path.
    real_base: the list folder's real path, where a relative entry must stay ("": links are followed).
    """
    scheme = scheme_of(entry)
    fix = "fix the list entry"
    try:
        if scheme == "s3":
            bucket, _, key = entry[len("s3://") :].partition("/")  # exactly as written: no slash stripped
            if not bucket:
                raise UnsafeKey("the URI names no bucket")
            check_key(key)
            inside = bucket == base.bucket and key.startswith(base.root)
            item = InputItem(entry, key[len(base.root) :] if inside else f"{bucket}/{key}")
        elif scheme in ("", "file"):
            path = entry[len("file://") :] if scheme == "file" else entry
            if path.startswith("/"):
                check_key(path[1:])
                inside = not base.is_s3 and path.startswith(base.root.rstrip("/") + "/")
                item = InputItem(path, path[len(base.root.rstrip("/")) + 1 :] if inside else path[1:])
            else:
                check_key(path)
                item = InputItem(base.join(path), path, within=real_base)
                if real_base and not _within(os.path.realpath(item.uri), real_base):
                    detail = (
                        f"list entry '{printable(entry)}' resolves (through a symbolic link) outside the "
                        "list's folder; pass --follow-symlinks to read it, or list its absolute path"
                    )
                    return _refused(entry, entry, OUTSIDE, detail)
        else:
            detail = f"list entry '{printable(entry)}': inputs are local paths or s3:// URIs"
            return _refused(entry, entry, BAD_ENTRY, detail)
    except ValueError as exc:  # UnsafeKey, or an s3:// URI without a bucket
        return _refused(entry, entry, UNSAFE, f"list entry {_unsafe_detail(entry, exc, fix)}")
    if not is_input_key(item.key):
        extensions = " ".join(sorted(INPUT_EXTENSIONS))
        detail = f"list entry '{printable(entry)}' does not end in an image or video extension ({extensions})"
        return _refused(entry, entry, NOT_AN_IMAGE, detail)
    return item
