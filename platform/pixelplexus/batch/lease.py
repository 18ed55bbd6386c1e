"""A lease on OUTPUT, so that one batch run at a time works there.

A run takes ``OUTPUT/_pixelplexus/lease.json`` before it decides what to do, keeps it alive with a heartbeat
thread (a renewal every third of its time), and releases it at the end, failure or not. The lease says who
holds it (run id, user, host, pid), since when, its last heartbeat and when it expires (UNIX seconds and
UTC text). A run killed with ``kill -9`` stops renewing, so its lease expires after ``seconds`` (default
:data:`DEFAULT_SECONDS`) and the next run takes it over. While a live lease is held, another run refuses
with :class:`LeaseHeld` (exit 2) naming the holder and the expiry, unless ``force``; a run whose lease was
taken from it (``--force`` elsewhere) learns so at its next heartbeat and reports it as a failure.

Taking the lease is atomic. Locally, every change to the lease file (create, take over, renew, release)
happens while holding ``flock`` on ``_pixelplexus/lease.lock`` (and, for threads of one process, a lock in
memory): a run re-reads the lease under the lock and changes it only if it is still the version it judged,
so of several runs that find the same expired lease exactly one takes it over. The kernel drops the lock
when a process dies, so a killed run never leaves it held. On S3, ``put_object(IfNoneMatch="*")`` creates the
lease only if there is none; renewal and takeover are compare-and-swap writes (``IfMatch`` the ETag last
seen) and release a conditional delete. A store that ignores these conditions (some S3-compatible ones
do) makes the lease best-effort: two runs starting at the same moment could both proceed. Expiry is judged
by the reading host's clock, so hosts' clocks must agree to within a few seconds.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from pixelplexus.io.files import write_atomic
from pixelplexus.io.locations import RESERVED, Location, LocationError, OutsideOutput, open_folder
from pixelplexus.io.s3 import S3Settings

LEASE_NAME = "lease.json"
LEASE_KEY = f"{RESERVED}/{LEASE_NAME}"
LOCK_NAME = "lease.lock"
DEFAULT_SECONDS = 90.0
ATTEMPTS = 5  # tries to take the lease while other runs take or release it at the same moment


class LeaseHeld(LocationError):
    """Another run holds a live lease on OUTPUT (or it could not be taken): nothing was done."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over (``--force`` elsewhere) or removed while it worked."""


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


@dataclass(frozen=True)
class Holder:
    """What a lease file says: who holds it and until when (UNIX seconds)."""

    run_id: str
    user: str
    host: str
    pid: int
    acquired: float
    heartbeat: float
    expires: float

    @classmethod
    def new(cls, run_id: str, seconds: float) -> Holder:
        now = time.time()
        return cls(run_id, _user(), socket.gethostname(), os.getpid(), now, now, now + seconds)

    def beat(self, seconds: float) -> Holder:
        now = time.time()
        return Holder(**{**asdict(self), "heartbeat": now, "expires": now + seconds})

    def to_bytes(self) -> bytes:
        text = {**asdict(self), **{f"{k}_utc": _utc(getattr(self, k)) for k in ("acquired", "expires")}}
        return json.dumps(text, indent=1, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes, modified: float, seconds: float) -> Holder:
        """A lease file's holder; one that cannot be read counts as held since it was last modified."""
        try:
            fields = json.loads(data)
            return cls(**{name: fields[name] for name in cls.__dataclass_fields__})
        except Exception:
            return cls("(unreadable lease file)", "?", "?", 0, modified, modified, modified + seconds)

    def describe(self) -> str:
        left = self.expires - time.time()
        when = f"in {left:.0f} s" if left > 0 else f"{-left:.0f} s ago"
        return (
            f"run {self.run_id} ({self.user}@{self.host}, pid {self.pid}, since {_utc(self.acquired)}); "
            f"its lease expires at {_utc(self.expires)} ({when}) unless renewed"
        )


class Lease:
    """This run's lease on OUTPUT: :meth:`acquire` it, use it as a context manager (heartbeat + release)."""

    def __init__(self, store: _Store, holder: Holder, seconds: float, token: object) -> None:
        self.store, self.holder, self.seconds, self._token = store, holder, seconds, token
        self.lost: str | None = None  # why the lease was lost, if it was
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(
        cls,
        output: Location,
        settings: S3Settings,
        run_id: str,
        *,
        seconds: float = DEFAULT_SECONDS,
        force: bool = False,
    ) -> Lease:
        """Take the lease on ``output`` (whose folder must exist) or raise :class:`LeaseHeld`.

        force: take it even from a live holder (that run fails at its next heartbeat).
        """
        if seconds <= 0:
            raise ValueError(f"the lease time must be positive, got {seconds}")
        store = _S3Store(output, settings) if output.is_s3 else _LocalStore(output)
        for _ in range(ATTEMPTS):
            holder = Holder.new(run_id, seconds)
            token = store.create(holder.to_bytes())
            if token is not None:
                return cls(store, holder, seconds, token)
            current = store.read(seconds)
            if current is None:  # released in between: try again
                continue
            other, seen = current
            if not force and other.expires > time.time():
                raise LeaseHeld(
                    f"OUTPUT {output.uri} is in use by {other.describe()}. Wait for that run to finish, "
                    "or pass --force if it is dead (a killed run's lease expires by itself)"
                )
            token = store.take_over(seen, holder.to_bytes())
            if token is not None:
                return cls(store, holder, seconds, token)
        raise LeaseHeld(f"could not take the lease on {output.uri}: other runs kept taking it; try again")

    def renew(self) -> None:
        """Extend the lease by ``seconds`` from now; :class:`LeaseLost` when it is no longer ours."""
        with self._lock:
            holder = self.holder.beat(self.seconds)
            self._token = self.store.renew(self._token, self.holder.run_id, holder.to_bytes(), self.seconds)
            self.holder = holder

    def release(self) -> None:
        """Give the lease back (only if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self.lost is None:
                self.store.release(self._token, self.holder.run_id, self.seconds)

    def __enter__(self) -> Lease:
        self._thread = threading.Thread(target=self._heartbeat, name="pixelplexus-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.release()
        except Exception:  # a store unreachable now: the lease expires by itself
            pass

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except LeaseLost as exc:
                self.lost = str(exc)
                return
            except Exception:  # the store is unreachable for now: try again at the next beat
                continue


# ------------------------------------------------------------------------------------------------ stores


class _Store:
    """Where a lease file lives. Tokens say which version of the file this run last wrote or read."""

    def create(self, data: bytes) -> object | None: ...  # token, or None when a lease exists
    def read(self, seconds: float) -> tuple[Holder, object] | None: ...
    def take_over(self, seen: object, data: bytes) -> object | None: ...
    def renew(self, token: object, run_id: str, data: bytes, seconds: float) -> object: ...
    def release(self, token: object, run_id: str, seconds: float) -> None: ...


class _LocalStore(_Store):
    """``OUTPUT/_pixelplexus/lease.json`` on a local (or NFS) file system; tokens are the file's bytes.

    Each change is made under :meth:`_locked`, after re-reading the file, so no two runs change it at once.
    """

    _threads = threading.Lock()  # flock excludes processes; threads of one process also take this

    def __init__(self, output: Location) -> None:
        self.uri = output.join(LEASE_KEY)
        try:
            self.fd = open_folder(output.root, [RESERVED], create=True)
        except OutsideOutput as exc:
            raise LocationError(str(exc)) from None

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except Exception:
            pass

    @contextmanager
    def _locked(self) -> Iterator[None]:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            lock = os.open(LOCK_NAME, flags, 0o644, dir_fd=self.fd)
        except OSError as exc:
            raise LocationError(
                f"cannot open the lease's lock in {self.uri} (a symbolic link?): {exc}"
            ) from None
        try:
            with self._threads:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield
        finally:
            os.close(lock)  # closing drops the flock

    def _read(self) -> tuple[bytes, float] | None:
        try:
            fd = os.open(LEASE_NAME, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LocationError(f"cannot read the lease {self.uri} (is it a symbolic link?): {exc}") from None
        with os.fdopen(fd, "rb") as f:
            return f.read(), os.fstat(f.fileno()).st_mtime

    def read(self, seconds: float) -> tuple[Holder, object] | None:
        found = self._read()
        return None if found is None else (Holder.parse(found[0], found[1], seconds), found[0])

    def create(self, data: bytes) -> object | None:
        with self._locked():
            if self._read() is not None:
                return None
            write_atomic(LEASE_NAME, data, dir_fd=self.fd)
            return data

    def take_over(self, seen: object, data: bytes) -> object | None:
        with self._locked():
            current = self._read()
            if current is None or current[0] != seen:  # released, renewed or taken since it was judged
                return None
            write_atomic(LEASE_NAME, data, dir_fd=self.fd)
            return data

    def renew(self, token: object, run_id: str, data: bytes, seconds: float) -> object:
        with self._locked():
            current = self.read(seconds)
            if current is None or current[0].run_id != run_id:
                holder = "nobody (the lease file was removed)" if current is None else current[0].describe()
                raise LeaseLost(f"the lease on OUTPUT was taken over; it is now held by {holder}")
            write_atomic(LEASE_NAME, data, dir_fd=self.fd)
            return data

    def release(self, token: object, run_id: str, seconds: float) -> None:
        with self._locked():
            current = self.read(seconds)
            if current is not None and current[0].run_id == run_id:
                os.unlink(LEASE_NAME, dir_fd=self.fd)


class _S3Store(_Store):
    """``…/_pixelplexus/lease.json`` on S3, written with conditional requests; tokens are ETags."""

    def __init__(self, output: Location, settings: S3Settings) -> None:
        self.client, self.bucket, self.key = settings.client(), output.bucket, output.root + LEASE_KEY

    @staticmethod
    def _conflict(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey") or status in (
            409,
            412,
        )

    def _put(self, data: bytes, **condition) -> object | None:
        try:
            reply = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=data, ContentType="application/json", **condition
            )
        except Exception as exc:
            if self._conflict(exc):
                return None
            raise
        return reply["ETag"]

    def create(self, data: bytes) -> object | None:
        return self._put(data, IfNoneMatch="*")

    def read(self, seconds: float) -> tuple[Holder, object] | None:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if self._conflict(exc):
                return None
            raise
        modified = reply["LastModified"].timestamp()
        return Holder.parse(reply["Body"].read(), modified, seconds), reply["ETag"]

    def take_over(self, seen: object, data: bytes) -> object | None:
        return self._put(data, IfMatch=seen)

    def renew(self, token: object, run_id: str, data: bytes, seconds: float) -> object:
        etag = self._put(data, IfMatch=token)
        if etag is None:
            current = self.read(seconds)
            holder = "nobody (the lease was removed)" if current is None else current[0].describe()
            raise LeaseLost(f"the lease on OUTPUT was taken over; it is now held by {holder}")
        return etag

    def release(self, token: object, run_id: str, seconds: float) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=token)
        except Exception as exc:
            if not self._conflict(exc):
                raise
