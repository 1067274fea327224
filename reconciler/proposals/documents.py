"""Proposals for the documents gitfirm suggests by itself (an upstream build's Image)."""

from __future__ import annotations

import yaml

from reconciler.model.kinds import Image
from reconciler.proposals.model import Proposal

__all__ = ["image_proposal"]


def image_proposal(image: Image, source: str, build_url: str) -> Proposal:
    """A proposal adding ``images/proposed/<name>.yaml`` for a verified upstream build.

    Its subject is the build's URL on the feed, so a build is proposed once, and a look at
    the feed can tell a build it proposed before without downloading it again.
    """
    spec = image.spec
    body = (
        f"ImageSource {source} offered {spec.source.file_name} (version {spec.version}). "
        f"gitfirm downloaded it and verified it against the {spec.channel} channel's "
        f"TrustPolicy: size {spec.size} bytes, SHA-256 {spec.sha256}, minisign key "
        f"{spec.signature.minisign.key if spec.signature.minisign else '-'}.\n\n"
        "Merging approves it for the channel; rollouts that follow the channel take it.\n"
    )
    doc = image.model_dump(mode="json", exclude_defaults=True)
    return Proposal(
        kind="image",
        subject=build_url,
        title=f"Add {spec.channel} image {spec.version}",
        body=body,
        files={f"images/proposed/{image.name}.yaml": yaml.safe_dump(doc, sort_keys=False)},
    )
