"""The one log line shape: kopf's JSON keys, the component's identity and `extra=` fields on
every line, text for people with the same fields, and a clear refusal of an unknown format."""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from agent_api import logformat


def _record(level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("agent_x.part", level, __file__, 1, "did %s", ("it",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_kopfs_keys_identity_and_extra_fields():
    line = json.loads(logformat.JsonFormatter({"replica": "daring-duck"}).format(
        _record(logging.WARNING, run_id=7, tool="scale_agent")))
    assert line["message"] == "did it" and line["severity"] == "warn" and line["logger"] == "agent_x.part"
    assert line["replica"] == "daring-duck" and line["run_id"] == 7 and line["tool"] == "scale_agent"
    assert line["timestamp"].endswith("+00:00")


def test_uvicorns_coloured_copy_of_the_message_is_left_out():
    line = json.loads(logformat.JsonFormatter().format(_record(color_message="\x1b[1mdid it\x1b[0m")))
    assert "color_message" not in line


def test_identity_wins_over_an_extra_field_of_the_same_name():
    line = json.loads(logformat.JsonFormatter({"replica": "daring-duck"}).format(_record(replica="forged")))
    assert line["replica"] == "daring-duck"


@pytest.mark.parametrize(("level", "severity"), [(logging.DEBUG, "debug"), (logging.INFO, "info"),
                                                 (logging.WARNING, "warn"), (logging.ERROR, "error"),
                                                 (logging.CRITICAL, "fatal")])
def test_severity_uses_kopfs_words(level: int, severity: str):
    assert logformat.severity(level) == severity


def test_an_exception_is_one_field_of_one_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = logformat.JsonFormatter().format(record)
    assert "\n" not in text and "RuntimeError: boom" in json.loads(text)["exception"]


def test_scrub_runs_over_the_whole_line():
    formatter = logformat.JsonFormatter(scrub=lambda text: text.replace("it", "[redacted]"))
    assert json.loads(formatter.format(_record(note="it")))["note"] == "[redacted]"


def test_text_lines_show_the_fields_after_the_message():
    text = logformat.TextFormatter({"replica": "daring-duck"}).format(_record(outcome="ok"))
    assert text.endswith("INFO agent_x.part: did it replica=daring-duck outcome=ok"), text


def test_configure_sends_every_logger_through_one_handler():
    stream = io.StringIO()
    root = logging.getLogger()
    before = root.handlers[:], root.level
    try:
        logformat.configure("json", identity={"component": "gateway"}, stream=stream)
        logging.getLogger("uvicorn.error").info("started")
    finally:
        root.handlers[:], level = before
        root.setLevel(level)
    line = json.loads(stream.getvalue())
    assert (line["logger"], line["message"], line["component"]) == ("uvicorn.error", "started", "gateway")


def test_configure_turns_python_warnings_into_lines_too():
    # A process of its own: pytest records warnings itself while a test runs.
    program = ("import warnings; from agent_api import logformat; logformat.configure('json'); "
               "warnings.warn('deprecated thing', DeprecationWarning, stacklevel=1)")
    result = subprocess.run([sys.executable, "-W", "always", "-c", program], capture_output=True, text=True,
                            timeout=60, check=True, cwd=Path(__file__).resolve().parents[3])
    (line,) = [json.loads(text) for text in result.stderr.splitlines()]
    assert line["logger"] == "py.warnings" and "deprecated thing" in line["message"]


def test_log_format_flag_defaults_to_json_and_accepts_text(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(logformat.FORMAT_ENV, raising=False)
    parser = argparse.ArgumentParser()
    logformat.add_argument(parser)
    assert parser.parse_args([]).log_format == "json"
    assert parser.parse_args(["--log-format=text"]).log_format == "text"
    monkeypatch.setenv(logformat.FORMAT_ENV, "text")
    parser = argparse.ArgumentParser()
    logformat.add_argument(parser)
    assert parser.parse_args([]).log_format == "text"


def test_an_unknown_log_format_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]):
    parser = argparse.ArgumentParser()
    logformat.add_argument(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format=xml"])
    assert "invalid choice: 'xml' (choose from 'json', 'text')" in capsys.readouterr().err
