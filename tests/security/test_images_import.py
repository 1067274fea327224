"""``gitfirm image import`` never trusts a bundle's own TrustPolicies: whoever made the
bundle could pin their own key in it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.cli import main
from reconciler.images import minisign
from tests.support.images import make_image


def test_import_without_repo_refuses_the_bundles_own_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attacker = minisign.generate_keypair()
    si = make_image(tmp_path / "src", version="1.4.4", key=attacker)
    repo = tmp_path / "attacker-repo"
    (repo / "images").mkdir(parents=True)
    (repo / "images" / "i.yaml").write_text(
        yaml.safe_dump(si.image.model_dump(mode="json", exclude_defaults=True))
    )
    (repo / "trust.yaml").write_text(
        yaml.safe_dump(si.trust.model_dump(mode="json", exclude_defaults=True))
    )
    cache = str(tmp_path / "cache")
    assert main(["image", "fetch", str(repo), "--cache-dir", cache]) == 0
    bundle = tmp_path / "evil.tar"
    export = ["image", "export", "--out", str(bundle), "--repo", str(repo), "--cache-dir", cache]
    assert main([*export, si.image.name]) == 0
    capsys.readouterr()

    site = tmp_path / "site"
    assert main(["image", "import", str(bundle), "--cache-dir", str(site)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--repo" in err[0]
    assert not site.exists()  # refused before any store is opened

    # With the site's own repository, whose TrustPolicy pins another key: refused.
    own = tmp_path / "site-repo"
    own.mkdir()
    other = make_image(tmp_path / "other", version="1.4.4").trust
    (own / "trust.yaml").write_text(
        yaml.safe_dump(other.model_dump(mode="json", exclude_defaults=True))
    )
    imported = ["image", "import", str(bundle), "--repo", str(own), "--cache-dir", str(site)]
    assert main(imported) == 1
    assert "refused: key-not-trusted" in capsys.readouterr().out
    assert not list((site / "meta").glob("*.json"))
