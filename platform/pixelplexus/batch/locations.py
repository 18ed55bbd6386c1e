"""Where a batch reads and writes: local folders and ``s3://bucket/prefix``, and lists of inputs.

INPUT is a folder or prefix (listed recursively; image extensions in any case) or a list file — ``.txt`` /
``.lst`` with one path or key per line, or a ``.csv`` / ``.parquet`` column. A relative entry of a list is
relative to the folder the list file is in; an absolute one (``/data/a.jpg``, ``s3://bucket/a.jpg``) is used
as it is. Every input gets a *key*: its path relative to INPUT (or to the list's folder), which is also where
its output goes under OUTPUT.

S3 goes through boto3. Ray workers do not share the driver's environment, so the driver snapshots the AWS
settings (:meth:`S3Settings.from_env`: endpoint, region, credentials when set) and hands them to the stages;
with none set, workers use boto3's own chain (instance roles, ...). Writes are atomic: a local file is
written to a hidden temporary name in the same folder and renamed; an S3 object appears whole.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pixelplexus.imageio import IMAGE_EXTENSIONS
from pixelplexus.storage import scheme_of, split_s3, write_atomic

LIST_EXTENSIONS = (".txt", ".lst", ".csv", ".parquet")
LIST_COLUMNS = ("key", "path", "uri", "input")  # tried in this order when a table has several columns


class LocationError(OSError):
    """An INPUT or OUTPUT that cannot be used: missing folder or bucket, access denied, bad list file."""


@dataclass(frozen=True)
class S3Settings:
    """The AWS settings S3 clients are built from (only those the environment sets)."""

    endpoint_url: str | None = None
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] = os.environ) -> S3Settings:
        return cls(
            endpoint_url=environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL"),
            region_name=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"),
            aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=environ.get("AWS_SESSION_TOKEN"),
        )

    def client(self):
        """A boto3 S3 client (one per process and settings: clients are thread-safe and slow to make)."""
        return _client(self)


@functools.lru_cache(maxsize=4)
def _client(settings: S3Settings):
    import boto3

    return boto3.client("s3", **{k: v for k, v in vars(settings).items() if v})


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
            return cls(text, bucket, prefix.rstrip("/") + "/" if prefix.strip("/") else "")
        if scheme not in ("", "file"):
            raise LocationError(f"{text}: INPUT and OUTPUT are local folders or s3://bucket/prefix URIs")
        path = text[len("file://") :] if scheme == "file" else text
        return cls(text, None, os.path.abspath(os.path.expanduser(path)))

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def join(self, key: str) -> str:
        """The URI (or local path) of ``key`` under this location."""
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
        """Every file below this location (or below its ``under`` sub-folder), as keys relative to it."""
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
                yield name if relative == "." else posixpath.join(*Path(relative).parts, name)


def _raise(exc: OSError) -> None:
    raise LocationError(f"cannot list {exc.filename}: {exc.strerror}")


def _s3_problem(exc: Exception, uri: str) -> LocationError:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return LocationError(f"{uri}: access denied by the S3 store ({code}); check the AWS credentials")
        if code in ("404", "NoSuchBucket", "NotFound"):
            return LocationError(
                f"{uri}: the bucket does not exist (or is not visible with these credentials)"
            )
        return LocationError(f"{uri}: S3 error {code}: {exc}")
    if isinstance(exc, BotoCoreError):
        return LocationError(f"{uri}: cannot reach the S3 store: {exc}")
    return LocationError(f"{uri}: {exc}")


# ------------------------------------------------------------------------------------------------ reading


def read_uri(uri: str, settings: S3Settings) -> bytes:
    """The bytes of a local file or an S3 object."""
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
        return settings.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    with open(uri, "rb") as f:
        return f.read()


def write_uri(uri: str, data: bytes, settings: S3Settings) -> None:
    """Write ``data`` atomically: no reader ever sees a partial file (folders are made as needed)."""
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
        settings.client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    os.makedirs(os.path.dirname(uri), exist_ok=True)
    write_atomic(uri, data)


# ------------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class InputItem:
    """One input: where to read it and its key (its path relative to INPUT, and to OUTPUT)."""

    uri: str
    key: str


def is_image_key(key: str) -> bool:
    return posixpath.splitext(key)[1].lower() in IMAGE_EXTENSIONS


def list_inputs(
    text: str, settings: S3Settings, *, column: str | None = None, exclude: Location | None = None
) -> list[InputItem]:
    """The inputs INPUT names, sorted by key; ``exclude``: skip files under OUTPUT when it lies inside INPUT."""
    if posixpath.splitext(text)[1].lower() in LIST_EXTENSIONS:
        return _list_file(text, settings, column)
    source = Location.parse(text)
    source.check(settings)
    skip = _inside(exclude, source)
    if skip == "":
        raise LocationError(f"OUTPUT is INPUT ({text}): outputs would replace the originals; write elsewhere")
    items = [
        InputItem(source.join(key), key)
        for key in source.keys(settings)
        if is_image_key(key) and not (skip and key.startswith(skip))
    ]
    return sorted(items, key=lambda item: item.key)


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


def _list_file(text: str, settings: S3Settings, column: str | None) -> list[InputItem]:
    try:
        data = read_uri(text, settings) if text.startswith("s3://") else Path(text).read_bytes()
    except Exception as exc:
        problem = _s3_problem(exc, text) if text.startswith("s3://") else exc
        raise LocationError(f"cannot read the input list {text}: {problem}") from None
    entries = _entries(data, posixpath.splitext(text)[1].lower(), column, text)
    base = Location.parse(
        posixpath.dirname(text) if text.startswith("s3://") else os.path.dirname(text) or "."
    )
    items, seen = [], set()
    for entry in entries:
        item = _item(entry, base)
        if item.key not in seen:
            seen.add(item.key)
            items.append(item)
    if not items:
        raise LocationError(f"the input list {text} names no files")
    return sorted(items, key=lambda item: item.key)


def _entries(data: bytes, extension: str, column: str | None, source: str) -> list[str]:
    if extension in (".txt", ".lst"):
        if column:
            raise LocationError(f"--column is for .csv and .parquet lists, not {source}")
        lines = data.decode("utf-8-sig").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
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


def _item(entry: str, base: Location) -> InputItem:
    """A list entry → an input; relative entries are relative to the list's folder."""
    scheme = scheme_of(entry)
    if scheme == "s3":
        bucket, key = split_s3(entry)
        inside = bucket == base.bucket and key.startswith(base.root)
        return InputItem(entry, key[len(base.root) :] if inside else f"{bucket}/{key}")
    if scheme not in ("", "file"):
        raise LocationError(f"list entry {entry!r}: inputs are local paths or s3:// URIs")
    path = entry[len("file://") :] if scheme == "file" else entry
    if os.path.isabs(path):
        path = os.path.abspath(path)
        inside = not base.is_s3 and path.startswith(base.root + os.sep)
        parts = Path(os.path.relpath(path, base.root)).parts if inside else Path(path).parts[1:]
        return InputItem(path, "/".join(parts))
    key = posixpath.normpath(path.replace("\\", "/"))
    if key == ".." or key.startswith("../"):
        raise LocationError(f"list entry {entry!r} points outside the list's folder: use an absolute path")
    return InputItem(base.join(key), key)
