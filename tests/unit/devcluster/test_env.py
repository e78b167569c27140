"""devcluster.kubelet.env: environment resolution and `$(VAR)` expansion, as Kubernetes does it."""

import base64

import pytest

from devcluster.kubelet.env import (
    ConfigError,
    PodContext,
    configmap_data,
    decode_secret,
    expand,
    expand_command,
    field_value,
    resolve_env,
)

SECRETS = {("ns", "creds"): {"password": "s3cret", "user": "alice"}}
CONFIGMAPS = {("ns", "settings"): {"mode": "fast", "level": "7"}}


def get_secret(namespace, name):
    return SECRETS.get((namespace, name))


def get_configmap(namespace, name):
    return CONFIGMAPS.get((namespace, name))


def context(**extra):
    pod = {"metadata": {"name": "web-0", "namespace": "ns", "uid": "u-1",
                        "labels": {"app": "web"}, "annotations": {"note": "hi"}},
           "spec": {"nodeName": "node-a", "serviceAccountName": "default", "containers": []}}
    return PodContext(pod=pod, pod_ip="127.1.0.5", host_ip="127.0.0.1",
                      base_env={"PATH": "/usr/bin", "HOME": "/root"}, **extra)


def resolve(container):
    return resolve_env(context(), container, get_secret, get_configmap)


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)", "1"),
    ("x$(A)y$(B)z", "x1y2z"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"),
    ("$$", "$"),
    ("$$$(A)", "$1"),
    ("$A", "$A"),
    ("cost: 5$", "cost: 5$"),
    ("$(A", "$(A"),
    ("$()", "$()"),
    ("$(A)$(A)", "11"),
    ("no refs", "no refs"),
])
def test_expand_follows_kubernetes_rules(text, expected):
    assert expand(text, {"A": "1", "B": "2"}) == expected


def test_expand_uses_the_first_context_that_defines_a_name():
    assert expand("$(A)", {"A": "first"}, {"A": "second", "B": "b"}) == "first"
    assert expand("$(B)", {"A": "first"}, {"A": "second", "B": "b"}) == "b"


def test_literal_values_see_only_earlier_variables():
    env = resolve({"env": [
        {"name": "A", "value": "a"},
        {"name": "B", "value": "$(A)-$(C)"},
        {"name": "C", "value": "c"},
    ]})
    assert env["B"] == "a-$(C)"


def test_env_overrides_env_from_and_prefixes_apply():
    env = resolve({
        "envFrom": [{"configMapRef": {"name": "settings"}},
                    {"secretRef": {"name": "creds"}, "prefix": "DB_"}],
        "env": [{"name": "mode", "value": "slow"}],
    })
    assert env["mode"] == "slow"
    assert env["level"] == "7"
    assert env["DB_password"] == "s3cret" and env["DB_user"] == "alice"


def test_value_from_is_not_expanded_and_key_refs_resolve():
    SECRETS[("ns", "odd")] = {"v": "$(A)"}
    try:
        env = resolve({"env": [
            {"name": "A", "value": "a"},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "odd", "key": "v"}}},
            {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        ]})
    finally:
        del SECRETS[("ns", "odd")]
    assert env["S"] == "$(A)"
    assert env["M"] == "fast"


def test_optional_sources_may_be_missing():
    env = resolve({
        "envFrom": [{"secretRef": {"name": "absent", "optional": True}}],
        "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
            {"name": "Y", "valueFrom": {"configMapKeyRef": {
                "name": "settings", "key": "absent", "optional": True}}},
        ],
    })
    assert "X" not in env and "Y" not in env


@pytest.mark.parametrize(("container", "message"), [
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]},
     'secret "absent" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}]},
     "couldn't find key k in ConfigMap ns/settings"),
    ({"envFrom": [{"configMapRef": {"name": "absent"}}]}, 'configmap "absent" not found'),
    ({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]},
     "unsupported fieldRef"),
])
def test_missing_required_sources_are_config_errors(container, message):
    with pytest.raises(ConfigError, match=message):
        resolve(container)


@pytest.mark.parametrize(("path", "expected"), [
    ("metadata.name", "web-0"),
    ("metadata.namespace", "ns"),
    ("metadata.uid", "u-1"),
    ("spec.nodeName", "node-a"),
    ("spec.serviceAccountName", "default"),
    ("status.podIP", "127.1.0.5"),
    ("status.podIPs", "127.1.0.5"),
    ("status.hostIP", "127.0.0.1"),
    ("metadata.labels['app']", "web"),
    ("metadata.annotations['note']", "hi"),
    ("metadata.labels", 'app="web"'),
])
def test_downward_api_fields(path, expected):
    assert field_value(context(), path) == expected


def test_resource_field_refs_use_limits_requests_and_node_allocatable():
    ctx = context(node_allocatable={"cpu": "32", "memory": "128Gi"})
    container = {"name": "c", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
                 "env": [
                     {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                         "resource": "limits.memory", "divisor": "1Mi"}}},
                     {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {
                         "resource": "requests.cpu", "divisor": "1m"}}},
                     {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                 ]}
    env = resolve_env(ctx, container, get_secret, get_configmap)
    assert env["MEM"] == "64"
    assert env["CPU_REQ"] == "250"
    assert env["CPU_LIMIT"] == "32"


def test_base_environment_fills_gaps_but_never_overrides():
    env = resolve({"env": [{"name": "HOME", "value": "/srv"}, {"name": "P", "value": "$(PATH)"}]})
    assert env["HOME"] == "/srv"
    assert env["PATH"] == "/usr/bin"
    assert env["P"] == "/usr/bin"


def test_command_and_args_expand_against_the_final_environment():
    container = {"command": ["serve", "--bind", "$(IP)"], "args": ["$(LATE)", "$$(IP)", "$(NOPE)"]}
    assert expand_command(container, {"IP": "127.1.0.5", "LATE": "x"}) == [
        "serve", "--bind", "127.1.0.5", "x", "$(IP)", "$(NOPE)"]


def test_secret_and_configmap_decoding():
    assert decode_secret({"a": base64.b64encode(b"hello").decode()}) == {"a": "hello"}
    assert decode_secret(None) == {}
    data = configmap_data({"data": {"a": "1"}, "binaryData": {"b": base64.b64encode(b"2").decode()}})
    assert data == {"a": "1", "b": "2"}
