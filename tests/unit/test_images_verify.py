"""verify_image: every reason code, the Verified record and one trust root per channel."""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path

import pytest

from reconciler.errors import ImageRefused
from reconciler.images import minisign
from reconciler.images.reasons import Reason
from reconciler.images.verify import verify_image
from reconciler.model.kinds import Image, TrustPolicy
from tests.support.images import SIGSTORE_DIR, SignedImage, image_doc, make_image, trust_policy


def _with(image: Image, **spec: object) -> Image:
    return image.model_copy(update={"spec": image.spec.model_copy(update=spec)})


def _reason(si: SignedImage, image: Image | None = None) -> str:
    with pytest.raises(ImageRefused) as info:
        verify_image(image or si.image, si.file, [si.trust], minisig=si.minisig)
    return info.value.reason


@pytest.fixture
def signed(tmp_path: Path) -> SignedImage:
    return make_image(tmp_path / "src")


def test_verified_record(signed: SignedImage) -> None:
    v = verify_image(signed.image, signed.file, [signed.trust], minisig=signed.minisig)
    assert v.sha256 == hashlib.sha256(signed.data).hexdigest()
    assert v.size == len(signed.data)
    assert v.signed_timestamp == 1_700_000_000
    assert v.signer == f"minisign:release:{signed.key.public.key_id_hex}"
    assert (v.file_name, v.version, v.channel) == (signed.file.name, "1.4.3", "production")


def test_size_and_sha256(signed: SignedImage) -> None:
    assert _reason(signed, _with(signed.image, size=signed.image.spec.size + 1)) == "size-mismatch"
    assert _reason(signed, _with(signed.image, sha256="0" * 64)) == Reason.SHA256_MISMATCH


def test_changed_byte_with_declared_digest_is_sha256_mismatch(signed: SignedImage) -> None:
    data = bytearray(signed.data)
    data[5000] ^= 1
    signed.file.write_bytes(bytes(data))
    assert _reason(signed) == Reason.SHA256_MISMATCH
    # Declaring the changed bytes' digest leaves only the signature to catch it.
    changed = _with(signed.image, sha256=hashlib.sha256(bytes(data)).hexdigest())
    assert _reason(signed, changed) == Reason.SIGNATURE_INVALID


def test_signature_missing(signed: SignedImage) -> None:
    signed.minisig.unlink()
    assert _reason(signed) == Reason.SIGNATURE_MISSING


def test_key_must_be_pinned_by_name_for_the_channel(signed: SignedImage) -> None:
    other = minisign.generate_keypair().public
    with pytest.raises(ImageRefused) as info:
        verify_image(
            signed.image, signed.file, [trust_policy({"release": other})], minisig=signed.minisig
        )
    assert info.value.reason == Reason.KEY_NOT_TRUSTED
    testing_only = trust_policy({"release": signed.key.public}, channels=("testing",))
    with pytest.raises(ImageRefused) as info:
        verify_image(signed.image, signed.file, [testing_only], minisig=signed.minisig)
    assert info.value.reason == Reason.KEY_NOT_TRUSTED
    wrong_name = trust_policy({"backup": signed.key.public})
    with pytest.raises(ImageRefused) as info:
        verify_image(signed.image, signed.file, [wrong_name], minisig=signed.minisig)
    assert info.value.reason == Reason.KEY_NOT_TRUSTED


def test_file_mismatch(signed: SignedImage) -> None:
    sig = minisign.sign_file(signed.file, signed.key, timestamp=1, file_name="other.iso")
    signed.minisig.write_text(minisign.format_signature(sig))
    assert _reason(signed) == Reason.FILE_MISMATCH


def test_legacy_signature(signed: SignedImage) -> None:
    text = signed.minisig.read_text().splitlines()
    raw = bytearray(base64.b64decode(text[1]))
    raw[:2] = b"Ed"
    text[1] = base64.b64encode(bytes(raw)).decode()
    signed.minisig.write_text("\n".join(text) + "\n")
    assert _reason(signed) == Reason.LEGACY_SIGNATURE


def test_revoked(signed: SignedImage) -> None:
    assert _reason(signed, _with(signed.image, revoked=True)) == Reason.REVOKED


def test_one_trust_root_per_channel_keys_are_never_merged(signed: SignedImage) -> None:
    # A second policy pinning the signer's key for the same channel does not widen trust:
    # the channel has two roots, so nothing verifies until one is removed.
    own = trust_policy({"release": minisign.generate_keypair().public}, name="official")
    planted = trust_policy({"release": signed.key.public}, name="planted")
    with pytest.raises(ImageRefused) as info:
        verify_image(signed.image, signed.file, [own, planted], minisig=signed.minisig)
    assert info.value.reason == Reason.KEY_NOT_TRUSTED
    assert "several TrustPolicies (official, planted)" in info.value.detail
    v = verify_image(signed.image, signed.file, [planted], minisig=signed.minisig)
    assert v.blake2b == hashlib.blake2b(signed.data, digest_size=64).hexdigest()


needs_sigstore = pytest.mark.skipif(
    not SIGSTORE_DIR.is_dir(), reason=f"sigstore test data absent at {SIGSTORE_DIR}"
)
GITHUB = "https://github.com/login/oauth"


def _sigstore_case(
    tmp_path: Path, artifact: str, identity: str, root: Path
) -> tuple[Image, Path, list[TrustPolicy]]:
    file = tmp_path / artifact
    shutil.copy(SIGSTORE_DIR / artifact, file)
    data = file.read_bytes()
    image = image_doc(
        "sig",
        version="1.4.3",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        url=f"file:///x/{artifact}",
        bundle_url=f"file:///x/{artifact}.sigstore",
    )
    trust = trust_policy(
        {},
        sigstore={
            "trustedRoot": str(root),
            "identities": [{"identity": identity, "issuer": GITHUB}],
        },
    )
    return image, file, [trust]


@needs_sigstore
@pytest.mark.parametrize(
    ("artifact", "identity"),
    [("bundle.txt", "a@tny.town"), ("bundle_v3.txt", "william@yossarian.net")],
)
def test_sigstore_verifies(tmp_path: Path, artifact: str, identity: str) -> None:
    image, file, trust = _sigstore_case(
        tmp_path, artifact, identity, SIGSTORE_DIR / "staging-trusted-root.json"
    )
    v = verify_image(image, file, trust, bundle=SIGSTORE_DIR / f"{artifact}.sigstore")
    assert v.signer == f"sigstore:{identity} ({GITHUB})"


@needs_sigstore
def test_sigstore_refusals(tmp_path: Path) -> None:
    staging = SIGSTORE_DIR / "staging-trusted-root.json"
    bundle = SIGSTORE_DIR / "bundle.txt.sigstore"
    image, file, trust = _sigstore_case(tmp_path, "bundle.txt", "william@yossarian.net", staging)
    with pytest.raises(ImageRefused) as info:
        verify_image(image, file, trust, bundle=bundle)
    assert info.value.reason == Reason.SIGSTORE_IDENTITY_MISMATCH
    image, file, trust = _sigstore_case(tmp_path, "bundle.txt", "a@tny.town", staging)
    file.write_bytes(file.read_bytes().replace(b"a", b"b", 1))
    changed = _with(image, sha256=hashlib.sha256(file.read_bytes()).hexdigest())
    with pytest.raises(ImageRefused) as info:
        verify_image(changed, file, trust, bundle=bundle)
    assert info.value.reason == Reason.SIGSTORE_INVALID
    import sigstore

    prod = (
        Path(sigstore.__file__).parent
        / "_store"
        / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        / "trusted_root.json"
    )
    if not prod.is_file():
        pytest.skip(f"sigstore's bundled production root is absent at {prod}")
    image, file, trust = _sigstore_case(tmp_path, "bundle.txt", "a@tny.town", prod)
    with pytest.raises(ImageRefused) as info:
        verify_image(image, file, trust, bundle=bundle)
    assert info.value.reason == Reason.SIGSTORE_INVALID


def test_sigstore_missing_bundle_and_root(tmp_path: Path) -> None:
    file = tmp_path / "a.iso"
    file.write_bytes(b"abc")
    image = image_doc(
        "s",
        version="1.4.3",
        sha256=hashlib.sha256(b"abc").hexdigest(),
        size=3,
        url="file:///x/a.iso",
        bundle_url="file:///x/a.iso.sigstore",
    )
    with pytest.raises(ImageRefused) as info:
        verify_image(image, file, [trust_policy({})], bundle=tmp_path / "none")
    assert info.value.reason == Reason.SIGNATURE_MISSING
    (tmp_path / "b").write_text("{}")
    with pytest.raises(ImageRefused) as info:
        verify_image(image, file, [trust_policy({})], bundle=tmp_path / "b")
    assert info.value.reason == Reason.KEY_NOT_TRUSTED
