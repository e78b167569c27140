"""What the README says about `make demo` and the cold build, checked against the code that
prints and builds it."""

from __future__ import annotations

import ast
import re

from tests.unit import chart

README = chart.ROOT / "README.md"
BUILD_SCRIPT = chart.ROOT / "devcluster" / "build-binaries.sh"
DEMO = chart.ROOT / "devcluster" / "demo.py"
COLD_BUILD = re.compile(r"a cold build takes about (\d+) minutes on 2 cores")


def _demo_steps() -> set[str]:
    """Every heading devcluster/demo.py prints: the string of each step(...) call."""
    steps = set()
    for node in ast.walk(ast.parse(DEMO.read_text("utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "step":
            (title,) = node.args
            assert isinstance(title, ast.Constant), f"step() with a computed title: {ast.unparse(title)}"
            steps.add(title.value)
    return steps


def _readme_steps() -> list[str]:
    text = README.read_text("utf-8")
    start = text.index("<!-- demo-steps:")
    block = text[start:].split("\n\n", 1)[0]
    return [re.sub(r"^\d+\. ", "", line) for line in block.splitlines()[1:]]


def test_readme_and_build_script_agree_on_the_cold_build_time() -> None:
    readme = COLD_BUILD.findall(" ".join(README.read_text("utf-8").split()))
    script = COLD_BUILD.findall(BUILD_SCRIPT.read_text("utf-8"))
    assert readme and script, "both must state the cold build time"
    assert set(readme) == set(script), f"README says {readme} minutes, the build script {script}"


def test_readme_lists_every_heading_make_demo_prints() -> None:
    listed = _readme_steps()
    assert len(listed) == len(set(listed))
    assert set(listed) == _demo_steps()
