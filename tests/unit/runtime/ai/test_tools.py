from __future__ import annotations

import re

from agent_runtime.ai import tools


def test_tool_names_fit_every_providers_rule():
    assert tools.tool_name("fn_scraping.fetch-mentions") == "fn_scraping_fetch-mentions"
    long = tools.tool_name("server__" + "x" * 100)
    assert len(long) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", long)
    assert long != tools.tool_name("server__" + "x" * 99)


def test_results_are_rendered_as_text_and_bounded():
    assert tools.render("plain") == "plain"
    assert tools.render({"a": 1}) == '{"a": 1}'
    assert len(tools.render("x" * 50_000)) < tools.RESULT_MAX_CHARS + 100
