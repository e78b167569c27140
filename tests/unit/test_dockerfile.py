"""The image the chart and the operator refer to: its entry point and user match them."""

from pathlib import Path

import yaml

from agent_operator import settings

REPO = Path(__file__).resolve().parents[2]


def test_image_entrypoint_is_the_console_script_the_operator_runs_in_replica_pods():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["agentclusters"]' in dockerfile
    assert settings.OperatorSettings().runtime_command[0] == "agentclusters"


def test_image_user_is_the_one_the_chart_runs_as():
    values = yaml.safe_load((REPO / "charts/agent-clusters/values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert f"USER {uid}:{values['podSecurityContext']['runAsGroup']}" in (REPO / "Dockerfile").read_text()


def test_image_copies_every_package_of_the_distribution():
    dockerfile = (REPO / "Dockerfile").read_text()
    packages = [p.name for p in REPO.iterdir() if (p / "__init__.py").exists() and p.name not in ("tests", "bench")]
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
