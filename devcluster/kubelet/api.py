"""A small, thread-safe HTTPS client for the kube-apiserver, driven by a kubeconfig file.

The kubelet works on plain JSON dicts (the shape the API documents), so it talks REST directly
through urllib3 (already a dependency of the `kubernetes` client) instead of the generated
models. One connection pool is shared by all threads.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

USER_AGENT = "devcluster-kubelet/v1.34.4"


class ApiError(Exception):
    def __init__(self, status: int, message: str, body: dict | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body or {}

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", ""))


class Client:
    def __init__(self, kubeconfig: Path, *, pool_size: int = 32) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        context_name = config.get("current-context")
        context = _named(config.get("contexts"), context_name, "context")
        cluster = _named(config.get("clusters"), context["cluster"], "cluster")
        user = _named(config.get("users"), context["user"], "user")
        self.server = cluster["server"].rstrip("/")
        self._files = tempfile.TemporaryDirectory(prefix="kubelet-creds-")
        ctx = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority"):
            ctx.load_verify_locations(cafile=cluster["certificate-authority"])
        elif cluster.get("certificate-authority-data"):
            ctx.load_verify_locations(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        cert = self._file(user, "client-certificate")
        key = self._file(user, "client-key")
        if cert and key:
            ctx.load_cert_chain(cert, key)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if user.get("token"):
            self._headers["Authorization"] = f"Bearer {user['token']}"
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=pool_size, ssl_context=ctx,
                                         retries=False)

    def _file(self, user: dict, field: str) -> str | None:
        if user.get(field):
            return user[field]
        if user.get(f"{field}-data"):
            path = Path(self._files.name) / field
            path.write_bytes(base64.b64decode(user[f"{field}-data"]))
            path.chmod(0o600)
            return str(path)
        return None

    # --- requests ----------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        body: Any = None, content_type: str = "application/json", timeout: float = 30,
    ) -> dict:
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        url = self.server + path
        if params:
            url += "?" + urlencode(
                {k: _param(v) for k, v in params.items() if v is not None})
        response = self._pool.request(method, url, body=data, headers=headers,
                                      timeout=urllib3.Timeout(connect=5, read=timeout))
        payload = _json(response.data)
        if response.status >= 300:
            raise ApiError(response.status, payload.get("message") or response.reason or "", payload)
        return payload

    def get(self, path: str, **params: Any) -> dict:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: dict) -> dict:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: dict, *,
              content_type: str = "application/strategic-merge-patch+json") -> dict:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, body: dict | None = None) -> dict:
        return self.request("DELETE", path, body=body)

    def watch(self, path: str, *, timeout_seconds: int, **params: Any) -> Iterator[dict]:
        """Watch events (dicts with `type` and `object`) until the server closes the stream."""
        query = {**params, "watch": "true", "timeoutSeconds": timeout_seconds,
                 "allowWatchBookmarks": "true"}
        url = self.server + path + "?" + urlencode(
            {k: _param(v) for k, v in query.items() if v is not None})
        response = self._pool.request(
            "GET", url, headers=self._headers, preload_content=False,
            timeout=urllib3.Timeout(connect=5, read=timeout_seconds + 15))
        try:
            if response.status >= 300:
                payload = _json(response.read())
                raise ApiError(response.status, payload.get("message") or "", payload)
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            # An abandoned stream must not go back into the pool half-read.
            response.close()
            response.release_conn()


def _named(items: list[dict] | None, name: str, what: str) -> dict:
    for item in items or []:
        if item.get("name") == name:
            return item[what]
    raise ValueError(f"kubeconfig has no {what} named {name!r}")


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(data: bytes) -> dict:
    try:
        parsed = json.loads(data or b"{}")
    except ValueError:
        return {"message": data[:500].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"message": str(parsed)}
