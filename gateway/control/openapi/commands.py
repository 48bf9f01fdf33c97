"""The ``gateway import`` / ``gateway export`` commands: the same conversions offline, from and to files.

Role: command line only (wired by :mod:`gateway.cli`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.control.openapi.exporter import export_openapi
from gateway.control.openapi.importer import import_openapi, merge_fragment
from gateway.control.openapi.routes import dump
from gateway.core.errors import SnapshotError
from gateway.snapshot.load import load_path, parse_bytes


def _write(data: bytes, out: str | None) -> None:
    if out:
        with open(out, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _fmt_for(out: str | None, given: str | None) -> str:
    if given:
        return given
    return "json" if out and out.endswith(".json") else "yaml"


def cmd_import(args: argparse.Namespace) -> int:
    from gateway.compiler import build_runtime
    from gateway.core.settings import load_settings
    from gateway.model.services import Services

    try:
        spec = parse_bytes(open(args.file, "rb").read(), args.file)  # noqa: SIM115
        base = load_path(args.into) if args.into else {}
        fragment, warnings = import_openapi(spec, base=base, group_id=args.group_id, group_name=args.group_name,
                                            publish_env=args.publish_env)
    except (OSError, SnapshotError, ValueError) as exc:
        problems = exc.problems if isinstance(exc, SnapshotError) else [str(exc)]
        for p in problems:
            print(f"import error: {p}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    doc = merge_fragment(base, fragment) if args.into else fragment
    try:
        build_runtime(doc, Services(load_settings({}, environ={})))
    except SnapshotError as exc:
        for p in exc.problems:
            print(f"invalid: {p}", file=sys.stderr)
        return 1
    _write(dump(doc, _fmt_for(args.output, args.format)), args.output)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        doc = load_path(args.snapshot)
        spec = export_openapi(doc, args.group_id, env_id=args.env, oas=args.oas)
    except SnapshotError as exc:
        for p in exc.problems:
            print(f"export error: {p}", file=sys.stderr)
        return 1
    except KeyError:
        print(f"export error: no group with id {args.group_id!r}", file=sys.stderr)
        return 1
    _write(dump(spec, _fmt_for(args.output, args.format)), args.output)
    return 0


def add_commands(sub: Any) -> None:
    imp = sub.add_parser("import", help="Swagger 2.0 / OpenAPI 3 (x-apigateway-*) -> snapshot")
    imp.add_argument("file")
    imp.add_argument("-o", "--output", help="write here instead of stdout")
    imp.add_argument("--group-id", help="group to import into (default: derived from info.title)")
    imp.add_argument("--group-name", help="name of a newly created group (default: info.title)")
    imp.add_argument("--publish-env", help="publish every imported API in this environment (name or id)")
    imp.add_argument("--into", help="merge into this snapshot file/directory and write the whole result")
    imp.add_argument("--format", choices=("yaml", "json"))
    imp.set_defaults(func=cmd_import)
    exp = sub.add_parser("export", help="snapshot group -> Swagger 2.0 / OpenAPI 3 with x-apigateway-*")
    exp.add_argument("snapshot")
    exp.add_argument("--group-id", required=True)
    exp.add_argument("--env", help="only APIs published in this environment id (bindings of that environment)")
    exp.add_argument("--oas", default="2.0", choices=("2.0", "3.0"))
    exp.add_argument("-o", "--output")
    exp.add_argument("--format", choices=("yaml", "json"))
    exp.set_defaults(func=cmd_export)
