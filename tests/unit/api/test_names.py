"""agent_api.names: deterministic, unique across a namespace, never reused."""

from __future__ import annotations

import itertools
import re

import pytest

from agent_api import constants, names

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize("filename", ["adjectives", "animals"])
def test_word_lists_are_clean(filename: str) -> None:
    words = getattr(names, filename)()
    assert len(words) >= 250
    assert len(set(words)) == len(words)
    assert all(re.fullmatch(r"[a-z]{2,9}", w) for w in words)
    assert list(words) == sorted(words)


def test_no_word_is_both_an_adjective_and_an_animal() -> None:
    assert not set(names.adjectives()) & set(names.animals())


def test_longest_name_fits_the_constant() -> None:
    assert names.max_name_length() <= constants.MAX_REPLICA_NAME_LENGTH
    longest_pod = "c" * constants.MAX_CLUSTER_NAME_LENGTH + "-" + "r" * constants.MAX_REPLICA_NAME_LENGTH
    assert len(longest_pod) == constants.DNS_LABEL_MAX


def test_candidates_are_a_pure_function_of_the_cluster_name() -> None:
    first = list(itertools.islice(names.candidates("demo"), 50))
    assert first == list(itertools.islice(names.candidates("demo"), 50))
    assert first != list(itertools.islice(names.candidates("demo2"), 50))
    assert all(DNS_LABEL.match(n) and n.count("-") == 1 for n in first)


def test_first_pass_is_every_pair_exactly_once() -> None:
    size = len(names.adjectives()) * len(names.animals())
    first_pass = list(itertools.islice(names.candidates("x"), size))
    assert len(set(first_pass)) == size
    second = next(itertools.islice(names.candidates("x"), size, None))
    assert second.endswith("2") and second[:-1] in set(first_pass)


def test_allocate_is_deterministic_and_skips_taken() -> None:
    five = names.allocate("demo", 5, set())
    assert names.allocate("demo", 5, set()) == five
    assert len(set(five)) == 5
    shifted = names.allocate("demo", 4, {five[0]})
    assert shifted == five[1:]


def test_allocate_in_a_fresh_namespace_repeats_the_names() -> None:
    """Same cluster, same history (create 5, scale 5->3->5): the same names anywhere."""

    def history() -> tuple[list[str], list[str]]:
        members = names.allocate("agents", 5, set())
        archived = members[3:]
        members = members[:3] + names.allocate("agents", 2, set(members) | set(archived))
        return members, archived

    assert history() == history()
    members, archived = history()
    assert len(set(members) | set(archived)) == 7


def test_two_clusters_of_twenty_share_no_name() -> None:
    taken: set[str] = set()
    alpha = names.allocate("alpha", 20, taken)
    taken.update(alpha)
    beta = names.allocate("beta", 20, taken)
    assert len(set(alpha)) == 20 and len(set(beta)) == 20
    assert not set(alpha) & set(beta)


def test_clusters_sharing_candidates_still_get_unique_names() -> None:
    """Even a cluster whose sequence is identical to another's (same name, other
    namespace recreated here) is pushed onto fresh names by `taken`."""
    taken = set(names.allocate("same", 20, set()))
    again = names.allocate("same", 20, taken)
    assert not set(again) & taken


def test_scale_5_3_5_gives_two_new_names_never_seen_before() -> None:
    members = names.allocate("demo", 5, set())
    archived = members[3:]  # LIFO: the newest two go
    members = members[:3]
    new = names.allocate("demo", 2, set(members) | set(archived))
    assert not set(new) & (set(members) | set(archived))
    assert len(set(new)) == 2


def test_resuming_gives_the_same_names_as_one_big_allocation() -> None:
    """An operator that allocates 3 then 4 gets the same names as one allocation of 7."""
    taken = {"daring-duck", "swift-falcon"}
    first = names.allocate("resume", 3, taken)
    rest = names.allocate("resume", 4, taken | set(first))
    assert first + rest == names.allocate("resume", 7, taken)


def test_allocate_zero_and_negative() -> None:
    assert names.allocate("demo", 0, set()) == []
    with pytest.raises(ValueError, match="count must be >= 0"):
        names.allocate("demo", -1, set())


def test_exhaustion_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(names, "PASSES", 1)
    monkeypatch.setattr(names, "adjectives", lambda: ("brave", "calm"))
    monkeypatch.setattr(names, "animals", lambda: ("duck", "owl", "yak"))
    six = names.allocate("tiny", 6, set())
    assert sorted(six) == sorted(f"{a}-{b}" for a in ("brave", "calm") for b in ("duck", "owl", "yak"))
    with pytest.raises(names.NamesExhaustedError, match="no replica names left"):
        names.allocate("tiny", 2, {six[0]} | set(six[2:]))
