"""devcluster.ports: free ports and readiness polling."""

import pytest

from devcluster import ports


def test_free_port_is_not_listening():
    assert not ports.port_open(ports.free_port())


def test_wait_until_names_what_timed_out():
    with pytest.raises(TimeoutError, match="the thing did not become ready"):
        ports.wait_until(lambda: False, timeout=0.2, what="the thing")


def test_wait_until_treats_exceptions_as_not_yet():
    calls = []

    def flaky() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("refused")
        return True

    ports.wait_until(flaky, timeout=5, what="flaky", interval=0.01)
    assert len(calls) == 3
