"""A container's environment and command line, resolved the way the real kubelet does it.

Order and precedence (as in kubelet's `makeEnvironmentVariables`):

1. `envFrom` sources, in order (later sources override earlier ones; `prefix` applied);
2. `env` entries, in order: literal values get `$(VAR)` expansion against everything defined
   before them (plus the base environment); `valueFrom` values are taken verbatim;
3. the base environment (the kubelet's PATH/HOME/LANG, HOSTNAME, KUBERNETES_SERVICE_*) fills
   in whatever the pod did not set.

`command` and `args` are then expanded against the final environment. Expansion follows
Kubernetes: `$(NAME)` becomes the value of NAME if defined and stays literally `$(NAME)`
otherwise; `$$` is an escaped `$`; any other `$` is kept.

Secrets and config maps are read through injected look-up functions, so this module is pure
logic; a missing non-optional source or key raises `ConfigError` (the container then waits
with reason `CreateContainerConfigError`, like a real kubelet).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from kubernetes.utils import parse_quantity

# A look-up returns the object's string data (already decoded), or None if it does not exist.
Lookup = Callable[[str, str], "dict[str, str] | None"]


class ConfigError(Exception):
    """The container cannot be configured (yet): missing secret/config map/key, bad field path."""


def expand(text: str, *contexts: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion of `text`; the first context defining VAR wins."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            advance = 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                else:
                    name = text[cursor + 2 : close]
                    out.append(_lookup(name, contexts))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def _lookup(name: str, contexts: tuple[Mapping[str, str], ...]) -> str:
    for context in contexts:
        if name in context:
            return context[name]
    return f"$({name})"


@dataclass
class PodContext:
    """What the downward API and the base environment need to know about a pod."""

    pod: dict
    pod_ip: str
    host_ip: str
    base_env: dict[str, str] = field(default_factory=dict)
    node_allocatable: dict[str, str] = field(default_factory=dict)


def resolve_env(
    ctx: PodContext, container: dict, get_secret: Lookup, get_configmap: Lookup
) -> dict[str, str]:
    """The complete environment of `container` (a dict from the pod spec)."""
    namespace = ctx.pod["metadata"]["namespace"]
    env: dict[str, str] = {}

    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        if "configMapRef" in source:
            ref, kind, lookup = source["configMapRef"], "ConfigMap", get_configmap
        elif "secretRef" in source:
            ref, kind, lookup = source["secretRef"], "Secret", get_secret
        else:
            continue
        data = lookup(namespace, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
        for key, value in data.items():
            name = prefix + key
            if name and "=" not in name and "\0" not in name:
                env[name] = value

    for var in container.get("env") or []:
        name = var["name"]
        source = var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value") or "", env, ctx.base_env)
            continue
        value = _value_from(ctx, container, source, namespace, get_secret, get_configmap)
        if value is not None:
            env[name] = value

    for name, value in ctx.base_env.items():
        env.setdefault(name, value)
    return env


def _value_from(
    ctx: PodContext, container: dict, source: dict, namespace: str,
    get_secret: Lookup, get_configmap: Lookup,
) -> str | None:
    if "fieldRef" in source:
        return field_value(ctx, source["fieldRef"].get("fieldPath", ""))
    if "resourceFieldRef" in source:
        return resource_value(ctx, container, source["resourceFieldRef"])
    for key, kind, lookup in (("secretKeyRef", "Secret", get_secret),
                              ("configMapKeyRef", "ConfigMap", get_configmap)):
        if key in source:
            ref = source[key]
            optional = bool(ref.get("optional"))
            data = lookup(namespace, ref.get("name", ""))
            if data is None:
                if optional:
                    return None
                raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            if ref.get("key") not in data:
                if optional:
                    return None
                raise ConfigError(
                    f"couldn't find key {ref.get('key')} in {kind} {namespace}/{ref.get('name')}"
                )
            return data[ref["key"]]
    raise ConfigError(f"unsupported valueFrom source: {sorted(source)}")


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(ctx: PodContext, path: str) -> str:
    """A downward-API `fieldRef` value."""
    pod = ctx.pod
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": ctx.pod_ip,
        "status.podIPs": ctx.pod_ip,
        "status.hostIP": ctx.host_ip,
        "status.hostIPs": ctx.host_ip,
    }
    if path in simple:
        return simple[path]
    match = _SUBSCRIPT.match(path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(ctx: PodContext, container: dict, ref: dict) -> str:
    """A downward-API `resourceFieldRef` value (limits fall back to node allocatable)."""
    target = container
    if ref.get("containerName"):
        spec = ctx.pod.get("spec", {})
        named = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                 if c.get("name") == ref["containerName"]]
        if not named:
            raise ConfigError(f"resourceFieldRef: no container named {ref['containerName']!r}")
        target = named[0]
    kind, _, resource = ref.get("resource", "").partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise ConfigError(f"unsupported resourceFieldRef resource {ref.get('resource')!r}")
    resources = target.get("resources") or {}
    raw = (resources.get(kind) or {}).get(resource)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(resource)
    if raw is None:
        raw = ctx.node_allocatable.get(resource, "0") if kind == "limits" else "0"
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    if divisor == 0:
        raise ConfigError("resourceFieldRef divisor must not be zero")
    value: Decimal = parse_quantity(str(raw)) / divisor
    return str(math.ceil(value))


def expand_command(container: dict, env: Mapping[str, str]) -> list[str]:
    """`command` + `args`, each expanded against the container's environment."""
    return [expand(part, env) for part in (container.get("command") or []) + (container.get("args") or [])]


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str]:
    """Secret `data` (base64) as strings; bytes that are not UTF-8 survive as surrogates."""
    return {k: base64.b64decode(v).decode("utf-8", "surrogateescape") for k, v in (data or {}).items()}


def configmap_data(obj: Mapping) -> dict[str, str]:
    """A config map's `data` plus its `binaryData` (decoded), as env values."""
    data = dict(obj.get("data") or {})
    for key, value in (obj.get("binaryData") or {}).items():
        data.setdefault(key, base64.b64decode(value).decode("utf-8", "surrogateescape"))
    return data
