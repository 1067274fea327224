"""Wave assignment: canary first, percentage waves, redundancy groups apart, stickiness,
and ordering inside a wave."""

from __future__ import annotations

from collections import Counter

from reconciler.model.kinds import RolloutStrategy
from reconciler.planning.waves import Candidate, assign_waves, sticky_fraction


def _names(n: int) -> list[Candidate]:
    return [Candidate(f"r{i:04d}") for i in range(n)]


def test_canary_is_first_and_is_the_lowest_hash() -> None:
    strategy = RolloutStrategy(canary=2, waves=[50, 100])
    result = assign_waves("p", strategy, _names(20))
    canaries = sorted(n for n, a in result.items() if a.wave == 0)
    expected = sorted(
        sorted((c.name for c in _names(20)), key=lambda n: sticky_fraction("p", n))[:2]
    )
    assert canaries == expected
    assert {a.wave for a in result.values()} <= {0, 1, 2}


def test_percentage_waves_are_proportional() -> None:
    strategy = RolloutStrategy(canary=1, waves=[10, 50, 100])
    result = assign_waves("fleet", strategy, _names(2000))
    sizes = Counter(a.wave for a in result.values())
    assert sizes[0] == 1
    # Cumulative 10%, 50%, 100% of the rest: about 200, 800, 1000 devices.
    assert abs(sizes[1] - 200) < 60
    assert abs(sizes[2] - 800) < 100
    assert abs(sizes[3] - 1000) < 100
    assert sum(sizes.values()) == 2000


def test_redundancy_group_members_go_to_different_waves() -> None:
    strategy = RolloutStrategy(canary=1, waves=[10, 50, 100])
    pairs = [Candidate(f"r{i:03d}", redundancy_group=f"g{i // 2}") for i in range(200)]
    result = assign_waves("p", strategy, pairs)
    for group in {c.redundancy_group for c in pairs}:
        waves = [result[c.name].wave for c in pairs if c.redundancy_group == group]
        assert len(set(waves)) == len(waves), group
    moved = [n for n, a in result.items() if any("moved from wave" in t for t in a.notes)]
    assert moved  # with 100 pairs some collide and are moved


def test_group_larger_than_waves_keeps_the_clash_and_notes_it() -> None:
    strategy = RolloutStrategy(canary=0, waves=[100])
    trio = [Candidate(n, redundancy_group="g") for n in ("a", "b", "c")]
    result = assign_waves("p", strategy, trio)
    assert {a.wave for a in result.values()} == {1}
    assert sum(1 for a in result.values() if a.notes) == 2


def test_canary_takes_one_member_per_group() -> None:
    strategy = RolloutStrategy(canary=2, waves=[100])
    pair = [Candidate("a", redundancy_group="g"), Candidate("b", redundancy_group="g")]
    result = assign_waves("p", strategy, pair)
    assert sorted(a.wave for a in result.values()) == [0, 1]


def test_assignment_is_sticky_when_a_device_is_added() -> None:
    strategy = RolloutStrategy(canary=0, waves=[10, 50, 100])
    before = assign_waves("p", strategy, _names(300))
    after = assign_waves("p", strategy, [*_names(300), Candidate("newcomer")])
    assert all(after[n].wave == a.wave for n, a in before.items())
    # With a canary, at most the one displaced canary moves.
    strategy = RolloutStrategy(canary=1, waves=[10, 50, 100])
    before = assign_waves("p", strategy, _names(300))
    after = assign_waves("p", strategy, [*_names(300), Candidate("newcomer")])
    assert sum(1 for n, a in before.items() if after[n].wave != a.wave) <= 1


def test_hash_depends_on_policy_and_device() -> None:
    assert sticky_fraction("a", "r1") == sticky_fraction("a", "r1")
    assert sticky_fraction("a", "r1") != sticky_fraction("b", "r1")
    assert 0 <= sticky_fraction("a", "r1") < 1


def test_order_inside_wave_is_load_then_rtt_then_name() -> None:
    strategy = RolloutStrategy(canary=0, waves=[100])
    devices = [
        Candidate("d", load1=None, rtt_ms=1.0),
        Candidate("c", load1=0.5, rtt_ms=None),
        Candidate("b", load1=0.5, rtt_ms=20.0),
        Candidate("a", load1=0.5, rtt_ms=20.0),
        Candidate("e", load1=0.1, rtt_ms=90.0),
    ]
    result = assign_waves("p", strategy, devices)
    order = sorted(result, key=lambda n: result[n].order)
    assert order == ["e", "a", "b", "c", "d"]
    assert [result[n].order for n in order] == [1, 2, 3, 4, 5]


def test_empty_waves_list_puts_everyone_in_one_wave() -> None:
    result = assign_waves("p", RolloutStrategy(canary=0, waves=[]), _names(5))
    assert {a.wave for a in result.values()} == {1}
