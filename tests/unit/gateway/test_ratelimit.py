"""The rate limiter's in-memory counting (agent_gateway.ratelimit.Counts): what it admits on its
own, when it must synchronise, and how Redis' totals enter its estimate."""

from __future__ import annotations

import pytest

from agent_gateway import ratelimit


@pytest.mark.parametrize(("per_minute", "batch"), [(3, 1), (39, 1), (40, 2), (120, 6), (200, 10), (10_000, 50)])
def test_a_batch_is_a_twentieth_of_the_limit_between_one_and_fifty(per_minute, batch):
    assert ratelimit.batch_for(per_minute) == batch


def test_calls_are_counted_locally_until_a_batch_is_full():
    counts = ratelimit.Counts(batch=3)
    assert counts.count("alice", 7) == (1, False)
    assert counts.count("alice", 7) == (2, False)
    assert counts.count("alice", 7) == (3, True)


def test_every_caller_has_its_own_count():
    counts = ratelimit.Counts(batch=10)
    counts.count("alice", 7)
    assert counts.count("bob", 7) == (1, False)


def test_a_new_window_starts_from_zero():
    counts = ratelimit.Counts(batch=10)
    counts.count("alice", 7)
    counts.count("alice", 7)
    assert counts.count("alice", 8) == (1, False)


def test_the_total_redis_answers_includes_the_other_gateways_calls():
    counts = ratelimit.Counts(batch=10)
    counts.count("alice", 7)
    counts.count("alice", 7)
    [(caller, window, calls)] = counts.take(7)
    assert (caller, window, calls) == ("alice", 7, 2)
    counts.sent("alice", 7, calls, total=15)  # 13 calls from other gateways
    assert counts.count("alice", 7) == (16, False)


def test_calls_being_sent_still_count_until_redis_answers():
    counts = ratelimit.Counts(batch=10)
    counts.count("alice", 7)
    counts.take(7)
    assert counts.count("alice", 7) == (2, False)


def test_calls_whose_sending_failed_are_sent_again():
    counts = ratelimit.Counts(batch=10)
    counts.count("alice", 7)
    counts.take(7)
    counts.sent("alice", 7, 1, total=None)
    assert counts.take(7) == [("alice", 7, 1)]


def test_callers_with_nothing_new_are_still_read_back_for_the_others_calls():
    counts = ratelimit.Counts(batch=10)
    counts.count("alice", 7)
    counts.sent("alice", 7, *[c for _, _, c in counts.take(7)], total=1)
    assert counts.take(7) == [("alice", 7, 0)]


def test_an_older_windows_counts_are_dropped_when_the_window_turns():
    counts = ratelimit.Counts(batch=10)
    counts.count("alice", 7)
    assert counts.take(8) == []
    assert counts.tallies == {}


def test_a_late_answer_never_lowers_the_total():
    counts = ratelimit.Counts(batch=10)
    counts.count("alice", 7)
    first = counts.take(7)
    counts.count("alice", 7)
    second = counts.take(7)
    counts.sent("alice", 7, second[0][2], total=30)
    counts.sent("alice", 7, first[0][2], total=20)
    assert counts.tallies["alice"].estimate == 30
