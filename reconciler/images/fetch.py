"""Fetch an image once, verify it completely, and put it in the store.

Sources are ``source.url`` then each mirror, over http, https or file URLs. A download
resumes with ``Range`` after an interruption, stops hard at the declared size, hashes
SHA-256 and BLAKE2b-512 while it streams, retries with jittered exponential backoff on the
injected clock, and can be paced by a bandwidth limit. Two fetches of one image in one
process share one download; a lock file keeps two processes from writing one partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import httpx

from reconciler.clock import Clock
from reconciler.errors import ImageError, ImageRefused
from reconciler.images.files import DISK_FULL_ERRNOS
from reconciler.images.hashing import StreamHasher
from reconciler.images.reasons import Reason
from reconciler.images.recheck import recheck
from reconciler.images.store import ImageStore
from reconciler.images.throttle import Throttle
from reconciler.images.verify import Verified, precheck, verify_image
from reconciler.model.kinds import Image, TrustPolicy
from reconciler.sanitize import redact

__all__ = ["FetchProgress", "FetchSettings", "Fetcher", "ProgressCallback", "log_progress"]


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """How downloads behave."""

    connect_timeout: float = 10.0
    """Seconds to open a connection; a dead mirror should not hold a fetch for long."""
    read_timeout: float = 60.0
    """Seconds without a byte before the attempt counts as interrupted (and resumes)."""
    attempts: int = 4
    """Attempts per source before moving on to the next mirror."""
    backoff: float = 1.0
    """First retry delay in seconds; it doubles per attempt, with full jitter."""
    max_backoff: float = 30.0
    """Upper bound of one retry delay."""
    bandwidth: int | None = None
    """Bytes per second for all downloads together; ``None`` leaves the link unpaced."""
    chunk_size: int = 1 << 20
    """Bytes per read: large enough that per-chunk overhead stays small."""
    signature_max: int = 1 << 20
    """Largest signature or bundle accepted; real ones are a few kilobytes."""
    lock_wait: float = 3600.0
    """Seconds to wait for another process that is downloading the same image."""
    denied_paths: frozenset[Path] = frozenset()
    """Files, or directories with everything below them (resolved), that a ``file:`` source
    may never read: the daemon's own secrets, which an Image document could otherwise
    name as its source and have hashed."""


@dataclass(frozen=True, slots=True)
class FetchProgress:
    """One progress event: ``start``, ``resume``, ``progress``, ``retry`` or ``done``."""

    event: str
    name: str
    received: int
    total: int
    url: str = ""


ProgressCallback = Callable[[FetchProgress], None]


def log_progress(logger: logging.Logger) -> ProgressCallback:
    """A progress callback for the daemon: one structured log event per state change.

    Per-chunk ``progress`` events are dropped; ``start``, ``resume``, ``retry`` and ``done``
    are logged with the image, byte counts and the (already redacted) URL as fields.
    """

    def log(event: FetchProgress) -> None:
        if event.event != "progress":
            fields = {
                "event": f"image.fetch.{event.event}",
                "image": event.name,
                "received": event.received,
                "total": event.total,
                "url": event.url,
            }
            logger.info("image fetch %s: %s", event.event, event.name, extra=fields)

    return log


class _Retry(Exception):
    """This attempt failed in a way that may pass; the partial file is kept."""


class _RangeRefused(_Retry):
    """The source refused our resume offset; start the file again."""


class _NextSource(Exception):
    """This source does not have the file; try the next one."""


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _file_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


class Fetcher:
    """Downloads images into an :class:`ImageStore`, verifying before anything is stored."""

    def __init__(
        self,
        store: ImageStore,
        client: httpx.AsyncClient,
        *,
        clock: Clock,
        settings: FetchSettings | None = None,
        progress: ProgressCallback | None = None,
        rng: random.Random | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.store = store
        self._client = client
        self._clock = clock
        self.settings = settings or FetchSettings()
        self._progress = progress
        self._rng = rng or random.Random()
        # A throttle given is shared with other fetchers (a site's one fetch cap).
        self._throttle = throttle or (
            Throttle(self.settings.bandwidth, clock) if self.settings.bandwidth else None
        )
        self._inflight: dict[str, asyncio.Task[Verified]] = {}

    def _emit(self, event: str, name: str, received: int, total: int, url: str = "") -> None:
        if self._progress is not None:
            self._progress(FetchProgress(event, name, received, total, redact(url)))

    async def fetch(
        self,
        image: Image,
        trust: Sequence[TrustPolicy],
        *,
        root_dir: Path = Path(),
        urls: Sequence[str] | None = None,
    ) -> Verified:
        """Return the verified image, downloading it first unless the store has it.

        A stored image is checked again against ``image`` and ``trust`` as they are now
        (:func:`reconciler.images.recheck.recheck`). ``urls`` replaces the Image's own
        sources (a site mirror pulling from a peer).
        Raises :class:`ImageRefused` when verification fails and :class:`ImageError` when
        no source delivers the bytes.
        """
        sha = image.spec.sha256
        stored = self.store.get(sha)
        if stored is not None:
            # Stored bytes were verified, but trust may have changed since.
            return recheck(image, stored, trust, store=self.store, root_dir=root_dir)
        task = self._inflight.get(sha)
        if task is None:
            task = asyncio.ensure_future(self._fetch(image, trust, root_dir, urls))
            self._inflight[sha] = task
            task.add_done_callback(lambda _t: self._inflight.pop(sha, None))
        return await asyncio.shield(task)

    async def _fetch(
        self,
        image: Image,
        trust: Sequence[TrustPolicy],
        root_dir: Path,
        urls: Sequence[str] | None,
    ) -> Verified:
        precheck(image)
        sha = image.spec.sha256
        async with self._process_lock(sha):
            stored = self.store.get(sha)
            if stored is not None:  # another process finished it while we waited
                return recheck(image, stored, trust, store=self.store, root_dir=root_dir)
            sources = (
                list(urls)
                if urls is not None
                else [image.spec.source.url, *image.spec.source.mirrors]
            )
            suffix, sig_urls = self._signature_urls(image, sources, urls is not None)
            sig_temp = self.store.tmp / f"{sha}{suffix}.part"
            sig_bytes = await self._fetch_small(sig_urls)
            if sig_bytes is None:
                raise ImageRefused(Reason.SIGNATURE_MISSING, f"no signature found for {image.name}")
            sig_temp.write_bytes(sig_bytes)
            partial = self.store.partial_path(sha)
            try:
                hasher = await self._download(image, sources, partial)
                verified = verify_image(
                    image,
                    partial,
                    trust,
                    minisig=sig_temp if suffix == ".minisig" else None,
                    bundle=sig_temp if suffix == ".sigstore" else None,
                    root_dir=root_dir,
                    digests=hasher.digests(),
                )
            except ImageRefused:
                # Refused bytes are worthless; keeping them would only resume a bad file.
                _discard(partial)
                raise
            else:
                stored = self.store.add(verified, partial, (suffix, sig_temp))
            finally:
                # Published by add() on success; a signature is cheap to fetch again.
                _discard(sig_temp)
            self._emit("done", image.name, verified.size, verified.size)
            return stored.verified

    @asynccontextmanager
    async def _process_lock(self, sha: str) -> AsyncIterator[None]:
        fd = os.open(self.store.tmp / f"{sha}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = self._clock.monotonic() + self.settings.lock_wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self._clock.monotonic() >= deadline:
                        raise ImageError(f"another process holds the download of {sha}") from None
                    await self._clock.sleep(1.0)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _signature_urls(
        image: Image, sources: list[str], overridden: bool
    ) -> tuple[str, list[str]]:
        sig = image.spec.signature
        if sig.sigstore is not None:
            if overridden:
                return ".sigstore", [f"{u}.sigstore" for u in sources]
            return ".sigstore", [sig.sigstore.bundleUrl]
        assert sig.minisign is not None
        if sig.minisign.url is not None and not overridden:
            return ".minisig", [sig.minisign.url]
        return ".minisig", [f"{u}.minisig" for u in sources]

    async def _backoff(self, attempt: int) -> None:
        cap = min(self.settings.max_backoff, self.settings.backoff * 2**attempt)
        await self._clock.sleep(self._rng.uniform(0, cap))

    async def _fetch_small(self, urls: list[str]) -> bytes | None:
        """A signature or bundle, read whole into memory with a size cap; None when absent."""
        limit = self.settings.signature_max
        for url in urls:
            for attempt in range(self.settings.attempts):
                try:
                    async with self._open(url, 0) as (_start, chunks):
                        data = bytearray()
                        async for chunk in chunks:
                            data += chunk
                            if len(data) > limit:
                                raise ImageRefused(
                                    Reason.SIGNATURE_INVALID, f"signature larger than {limit} bytes"
                                )
                        return bytes(data)
                except _NextSource:
                    break
                except _Retry:
                    if attempt + 1 < self.settings.attempts:
                        await self._backoff(attempt)
        return None

    async def _download(self, image: Image, sources: list[str], partial: Path) -> StreamHasher:
        total = image.spec.size
        hasher = await asyncio.to_thread(self._rehash, partial)
        failures: list[str] = []
        for url in sources:
            for attempt in range(self.settings.attempts):
                try:
                    return await self._transfer(image, url, partial, hasher)
                except _NextSource as e:
                    failures.append(f"{redact(url)}: {e}")
                    break
                except _Retry as e:
                    failures.append(f"{redact(url)}: {e}")
                    self._emit("retry", image.name, hasher.size, total, url)
                    if attempt + 1 < self.settings.attempts:
                        await self._backoff(attempt)
                    if isinstance(e, _RangeRefused):
                        _discard(partial)
                    # A failed attempt may have left the file and the hasher out of step.
                    hasher = await asyncio.to_thread(self._resync, partial, hasher)
        detail = "; ".join(failures[-3:]) or "no sources"
        raise ImageError(f"could not download {image.name}: {detail}")

    def _resync(self, partial: Path, hasher: StreamHasher) -> StreamHasher:
        size = partial.stat().st_size if partial.exists() else 0
        return hasher if size == hasher.size else self._rehash(partial)

    def _rehash(self, partial: Path) -> StreamHasher:
        """Hash what an earlier attempt left, so the stream's hashes cover every byte."""
        hasher = StreamHasher()
        if partial.exists():
            with partial.open("rb") as f:
                while chunk := f.read(self.settings.chunk_size):
                    hasher.update(chunk)
        return hasher

    async def _transfer(
        self, image: Image, url: str, partial: Path, hasher: StreamHasher
    ) -> StreamHasher:
        """Append from ``url`` to ``partial``; returns the hasher of the whole file."""
        total = image.spec.size
        offset = hasher.size
        if offset == total:
            return hasher
        if offset > total:
            raise _RangeRefused("partial file longer than the image")
        async with self._open(url, offset) as (start, chunks):
            if start != offset:  # the source ignored Range: start again from zero
                _discard(partial)
                hasher = StreamHasher()
            self._emit("resume" if start else "start", image.name, start, total, url)
            with partial.open("ab") as out:
                async for chunk in chunks:
                    if hasher.size + len(chunk) > total:
                        out.close()
                        _discard(partial)
                        raise ImageRefused(
                            Reason.SIZE_EXCEEDED,
                            f"{redact(url)} sent more than the declared {total} bytes",
                        )
                    self._write(out, chunk, partial)
                    hasher.update(chunk)
                    self._emit("progress", image.name, hasher.size, total, url)
                    if self._throttle is not None:
                        await self._throttle.consume(len(chunk))
        if hasher.size < total:
            raise _Retry(f"stream ended at {hasher.size} of {total} bytes")
        return hasher

    @staticmethod
    def _write(out: BinaryIO, chunk: bytes, partial: Path) -> None:
        try:
            out.write(chunk)
            out.flush()
        except OSError as e:
            if e.errno in DISK_FULL_ERRNOS:
                with contextlib.suppress(OSError):
                    out.close()
                partial.unlink(missing_ok=True)
                raise ImageError(f"disk full while writing {partial.name}: {e.strerror}") from e
            raise

    @asynccontextmanager
    async def _open(self, url: str, offset: int) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        """Open ``url`` at ``offset``; yields the real start offset and the byte chunks."""
        if urlsplit(url).scheme == "file":
            path = _file_path(url)
            real = Path(await asyncio.to_thread(os.path.realpath, path))
            if any(real.is_relative_to(denied) for denied in self.settings.denied_paths):
                raise _NextSource("never read, one of gitfirm's own files")
            if not path.is_file():
                raise _NextSource("no such file")
            with path.open("rb") as f:
                f.seek(offset)
                yield offset, self._file_chunks(f)
            return
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        timeout = httpx.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout)
        try:
            async with self._client.stream("GET", url, headers=headers, timeout=timeout) as resp:
                yield self._start_of(resp, offset), self._http_chunks(resp)
        except httpx.TransportError as e:
            raise _Retry(f"{type(e).__name__}: {e}") from None

    @staticmethod
    def _start_of(resp: httpx.Response, offset: int) -> int:
        status = resp.status_code
        if status == 206:
            unit, _, rng = resp.headers.get("content-range", "").partition(" ")
            first = rng.split("-", 1)[0]
            if unit == "bytes" and first.isdigit() and int(first) == offset:
                return offset
            raise _Retry("the source answered a range we did not ask for")
        if status == 200:
            return 0
        if status == 416:
            raise _RangeRefused("range not satisfiable")
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status}")
        raise _NextSource(f"HTTP {status}")

    async def _http_chunks(self, resp: httpx.Response) -> AsyncIterator[bytes]:
        # Unbuffered: every byte that arrived is kept if the connection drops mid-chunk.
        async for chunk in resp.aiter_raw():
            yield chunk

    async def _file_chunks(self, f: BinaryIO) -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(f.read, self.settings.chunk_size):
            yield chunk
