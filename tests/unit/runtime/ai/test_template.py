from __future__ import annotations

import pytest

from agent_runtime.ai import template


def test_placeholders_take_payload_nested_keys_and_run_fields():
    filled = template.fill("Hi {{ name }} of {{repo.owner}} on {{ replica }}: {{ payload }} {{n}}",
                           {"name": "Ada", "repo": {"owner": "acme"}, "n": 3},
                           {"replica": "daring-duck"})
    assert filled == ('Hi Ada of acme on daring-duck: {"name": "Ada", "repo": {"owner": "acme"}, '
                      '"n": 3} 3')


def test_a_placeholder_naming_nothing_is_an_error():
    with pytest.raises(template.TemplateError, match=r"\{\{ missing \}\}"):
        template.fill("{{ missing }}", {}, {})


def test_json_braces_in_a_template_are_left_alone():
    assert template.fill('reply as {"ok": true}', {}, {}) == 'reply as {"ok": true}'
