"""Settings parsing: a bad value is a ValueError naming the setting and its choices (no SystemExit from deep
inside the request model)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.core.settings import LATENCY_ALWAYS, LATENCY_DEBUG, LATENCY_OFF, latency_mode, load_settings


def test_latency_modes_parse_in_any_case() -> None:
    assert [latency_mode(v) for v in ("always", " Debug", "OFF")] == [LATENCY_ALWAYS, LATENCY_DEBUG, LATENCY_OFF]


def test_bad_latency_headers_is_refused_when_settings_load() -> None:
    with pytest.raises(ValueError, match=r"latency_headers: must be one of always, debug, off \(got 'sometimes'\)"):
        load_settings(environ={"GATEWAY_LATENCY_HEADERS": "sometimes"})
    assert load_settings(environ={"GATEWAY_LATENCY_HEADERS": "debug"}).latency_headers == "debug"


def test_cli_answers_a_bad_latency_setting_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run([sys.executable, "-m", "gateway", "run", "--set", "latency_headers=sometimes"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "latency_headers: must be one of always, debug, off" in proc.stderr
    assert "Traceback" not in proc.stderr
