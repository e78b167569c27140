"""devcluster.kubelet.probes: handlers against real local sockets, and thresholds."""

import http.server
import socket
import sys
import threading

import pytest

from devcluster.kubelet.probes import ProbeTarget, ProbeTracker, resolve_port, run_probe


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/ok" else 503
        self.send_response(code)
        self.end_headers()
        self.wfile.write(self.headers.get("X-Probe", "").encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def target(**kw):
    return ProbeTarget(pod_ip="127.0.0.1", **kw)


def test_http_probe_success_and_failure(server):
    assert run_probe({"httpGet": {"path": "/ok", "port": server}}, target())[0]
    ok, message = run_probe({"httpGet": {"path": "/bad", "port": server}}, target())
    assert not ok and "503" in message


def test_http_probe_named_port_and_headers(server):
    probe = {"httpGet": {"path": "/ok", "port": "http",
                         "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}}
    assert run_probe(probe, target(named_ports={"http": server}))[0]


def test_probes_against_a_closed_port_fail():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert not run_probe({"httpGet": {"port": port}}, target())[0]
    assert not run_probe({"tcpSocket": {"port": port}}, target())[0]


def test_tcp_probe(server):
    assert run_probe({"tcpSocket": {"port": server}}, target())[0]


def test_exec_probe_uses_the_container_environment(tmp_path):
    probe = {"exec": {"command": [sys.executable, "-c",
                                  "import os, sys; sys.exit(0 if os.environ['X'] == '1' else 1)"]}}
    assert run_probe(probe, target(env={"X": "1"}, cwd=str(tmp_path)))[0]
    assert not run_probe(probe, target(env={"X": "2"}, cwd=str(tmp_path)))[0]


def test_exec_probe_timeout():
    probe = {"exec": {"command": [sys.executable, "-c", "import time; time.sleep(5)"]},
             "timeoutSeconds": 1}
    ok, message = run_probe(probe, target(env={}))
    assert not ok and "timed out" in message


def test_unsupported_and_empty_probes_fail_with_a_message():
    assert run_probe({"grpc": {"port": 1}}, target()) == (
        False, "gRPC probes are not supported by the devcluster process kubelet")
    assert not run_probe({}, target())[0]


def test_unknown_named_port():
    with pytest.raises(ValueError):
        resolve_port("nope", target())
    assert resolve_port("8080", target()) == 8080


def test_readiness_thresholds():
    tracker = ProbeTracker({"successThreshold": 2, "failureThreshold": 2}, "readiness")
    assert tracker.result is False
    assert not tracker.record(True)
    assert tracker.record(True) and tracker.result
    assert not tracker.record(False)
    assert tracker.result
    assert tracker.record(False, "boom") and not tracker.result
    assert tracker.message == "boom"


def test_liveness_starts_alive_and_fails_after_the_threshold():
    tracker = ProbeTracker({}, "liveness")
    assert tracker.result
    tracker.record(False)
    tracker.record(False)
    assert tracker.result
    assert tracker.record(False) and not tracker.result
