"""Following several logs as one stream: complete lines only, labelled by source, new replicas
picked up as they appear, a truncated log read again, --tail on the first read."""

from __future__ import annotations

import io
from pathlib import Path

from devcluster import log_follow


def _cluster(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "operator.log").write_text("op 1\n")
    (tmp_path / "logs" / "gateway.log").write_text("gw 1\n")
    (tmp_path / "logs" / "kube-apiserver.log").write_text("not the product's\n")
    return tmp_path


def _pod_log(cluster: Path, namespace: str, pod: str, text: str) -> Path:
    path = cluster / "kubelet" / "pods" / f"{namespace}_{pod}" / "runtime.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_sources_are_the_operator_the_gateways_and_every_pod_container(tmp_path: Path):
    cluster = _cluster(tmp_path)
    (cluster / "logs" / "gateway-2.log").write_text("")
    _pod_log(cluster, "team-a", "scraper-daring-duck", "")
    assert [s.label for s in log_follow.product_sources(cluster)] == [
        "operator", "gateway-2", "gateway", "team-a/scraper-daring-duck/runtime"]


def test_lines_are_labelled_and_only_new_ones_are_printed_again(tmp_path: Path):
    cluster = _cluster(tmp_path)
    out = io.StringIO()
    follower = log_follow.Follower(lambda: log_follow.product_sources(cluster), out)
    assert follower.poll() == 2
    with (cluster / "logs" / "gateway.log").open("a") as log:
        log.write("gw 2\n")
    follower.poll()
    assert out.getvalue() == "[operator] op 1\n[gateway] gw 1\n[gateway] gw 2\n"


def test_a_replica_started_later_is_followed_too(tmp_path: Path):
    cluster = _cluster(tmp_path)
    out = io.StringIO()
    follower = log_follow.Follower(lambda: log_follow.product_sources(cluster), out)
    follower.poll()
    _pod_log(cluster, "team-a", "scraper-brave-bee", '{"message": "runtime started"}\n')
    follower.poll()
    assert out.getvalue().endswith('[team-a/scraper-brave-bee/runtime] {"message": "runtime started"}\n')


def test_an_unfinished_line_waits_for_its_end(tmp_path: Path):
    cluster = _cluster(tmp_path)
    out = io.StringIO()
    follower = log_follow.Follower(lambda: log_follow.product_sources(cluster), out)
    follower.poll()
    with (cluster / "logs" / "operator.log").open("a") as log:
        log.write("half")
    assert follower.poll() == 0
    with (cluster / "logs" / "operator.log").open("a") as log:
        log.write(" and the rest\n")
    follower.poll()
    assert out.getvalue().endswith("[operator] half and the rest\n")


def test_a_truncated_log_is_read_again_from_its_start(tmp_path: Path):
    cluster = _cluster(tmp_path)
    out = io.StringIO()
    follower = log_follow.Follower(lambda: log_follow.product_sources(cluster), out)
    follower.poll()
    (cluster / "logs" / "operator.log").write_text("new\n")
    follower.poll()
    assert out.getvalue().endswith("[operator] new\n")


def test_tail_limits_only_the_first_read(tmp_path: Path):
    path = tmp_path / "one.log"
    path.write_text("a\nb\nc\n")
    out = io.StringIO()
    follower = log_follow.Follower(lambda: [log_follow.Source("one", path)], out, prefix=False, tail=1)
    follower.poll()
    with path.open("a") as log:
        log.write("d\ne\n")
    follower.poll()
    assert out.getvalue() == "c\nd\ne\n"


def test_the_final_read_prints_an_unfinished_last_line(tmp_path: Path):
    path = tmp_path / "one.log"
    path.write_text("a\nno newline")
    out = io.StringIO()
    log_follow.Follower(lambda: [log_follow.Source("one", path)], out, prefix=False).poll(final=True)
    assert out.getvalue() == "a\nno newline\n"
