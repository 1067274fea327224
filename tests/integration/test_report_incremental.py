"""A status commit touches only what changed: real git, counted work, identical bytes.

With a fleet on the branch, a transition of one device must render that device's file
(and the README), not every device's, and must not read the whole checkout back. The
counts come from counting wrappers around the real functions; the bytes pushed must be
exactly what a full render of the same snapshot gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.clock import FakeClock
from reconciler.model.facts import Health
from reconciler.report import readme, render
from reconciler.report.render import load_documents, render_files
from reconciler.report.snapshot import DeviceStatus, PhaseChange
from reconciler.report.tree import StatusTree
from reconciler.report.writer import StatusWriter, WriterSettings
from tests.support.gitrepo import git
from tests.support.report import T0, ConfigRemote, show, snapshot

FLEET = 200


def counting(calls: list[int], real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, counting its calls in ``calls[0]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    return wrapper


async def test_one_transition_renders_and_reads_one_device(
    remote: ConfigRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    writer = StatusWriter(
        WriterSettings(remote=str(remote.path), workdir=tmp_path / "clone"), clock=clock
    )
    await writer.open()
    first = snapshot(remote.revision, {f"r{i:03d}": "pending" for i in range(FLEET)})
    assert (await writer.write(first)).pushed

    moved = dataclasses.replace(
        first.devices[7], phase="stage", last_transition=PhaseChange("pending", "stage", T0)
    )
    devices: tuple[DeviceStatus, ...] = (*first.devices[:7], moved, *first.devices[8:])
    second = dataclasses.replace(first, devices=devices)

    rendered, reads = [0], [0]
    monkeypatch.setattr(render, "_device_doc", counting(rendered, render._device_doc))
    monkeypatch.setattr(Path, "read_bytes", counting(reads, Path.read_bytes))
    result = await writer.write(second)
    monkeypatch.undo()

    assert result.commit and result.pushed
    assert rendered[0] == 1, rendered  # the one device that changed
    assert reads[0] == 0, reads  # the writer knows what its checkout holds
    touched = git(remote.path, "show", "--name-only", "--format=", "status").split()
    assert touched == ["README.md", "devices/r007.yaml"]
    for path, data in render_files(second).items():
        assert show(remote.path, "status", path).strip() == data.decode().strip(), path


async def test_after_a_lost_race_the_tree_is_read_again(
    remote: ConfigRemote, tmp_path: Path
) -> None:
    """Another writer moved the branch: the regenerated commit is a full, exact render."""
    clock = FakeClock(autojump=True)  # the retry delay passes at once
    settings = WriterSettings(remote=str(remote.path), workdir=tmp_path / "a")
    ours = StatusWriter(settings, clock=clock)
    theirs = StatusWriter(dataclasses.replace(settings, workdir=tmp_path / "b"), clock=clock)
    await ours.open()
    await theirs.open()
    base = snapshot(remote.revision, {"r1": "pending", "r2": "pending"})
    assert (await ours.write(base)).pushed
    await theirs.open()
    assert (await theirs.write(snapshot(remote.revision, {"r1": "done", "r3": "stage"}))).pushed
    final = snapshot(remote.revision, {"r1": "stage", "r2": "stage"})
    result = await ours.write(final)
    assert result.pushed and result.attempts == 2
    tree = git(remote.path, "ls-tree", "-r", "--name-only", "status").split()
    assert tree == sorted(render_files(final))
    for path, data in render_files(final).items():
        assert show(remote.path, "status", path).strip() == data.decode().strip(), path


async def test_a_new_observation_of_unchanged_devices_renders_only_the_changed_one(
    remote: ConfigRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every observation brings new entries (new ``observed_at``, new live numbers): the
    devices whose files stay the same are compared, not rendered again."""
    writer = StatusWriter(
        WriterSettings(remote=str(remote.path), workdir=tmp_path / "clone"), clock=FakeClock()
    )
    await writer.open()
    phases = {f"r{i:03d}": "pending" for i in range(FLEET)}
    first = snapshot(remote.revision, phases)
    assert (await writer.write(first)).pushed

    later = T0 + timedelta(minutes=5)
    live = Health(uptime_seconds=600.0, load1=0.5)

    def observed_again(d: DeviceStatus) -> DeviceStatus:
        assert d.facts is not None
        update: dict[str, Any] = {"observed_at": later, "rtt_ms": 12.5, "health": live}
        if d.name == "r009":
            update["version"] = "1.4.3"
        return dataclasses.replace(d, facts=d.facts.model_copy(update=update))

    second = dataclasses.replace(first, devices=tuple(map(observed_again, first.devices)))
    assert all(a is not b for a, b in zip(first.devices, second.devices, strict=True))

    rendered = [0]
    monkeypatch.setattr(render, "_device_doc", counting(rendered, render._device_doc))
    result = await writer.write(second)
    monkeypatch.undo()

    assert result.commit and result.pushed
    assert rendered[0] == 1, rendered  # r009 runs another version; the rest are compared
    touched = git(remote.path, "show", "--name-only", "--format=", "status").split()
    assert touched == ["README.md", "devices/r009.yaml"]
    # Byte for byte a full render over the previous files: unchanged devices keep the
    # observed_at that first showed their facts; r009's is the new observation's.
    previous = load_documents(render_files(first))
    for path, data in render_files(second, previous=previous).items():
        assert show(remote.path, "status", path).strip() == data.decode().strip(), path
    assert later.isoformat().replace("+00:00", "Z") in show(
        remote.path, "status", "devices/r009.yaml"
    )

    # A later write after a transition still renders that device from its newest entry.
    moved = dataclasses.replace(
        second.devices[3], phase="stage", last_transition=PhaseChange("pending", "stage", later)
    )
    third = dataclasses.replace(second, devices=(*second.devices[:3], moved, *second.devices[4:]))
    assert (await writer.write(third)).pushed
    for path, data in render_files(third, previous=previous).items():
        assert show(remote.path, "status", path).strip() == data.decode().strip(), path


def test_many_documents_are_rendered_in_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first commit of a large fleet renders its device files in another process (its
    seconds of YAML dumping held the GIL against the daemon's event loop), with the bytes a
    full render gives; a later change of one device renders it here."""
    first = snapshot("a" * 40, {f"r{i:03d}": "pending" for i in range(40)})
    tree = StatusTree(offload_at=10)
    tree.load({})
    here = [0]
    monkeypatch.setattr(render, "_device_doc", counting(here, render._device_doc))
    change = tree.change(first)
    assert here[0] == 0, here  # every device document was made in the child
    assert change.files == render_files(first)
    tree.apply(change)

    moved = dataclasses.replace(
        first.devices[5], phase="stage", last_transition=PhaseChange("pending", "stage", T0)
    )
    second = dataclasses.replace(first, devices=(*first.devices[:5], moved, *first.devices[6:]))
    here[0] = 0
    change = tree.change(second)
    assert here[0] == 1, here
    assert set(change.files) == {"README.md", "devices/r005.yaml"}
    assert change.files["devices/r005.yaml"] == render_files(second)["devices/r005.yaml"]


def test_the_readme_renders_again_only_the_rows_of_changed_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README has a row per device: a commit after one transition makes one row (at
    10,000 devices the whole table cost 0.2 s of every commit), and the same bytes."""
    first = snapshot("a" * 40, {f"r{i:03d}": "pending" for i in range(40)})
    tree = StatusTree()
    tree.load({})
    tree.apply(tree.change(first))
    moved = dataclasses.replace(
        first.devices[9], phase="stage", last_transition=PhaseChange("pending", "stage", T0)
    )
    second = dataclasses.replace(first, devices=(*first.devices[:9], moved, *first.devices[10:]))
    rows = [0]
    monkeypatch.setattr(readme, "_device_row", counting(rows, readme._device_row))
    change = tree.change(second)
    assert rows[0] == 1, rows
    monkeypatch.undo()
    assert change.files["README.md"] == render_files(second)["README.md"]
