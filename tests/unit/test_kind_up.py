"""`make kind-up` cannot run here (no Docker): its scripts parse, pass shellcheck, stop with a
clear message without Docker, and install the chart with values the chart accepts, pointing at
the PostgreSQL and Redis the script deploys."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit import chart

SCRIPTS = chart.ROOT / "scripts"
KIND_UP = SCRIPTS / "kind-up.sh"
KIND_DOWN = SCRIPTS / "kind-down.sh"
VALUES = SCRIPTS / "kind" / "values.yaml"
SERVICES = SCRIPTS / "kind" / "services.yaml"


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text("utf-8"))


def _script_setting(name: str) -> str:
    match = re.search(rf'^{name}="([^"$]*)"', KIND_UP.read_text("utf-8"), re.MULTILINE)
    assert match, f"{KIND_UP} sets no {name}"
    return match[1]


@pytest.mark.parametrize("script", [KIND_UP, KIND_DOWN], ids=lambda p: p.name)
def test_kind_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt install shellcheck)")
@pytest.mark.parametrize("script", [KIND_UP, KIND_DOWN], ids=lambda p: p.name)
def test_kind_script_is_shellcheck_clean(script: Path) -> None:
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_kind_up_without_docker_says_what_to_install(tmp_path: Path) -> None:
    """Nothing is created before every tool is there: the first check stops it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "date"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = subprocess.run([shutil.which("bash"), str(KIND_UP)], capture_output=True, text=True,
                            env={"PATH": str(bin_dir)}, timeout=30)
    assert result.returncode == 1
    assert "error: docker is not on PATH; install it: https://docs.docker.com/engine/install/" in result.stderr


def test_kind_values_validate_against_the_values_schema() -> None:
    schema = json.loads((chart.CHART / "values.schema.json").read_text("utf-8"))
    defaults = yaml.safe_load((chart.CHART / "values.yaml").read_text("utf-8"))
    jsonschema.Draft7Validator(schema).validate(_values())
    jsonschema.Draft7Validator(schema).validate({**defaults, **_values()})


def test_kind_up_installs_with_the_values_file_only() -> None:
    """Every value the script gives the chart is in the file the tests validate."""
    text = KIND_UP.read_text("utf-8")
    assert _script_setting("VALUES") == str(VALUES.relative_to(chart.ROOT))
    assert '--values "$VALUES"' in text
    assert "--set" not in text


def test_kind_values_render_the_loaded_image_never_pulled() -> None:
    docs = chart.render(release=_script_setting("RELEASE"), namespace=_script_setting("NAMESPACE"),
                        extra=("--values", str(VALUES)))
    for name in ("agent-clusters", "agent-clusters-gateway"):
        (container,) = chart.one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["image"] == _script_setting("IMAGE"), name
        assert container["imagePullPolicy"] == "Never", name
    # The script port-forwards and restarts these by name.
    chart.one(docs, "Service", "agent-clusters-gateway")


def test_kind_values_point_at_the_services_the_script_deploys() -> None:
    services = {(d["metadata"]["namespace"], d["metadata"]["name"]): d
                for d in yaml.safe_load_all(SERVICES.read_text("utf-8")) if d and d["kind"] == "Service"}
    for url in (_values()["database"]["url"], _values()["redis"]["url"]):
        host, port = re.match(r"^\w+://(?:[^@]*@)?([^:/]+):(\d+)/", url).groups()
        name, namespace, svc = host.split(".")
        assert (svc, namespace) == ("svc", _script_setting("NAMESPACE")), url
        assert int(port) in [p["port"] for p in services[(namespace, name)]["spec"]["ports"]], url
