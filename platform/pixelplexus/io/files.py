"""Files by reference, and atomic local writes: local paths, ``file://``, ``s3://bucket/key``, MLflow URIs.

:func:`localize` turns any of them into a local path, so loaders (weights files, VGG19 state dicts) read
local files only. S3 goes through :mod:`pixelplexus.io.s3` with the settings of the environment
(``AWS_ENDPOINT_URL`` for S3-compatible stores included); downloads are cached by ETag, so a changed
object is fetched again. MLflow URIs (``runs:/…``, ``models:/…``, ``mlflow-artifacts:/…``) go through
``mlflow.artifacts.download_artifacts`` against the current tracking server. Nothing else is fetched:
web URLs are refused, because nothing is downloaded at run time from outside the platform's own stores.

:func:`write_atomic` (built on :func:`write_temporary`) is how every local file is written: a temporary file
beside it, then a rename, relative to an open folder (``dir_fd``) where the caller walked there safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from pixelplexus.io.s3 import S3Settings, s3_error, split_s3

MLFLOW_SCHEMES = ("runs", "models", "mlflow-artifacts")
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "pixelplexus-cache"


def scheme_of(uri: str | os.PathLike[str]) -> str:
    """``"s3"``, ``"runs"``, … or ``""`` for a local path (Windows drive letters count as local)."""
    text = os.fspath(uri)
    scheme = urlparse(text).scheme
    return "" if len(scheme) <= 1 else scheme.lower()


def localize(uri: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A local path holding the file (or folder) at ``uri``.

    Local paths and ``file://`` URIs are returned as they are (no existence check: callers say what is
    missing in their own words). Remote objects are downloaded under ``cache_dir``.

    Raises:
        FileNotFoundError: the remote object, bucket or artifact does not exist.
        PermissionError: the store refused access.
        ValueError: the scheme is not one PixelPlexus reads.
    """
    scheme = scheme_of(uri)
    if scheme == "":
        return Path(uri).expanduser()
    text = os.fspath(uri)
    if scheme == "file":
        return Path(unquote(urlparse(text).path))
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    if scheme == "s3":
        return _localize_s3(text, cache)
    if scheme in MLFLOW_SCHEMES:
        return _localize_mlflow(text, cache)
    raise ValueError(
        f"cannot read {text!r}: PixelPlexus reads local paths, file://, s3:// and MLflow URIs "
        f"({', '.join(s + ':/' for s in MLFLOW_SCHEMES)}); nothing is downloaded from the web — "
        "copy the file into one of those stores"
    )


def write_temporary(path: str | os.PathLike[str], data: bytes, *, dir_fd: int | None = None) -> str:
    """Write ``data`` to a new hidden temporary file beside ``path`` (created with the usual permissions,
    flushed to disk) and return the temporary file's path. ``dir_fd``: ``path`` is a name relative to that
    open folder. The caller renames or links it into place (:func:`write_atomic`) and removes it on error."""
    text = os.fspath(path)
    folder, name = os.path.split(text if dir_fd is not None else os.path.abspath(text))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temporary, flags, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(temporary, dir_fd=dir_fd)
        raise
    return temporary


def write_atomic(path: str | os.PathLike[str], data: bytes, *, dir_fd: int | None = None) -> None:
    """Write ``data`` to the local file ``path`` atomically: a temporary file in the same folder
    (:func:`write_temporary`), then renamed over ``path``. Readers see the old file or the new one, never a
    part; a symbolic link at ``path`` is replaced, never written through. The folder must exist.
    ``dir_fd``: ``path`` is a name relative to that open folder."""
    temporary = write_temporary(path, data, dir_fd=dir_fd)
    try:
        os.replace(temporary, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def read_bytes(uri: str | os.PathLike[str], **kwargs) -> bytes:
    """The bytes of the file at ``uri`` (see :func:`localize`)."""
    path = localize(uri, **kwargs)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {os.fspath(uri)}")
    return path.read_bytes()


def _localize_s3(uri: str, cache: Path) -> Path:
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    client = S3Settings.from_env().client()
    try:
        etag = client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        target = cache / "s3" / _digest(f"{uri}#{etag}") / Path(key).name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            client.download_file(bucket, key, str(partial))
            partial.replace(target)
        return target
    except ClientError as exc:
        raise s3_error(exc, uri, client=client) from None


def _localize_mlflow(uri: str, cache: Path) -> Path:
    import mlflow
    from mlflow.exceptions import MlflowException

    # models:/name/latest and @aliases move, so MLflow artifacts are downloaded afresh each time.
    target = Path(tempfile.mkdtemp(prefix=_digest(uri)[:12] + "-", dir=_mkdir(cache / "mlflow")))
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target)))
    except (MlflowException, OSError) as exc:
        raise FileNotFoundError(f"{uri}: not found in the MLflow tracking server ({exc})") from None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
