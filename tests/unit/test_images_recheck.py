"""recheck / check_stored: a stored image is checked against the trust in force now."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.clock import FakeClock
from reconciler.errors import ImageRefused
from reconciler.images import minisign
from reconciler.images.reasons import Reason
from reconciler.images.recheck import recheck
from reconciler.images.store import ImageStore, StoredImage
from reconciler.images.verify import verify_image
from reconciler.model.kinds import Image
from tests.support.images import SignedImage, make_image, trust_policy


def _with(image: Image, **spec: object) -> Image:
    return image.model_copy(update={"spec": image.spec.model_copy(update=spec)})


@pytest.fixture
def stored(tmp_path: Path) -> tuple[ImageStore, SignedImage, StoredImage]:
    si = make_image(tmp_path / "src", channel="testing")
    st = ImageStore(tmp_path / "cache", FakeClock())
    v = verify_image(si.image, si.file, [si.trust], minisig=si.minisig)
    temp, sig = st.tmp / "x.part", st.tmp / "x.sig"
    shutil.copy(si.file, temp)
    shutil.copy(si.minisig, sig)
    return st, si, st.add(v, temp, (".minisig", sig))


def _reason(st: ImageStore, s: StoredImage, image: Image, *trust: object) -> str:
    with pytest.raises(ImageRefused) as info:
        recheck(image, s, list(trust), store=st)  # type: ignore[arg-type]
    return info.value.reason


def test_still_trusted_needs_no_bytes(stored: tuple[ImageStore, SignedImage, StoredImage]) -> None:
    st, si, s = stored
    s.path.write_bytes(b"")  # the check reads the kept digests, never the image
    assert recheck(si.image, s, [si.trust], store=st).signer.startswith("minisign:release:")


def test_removed_key_and_other_channel_are_refused(
    stored: tuple[ImageStore, SignedImage, StoredImage],
) -> None:
    st, si, s = stored
    other = minisign.generate_keypair().public
    assert _reason(st, s, si.image, trust_policy({"release": other})) == Reason.KEY_NOT_TRUSTED
    prod = _with(si.image, channel="production")
    by_channel = [
        trust_policy({"release": si.key.public}, channels=("testing",), name="t"),
        trust_policy({"release": other}, channels=("production",), name="p"),
    ]
    assert _reason(st, s, prod, *by_channel) == Reason.KEY_NOT_TRUSTED
    assert recheck(si.image, s, by_channel, store=st).channel == "testing"


def test_relabelled_and_revoked(stored: tuple[ImageStore, SignedImage, StoredImage]) -> None:
    st, si, s = stored
    assert _reason(st, s, _with(si.image, version="1.4.9"), si.trust) == Reason.RELABELLED
    assert _reason(st, s, _with(si.image, revoked=True), si.trust) == Reason.REVOKED


def test_old_record_is_hashed_once(stored: tuple[ImageStore, SignedImage, StoredImage]) -> None:
    st, si, s = stored
    meta = st.meta / f"{s.verified.sha256}.json"
    record = json.loads(meta.read_text())
    del record["verified"]["blake2b"]
    meta.write_text(json.dumps(record))
    old = st.get(s.verified.sha256)
    assert old is not None and old.verified.blake2b == ""
    recheck(si.image, old, [si.trust], store=st)
    again = st.get(s.verified.sha256)
    assert again is not None and again.verified.blake2b == s.verified.blake2b != ""
