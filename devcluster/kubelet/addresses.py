"""Pod IPs: every live pod gets its own loopback address (127.x.y.z, never 127.0.0.1).

Linux routes the whole 127.0.0.0/8 block to the loopback interface, so a process can bind
`127.1.0.7:8080` without any network set-up, and two pods can both listen on port 8080.
Addresses are handed out round-robin from 127.1.0.1 upwards (skipping .0 and .255 host
bytes), so a freshly released address is not reused at once by the next pod.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import tempfile
import threading
from pathlib import Path

HOST_IP = "127.0.0.1"
_FIRST = int(ipaddress.IPv4Address("127.1.0.1"))
_LAST = int(ipaddress.IPv4Address("127.255.255.254"))


class AddressesExhausted(RuntimeError):
    pass


# Held open for the life of the kubelet process: the OS drops the lock when it exits.
_block_locks: list[int] = []


def claim_block(lock_dir: Path | None = None) -> tuple[str, str]:
    """A 127.N.0.0/16 block no other kubelet on this machine uses (first, last address).

    Several devclusters may run at once (tests, `make demo`, `make dev-up`); without this
    two of them would hand the same loopback address to two pods and the second one's
    server could not bind. One lock file per block, taken with flock, decides.
    """
    lock_dir = lock_dir or Path(tempfile.gettempdir()) / "agentclusters-podnets"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for octet in range(1, 256):
        fd = os.open(lock_dir / f"127.{octet}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _block_locks.append(fd)
        return f"127.{octet}.0.1", f"127.{octet}.255.254"
    raise AddressesExhausted("every 127.N.0.0/16 pod address block is held by another kubelet")


class AddressAllocator:
    def __init__(self, first: str = "127.1.0.1", last: str = "127.255.255.254") -> None:
        self._first = int(ipaddress.IPv4Address(first))
        self._last = int(ipaddress.IPv4Address(last))
        if not (_FIRST <= self._first <= self._last <= _LAST):
            raise ValueError(f"pod address range {first}-{last} must lie within 127.1.0.1-127.255.255.254")
        self._next = self._first
        self._owners: dict[str, str] = {}  # address -> owner (pod uid)
        self._lock = threading.Lock()

    def allocate(self, owner: str, preferred: str | None = None) -> str:
        """An address for `owner` (the same one again if it already holds one).

        `preferred` (e.g. the podIP the API already records after a kubelet restart) is
        granted when it is a valid, free pod address."""
        with self._lock:
            for address, holder in self._owners.items():
                if holder == owner:
                    return address
            if preferred and self._usable(preferred) and preferred not in self._owners:
                self._owners[preferred] = owner
                return preferred
            size = self._last - self._first + 1
            for _ in range(size):
                candidate = self._next
                self._next = self._first if candidate >= self._last else candidate + 1
                address = str(ipaddress.IPv4Address(candidate))
                if candidate & 0xFF in (0, 255) or address in self._owners:
                    continue
                self._owners[address] = owner
                return address
            raise AddressesExhausted("no free loopback address for another pod")

    def release(self, owner: str) -> None:
        with self._lock:
            for address in [a for a, holder in self._owners.items() if holder == owner]:
                del self._owners[address]

    def in_use(self) -> dict[str, str]:
        with self._lock:
            return dict(self._owners)

    def _usable(self, address: str) -> bool:
        try:
            value = int(ipaddress.IPv4Address(address))
        except ValueError:
            return False
        return self._first <= value <= self._last and value & 0xFF not in (0, 255)
