"""devcluster.kubelet.addresses: one loopback address per live pod."""

import ipaddress

import pytest

from devcluster.kubelet.addresses import AddressAllocator, AddressesExhausted


def test_addresses_are_unique_loopback_and_never_the_host_address():
    allocator = AddressAllocator()
    addresses = [allocator.allocate(f"pod-{i}") for i in range(600)]
    assert len(set(addresses)) == 600
    for address in addresses:
        ip = ipaddress.IPv4Address(address)
        assert ip.is_loopback and address != "127.0.0.1"
        assert address.split(".")[-1] not in ("0", "255")


def test_the_same_owner_gets_the_same_address():
    allocator = AddressAllocator()
    assert allocator.allocate("a") == allocator.allocate("a")


def test_released_addresses_are_not_reused_at_once():
    allocator = AddressAllocator()
    first = allocator.allocate("a")
    allocator.release("a")
    assert allocator.allocate("b") != first
    assert "a" not in allocator.in_use().values()


def test_a_preferred_free_address_is_honoured_and_a_taken_one_is_not():
    allocator = AddressAllocator()
    assert allocator.allocate("a", preferred="127.1.2.3") == "127.1.2.3"
    assert allocator.allocate("b", preferred="127.1.2.3") != "127.1.2.3"
    assert allocator.allocate("c", preferred="127.0.0.1") != "127.0.0.1"
    assert allocator.allocate("d", preferred="10.0.0.1").startswith("127.")


def test_a_full_range_raises_and_frees_up_after_release():
    allocator = AddressAllocator("127.1.0.1", "127.1.0.3")
    for owner in "abc":
        allocator.allocate(owner)
    with pytest.raises(AddressesExhausted):
        allocator.allocate("d")
    allocator.release("b")
    assert allocator.allocate("d") == "127.1.0.2"


def test_the_range_must_stay_off_127_0():
    with pytest.raises(ValueError):
        AddressAllocator("127.0.0.1", "127.0.0.9")


def test_each_kubelet_claims_its_own_address_block(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path; from devcluster.kubelet import addresses; "
        "print(addresses.claim_block(Path(sys.argv[1]))[0]); sys.stdout.flush(); sys.stdin.read()"
    )
    holders = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        firsts = [h.stdout.readline().strip() for h in holders]
    finally:
        for holder in holders:
            holder.communicate("")
    assert firsts[0] != firsts[1]
    assert all(f.startswith("127.") and f.endswith(".0.1") for f in firsts)


def test_a_released_block_is_claimed_again(tmp_path):
    import subprocess
    import sys

    script = "import sys; from pathlib import Path; from devcluster.kubelet import addresses; " \
             "print(addresses.claim_block(Path(sys.argv[1]))[0])"
    runs = [subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)]
    assert runs[0] == runs[1] == "127.1.0.1"
