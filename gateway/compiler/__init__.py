"""The compiler: a snapshot document in, an immutable :class:`gateway.model.runtime.Runtime` out.

What it is for: config-load time only. :func:`validate` checks a document against the chain's schema,
:func:`compile_snapshot` walks :mod:`gateway.pipeline.chain` once per publication, :func:`build_runtime`
does both. :mod:`gateway.compiler.targets` maps a backend kind to its target builder.

May import: pipeline (spec, chain, stages), backends, model, snapshot, lib, core. Never imported by those.
"""

from __future__ import annotations

from gateway.compiler.compiler import build_runtime, compile_endpoint, compile_snapshot, validate

__all__ = ["build_runtime", "compile_endpoint", "compile_snapshot", "validate"]
