"""``--workers auto`` (the Docker image's default): one worker per CPU the process may run on."""

from __future__ import annotations

import os

import pytest

from gateway.core.settings import load_settings, parse_assignment, parse_workers


def test_auto_is_one_worker_per_usable_cpu() -> None:
    assert parse_workers("auto") == len(os.sched_getaffinity(0)) >= 1
    assert parse_workers(" AUTO ") == parse_workers("auto")
    assert parse_workers("3") == 3 and parse_workers(2) == 2
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError):
            parse_workers(bad)


def test_auto_from_the_environment_the_cli_and_set() -> None:
    from gateway.cli import _overrides, build_parser

    assert load_settings(environ={"GATEWAY_WORKERS": "auto"}).workers == len(os.sched_getaffinity(0))
    args = build_parser().parse_args(["run", "--workers", "auto"])
    assert load_settings(_overrides(args), environ={}).workers == len(os.sched_getaffinity(0))
    assert parse_assignment("workers=auto") == ("workers", len(os.sched_getaffinity(0)))
