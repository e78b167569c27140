"""`agentclusters dev logs [-f]`: the product's logs in a devcluster, one stream, like `tail -F`
over several files.

Sources are the operator's and every gateway's log (`<cluster>/logs/operator*.log`,
`gateway*.log`) and every container log the process kubelet writes
(`<cluster>/kubelet/pods/<namespace>_<pod>/<container>.log`: the agent replicas). The list is
taken again on every poll, so a replica started after the command began shows up, and a log
that was truncated is read again from its start. A line is printed only once it is complete,
prefixed with its source when several are followed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

COMPONENT_PATTERNS = ("operator*.log", "gateway*.log")
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Source:
    label: str
    path: Path


def product_sources(cluster_dir: Path) -> list[Source]:
    """The operator, the gateways and every pod container of a devcluster state directory."""
    found = [Source(path.stem, path) for pattern in COMPONENT_PATTERNS
             for path in sorted((cluster_dir / "logs").glob(pattern))]
    for path in sorted((cluster_dir / "kubelet" / "pods").glob("*/*.log")):
        # <namespace>_<pod>: a namespace never contains "_", a pod name never does either.
        namespace, _, pod = path.parent.name.partition("_")
        found.append(Source(f"{namespace}/{pod}/{path.stem}", path))
    return found


@dataclass
class Follower:
    """Reads what each source has gained since the last poll and writes its complete lines."""

    sources: Callable[[], list[Source]]
    out: TextIO
    prefix: bool = True
    tail: int | None = None
    """On a source's first read, only its last `tail` lines (None: all of them)."""
    _offsets: dict[Path, int] = field(default_factory=dict)
    _partial: dict[Path, bytes] = field(default_factory=dict)

    def poll(self, final: bool = False) -> int:
        """Write every complete line written since the last poll (`final`: and an unfinished
        last line too, when nothing will follow); how many."""
        written = 0
        for source in self.sources():
            lines = self._new_lines(source.path)
            if final and self._partial.get(source.path):
                lines.append(self._partial.pop(source.path))
            for line in lines:
                text = line.decode(errors="replace")
                self.out.write(f"[{source.label}] {text}\n" if self.prefix else f"{text}\n")
            written += len(lines)
        self.out.flush()
        return written

    def _new_lines(self, path: Path) -> list[bytes]:
        first = path not in self._offsets
        offset = self._offsets.get(path, 0)
        try:
            size = path.stat().st_size
            if size < offset:  # truncated or replaced: read it again from the start
                offset, self._partial[path] = 0, b""
            with path.open("rb") as log:
                log.seek(offset)
                data = log.read()
        except FileNotFoundError:
            return []
        self._offsets[path] = offset + len(data)
        *lines, rest = (self._partial.get(path, b"") + data).split(b"\n")
        self._partial[path] = rest
        if first and self.tail is not None:
            return list(deque(lines, maxlen=self.tail))
        return lines


def follow(follower: Follower, keep_going: Callable[[], bool] = lambda: True,
           interval: float = POLL_SECONDS) -> None:
    """Poll until `keep_going` says stop (the command stops on Ctrl-C instead)."""
    while keep_going():
        follower.poll()
        time.sleep(interval)
