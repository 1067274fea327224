"""Fetch: mirrors, file URLs, resume, size cap, one download for concurrent fetches, disk full."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reconciler.clock import FakeClock
from reconciler.errors import ImageError, ImageRefused
from reconciler.images.fetch import Fetcher, FetchProgress, FetchSettings, log_progress
from reconciler.images.reasons import Reason
from reconciler.images.store import ImageStore
from tests.support.images import FileServer, SignedImage, make_image, serve_files


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def _fetcher(
    tmp_path: Path, client: httpx.AsyncClient, events: list[FetchProgress] | None = None
) -> Fetcher:
    store = ImageStore(tmp_path / "cache", FakeClock())
    settings = FetchSettings(attempts=3, chunk_size=32_768, read_timeout=5, connect_timeout=5)
    return Fetcher(
        store,
        client,
        clock=FakeClock(autojump=True),
        settings=settings,
        progress=events.append if events is not None else None,
    )


def _publish(server: FileServer, si: SignedImage) -> None:
    server.files[f"/{si.file.name}"] = si.data
    server.files[f"/{si.file.name}.minisig"] = si.minisig.read_bytes()


async def test_fetch_from_mirror_after_404(tmp_path: Path, client: httpx.AsyncClient) -> None:
    async with serve_files(FileServer()) as server:
        si = make_image(tmp_path / "src", base_url=f"{server.url}/gone")
        mirror_image = si.image.model_copy(
            update={
                "spec": si.image.spec.model_copy(
                    update={
                        "source": si.image.spec.source.model_copy(
                            update={"mirrors": [f"{server.url}/{si.file.name}"]}
                        )
                    }
                )
            }
        )
        _publish(server, si)
        events: list[FetchProgress] = []
        fetcher = _fetcher(tmp_path, client, events)
        verified = await fetcher.fetch(mirror_image, [si.trust])
    stored = fetcher.store.get(verified.sha256)
    assert stored is not None and stored.path.read_bytes() == si.data
    assert stored.signature is not None and stored.signature.name.endswith(".minisig")
    assert events[-1].event == "done" and events[-1].received == len(si.data)
    assert not list(fetcher.store.tmp.glob("*.part"))


async def test_fetch_file_url(tmp_path: Path, client: httpx.AsyncClient) -> None:
    si = make_image(tmp_path / "src")
    fetcher = _fetcher(tmp_path, client)
    verified = await fetcher.fetch(si.image, [si.trust])
    assert verified.signed_timestamp == 1_700_000_000
    assert [i.verified for i in fetcher.store.list()] == [verified]


async def test_interrupted_download_resumes_with_range(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    async with serve_files(FileServer()) as server:
        si = make_image(tmp_path / "src", base_url=server.url)
        _publish(server, si)
        server.drop_after[f"/{si.file.name}"] = 100_000
        events: list[FetchProgress] = []
        verified = await _fetcher(tmp_path, client, events).fetch(si.image, [si.trust])
    gets = [r for r in server.requests if r[0].endswith(".iso")]
    assert len(gets) == 2 and gets[0][1] == ""
    resumed_at = int(gets[1][1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 100_000
    assert "resume" in [e.event for e in events] and "retry" in [e.event for e in events]
    assert verified.size == len(si.data)


async def test_endless_stream_is_size_exceeded(tmp_path: Path, client: httpx.AsyncClient) -> None:
    async with serve_files(FileServer()) as server:
        si = make_image(tmp_path / "src", base_url=server.url)
        _publish(server, si)
        server.endless.add(f"/{si.file.name}")
        fetcher = _fetcher(tmp_path, client)
        with pytest.raises(ImageRefused) as info:
            await fetcher.fetch(si.image, [si.trust])
    assert info.value.reason == Reason.SIZE_EXCEEDED
    assert not list(fetcher.store.tmp.glob("*.part")) and fetcher.store.list() == []


async def test_bad_bytes_are_refused_and_not_stored(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    async with serve_files(FileServer()) as server:
        si = make_image(tmp_path / "src", base_url=server.url)
        _publish(server, si)
        server.files[f"/{si.file.name}"] = b"y" * len(si.data)
        fetcher = _fetcher(tmp_path, client)
        with pytest.raises(ImageRefused) as info:
            await fetcher.fetch(si.image, [si.trust])
    assert info.value.reason == Reason.SHA256_MISMATCH
    assert fetcher.store.list() == [] and not list(fetcher.store.tmp.glob("*.part"))


async def test_missing_signature_downloads_nothing(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    async with serve_files(FileServer()) as server:
        si = make_image(tmp_path / "src", base_url=server.url)
        server.files[f"/{si.file.name}"] = si.data
        with pytest.raises(ImageRefused) as info:
            await _fetcher(tmp_path, client).fetch(si.image, [si.trust])
    assert info.value.reason == Reason.SIGNATURE_MISSING
    assert all(not p.endswith(".iso") for p, _ in server.requests)


async def test_concurrent_fetches_download_once(tmp_path: Path, client: httpx.AsyncClient) -> None:
    async with serve_files(FileServer()) as server:
        si = make_image(tmp_path / "src", base_url=server.url)
        _publish(server, si)
        fetcher = _fetcher(tmp_path, client)
        results = await asyncio.gather(*(fetcher.fetch(si.image, [si.trust]) for _ in range(5)))
        again = await fetcher.fetch(si.image, [si.trust])
    assert len({r.sha256 for r in (*results, again)}) == 1
    assert [p for p, _ in server.requests].count(f"/{si.file.name}") == 1
    revoked = si.image.model_copy(
        update={"spec": si.image.spec.model_copy(update={"revoked": True})}
    )
    with pytest.raises(ImageRefused) as info:
        await fetcher.fetch(revoked, [si.trust])
    assert info.value.reason == Reason.REVOKED


async def test_unreachable_sources_give_image_error_with_redacted_url(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    async with serve_files(FileServer()) as server:
        si = make_image(
            tmp_path / "src", base_url=server.url.replace("//", "//user:hunter2-secret@")
        )
        _publish(server, si)
        server.files.pop(f"/{si.file.name}")
        with pytest.raises(ImageError) as info:
            await _fetcher(tmp_path, client).fetch(si.image, [si.trust])
    assert "hunter2-secret" not in str(info.value)
    assert "404" in str(info.value)


async def test_bandwidth_limit_paces_on_the_clock(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    si = make_image(tmp_path / "src", size=400_000)
    clock = FakeClock(autojump=True)
    store = ImageStore(tmp_path / "cache", clock)
    fetcher = Fetcher(
        store, client, clock=clock, settings=FetchSettings(bandwidth=100_000, chunk_size=50_000)
    )
    await fetcher.fetch(si.image, [si.trust])
    assert clock.monotonic() == pytest.approx(4.0 - 0.25, abs=0.6)


_DISK_FULL = textwrap.dedent(
    """
    import asyncio, resource, signal, sys
    from pathlib import Path
    import httpx
    from reconciler.clock import FakeClock
    from reconciler.images.fetch import Fetcher
    from reconciler.images.store import ImageStore
    from reconciler.errors import ImageError
    from tests.support.images import make_image

    tmp = Path(sys.argv[1])
    si = make_image(tmp / "src", size=2_000_000)
    store = ImageStore(tmp / "cache", FakeClock())
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            try:
                await Fetcher(store, client, clock=FakeClock(autojump=True)).fetch(si.image, [si.trust])
            except ImageError as e:
                print("IMAGE-ERROR", e)

    asyncio.run(main())
    """
)


def test_disk_full_is_clear_and_leaves_nothing(tmp_path: Path) -> None:
    # A real file-size limit (RLIMIT_FSIZE) in a child process: writes fail with EFBIG.
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _DISK_FULL, str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "IMAGE-ERROR disk full while writing" in done.stdout
    cache = tmp_path / "cache"
    assert not list((cache / "tmp").glob("*.part"))
    assert not list((cache / "blobs").rglob("*")) or all(
        p.is_dir() for p in (cache / "blobs").rglob("*")
    )
    assert not list((cache / "meta").glob("*"))


async def test_daemon_progress_logs_structured_events(
    tmp_path: Path, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    si = make_image(tmp_path / "src")
    store = ImageStore(tmp_path / "cache", FakeClock())
    logger = logging.getLogger("test.images")
    fetcher = Fetcher(store, client, clock=FakeClock(autojump=True), progress=log_progress(logger))
    with caplog.at_level(logging.INFO, logger="test.images"):
        await fetcher.fetch(si.image, [si.trust])
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events == ["image.fetch.start", "image.fetch.done"]
    assert caplog.records[-1].__dict__["received"] == len(si.data)
