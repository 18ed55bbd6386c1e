"""S3: the settings clients are built from, the client, and what an S3 failure means in words.

Every S3 access in PixelPlexus (weights and VGG files by reference, batch inputs and outputs, the lease,
training's validation sets) gets its client from :meth:`S3Settings.client`. Ray workers do not share the
driver's environment, so the driver snapshots the AWS settings (:meth:`S3Settings.from_env`: endpoint,
region, credentials when set) and hands them on; with none set, boto3's own chain applies (instance roles,
...). Failures become :func:`s3_error`'s ``OSError`` subclasses, whose message names the URI and the fix.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from urllib.parse import urlparse

_DENIED = ("403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch")
_NO_BUCKET = ("404", "NoSuchBucket", "NotFound")  # what asking for a bucket (or listing it) answers


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


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


def s3_error(exc: Exception, uri: str, *, client=None) -> OSError:
    """What ``exc``, raised by S3 while using ``uri``, means: the error to raise (``from None``) instead.

    Access refused → :class:`PermissionError`; a missing bucket or object → :class:`FileNotFoundError`;
    an unreachable store → :class:`ConnectionError`; anything else → :class:`OSError`. ``client``: ``uri``
    names an object, and on "not found" the bucket is asked for, to say which of the two is missing;
    without it ``uri`` names a bucket or prefix, and "not found" means its bucket.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError):
        return ConnectionError(f"{uri}: cannot reach the S3 store: {exc}")
    if not isinstance(exc, ClientError):
        return OSError(f"{uri}: {exc}")
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in _DENIED:
        return PermissionError(f"{uri}: access denied by the S3 store ({code}); check the AWS credentials")
    if code in _NO_BUCKET and client is None:
        return FileNotFoundError(
            f"{uri}: the bucket does not exist (or is not visible with these credentials)"
        )
    if code in (*_NO_BUCKET, "NoSuchKey") and client is not None:
        bucket = split_s3(uri)[0]
        try:
            client.head_bucket(Bucket=bucket)
        except Exception:
            return FileNotFoundError(f"{uri}: bucket {bucket!r} does not exist (or is not visible)")
        return FileNotFoundError(f"{uri}: no such object")
    return OSError(f"{uri}: S3 error {code}: {exc}")


class S3Reader(io.RawIOBase):
    """A read-only, seekable file over one S3 object, read with ranged GETs of :data:`READ_AHEAD` bytes at
    least: what FFmpeg needs to open a video (it seeks to the index, then reads forward) without
    downloading the whole object first. One chunk is kept; ``size`` comes from a HEAD request."""

    READ_AHEAD = 8 << 20

    def __init__(self, settings: S3Settings, uri: str) -> None:
        self.uri = uri
        self.bucket, self.key = split_s3(uri)
        self._client = settings.client()
        try:
            self.size = self._client.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"]
        except Exception as exc:
            raise s3_error(exc, uri, client=self._client) from None
        self._pos = 0
        self._chunk_start, self._chunk = 0, b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self.size or not len(view):
            return 0
        offset = self._pos - self._chunk_start
        if not 0 <= offset < len(self._chunk):
            end = min(self.size, self._pos + max(len(view), self.READ_AHEAD)) - 1
            try:
                reply = self._client.get_object(
                    Bucket=self.bucket, Key=self.key, Range=f"bytes={self._pos}-{end}"
                )
                self._chunk = reply["Body"].read()
            except Exception as exc:
                raise s3_error(exc, self.uri, client=self._client) from None
            self._chunk_start, offset = self._pos, 0
        n = min(len(view), len(self._chunk) - offset)
        view[:n] = self._chunk[offset : offset + n]
        self._pos += n
        return n
