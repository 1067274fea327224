"""The content-addressed store: publish, list, capacity and retention-based GC."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

import reconciler.images as images_pkg
from reconciler.clock import FakeClock
from reconciler.images import bundle, fetch, minisign, mirror, ops, serve, store, tokens, verify
from reconciler.images.store import ImageStore
from reconciler.images.verify import Verified
from tests.support.images import make_image


def _add(st: ImageStore, tmp_path: Path, version: str, channel: str = "production") -> Verified:
    si = make_image(tmp_path / version, version=version, channel=channel)
    v = verify.verify_image(si.image, si.file, [si.trust], minisig=si.minisig)
    temp = st.tmp / "x.part"
    shutil.copy(si.file, temp)
    sig = st.tmp / "x.sig"
    shutil.copy(si.minisig, sig)
    st.add(v, temp, (".minisig", sig))
    return v


def test_add_list_and_capacity(tmp_path: Path) -> None:
    st = ImageStore(tmp_path / "cache", FakeClock())
    a = _add(st, tmp_path, "1.4.3")
    b = _add(st, tmp_path, "1.4.2", channel="testing")
    assert [i.verified for i in st.list()] == [a, b]
    stored = st.get(a.sha256)
    assert stored is not None and stored.path == st.blob_path(a.sha256)
    assert stored.signature is not None and stored.signature.read_text().startswith("untrusted")
    cap = st.capacity()
    assert cap.used == a.size + b.size
    assert cap.per_channel == {"production": a.size, "testing": b.size}
    assert cap.free > 0
    assert st.get("0" * 64) is None
    with pytest.raises(ValueError):
        st.blob_path("../etc/passwd")


def test_gc_waits_for_the_retention_period(tmp_path: Path) -> None:
    clock = FakeClock()
    st = ImageStore(tmp_path / "cache", clock)
    keep = _add(st, tmp_path, "1.4.3")
    drop = _add(st, tmp_path, "1.4.2")
    week = timedelta(days=7)
    first = st.gc({keep.sha256}, week)
    assert first.marked == [drop.sha256] and first.removed == []
    clock.advance(timedelta(days=6).total_seconds())
    assert st.gc({keep.sha256}, week).removed == []
    clock.advance(timedelta(days=1).total_seconds())
    report = st.gc({keep.sha256}, week)
    assert report.removed == [drop.sha256] and report.freed > drop.size
    assert [i.verified for i in st.list()] == [keep]
    assert not st.blob_path(drop.sha256).exists()


def test_gc_reference_clears_the_mark(tmp_path: Path) -> None:
    clock = FakeClock()
    st = ImageStore(tmp_path / "cache", clock)
    v = _add(st, tmp_path, "1.4.3")
    st.gc(set(), timedelta(days=1))
    clock.advance(3600)
    st.gc({v.sha256}, timedelta(days=1))
    clock.advance(2 * 86400)
    assert st.gc({v.sha256}, timedelta(days=1)).removed == []
    assert st.gc(set(), timedelta(days=1)).marked == [v.sha256]


def test_orphan_bytes_without_meta_are_collected(tmp_path: Path) -> None:
    st = ImageStore(tmp_path / "cache", FakeClock())
    orphan = st.blob_path("a" * 64)
    orphan.write_bytes(b"half-published")
    st.gc({"b" * 64}, timedelta(days=7))
    assert not orphan.exists()


def test_public_names_are_declared() -> None:
    modules = [bundle, fetch, minisign, mirror, ops, serve, store, tokens, verify]
    for module in modules:
        assert module.__all__, module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert images_pkg.__doc__ and "never" in images_pkg.__doc__
