"""The package layering, as tests: every module imports alone, and no import cycle crosses packages.

Like aiohttp's ``tests/test_circular_imports.py``: a module that only imports because something else was
imported first hides a cycle, so every module is imported on its own, with no other gateway module loaded.
The cycle checks read every ``import`` statement of ``gateway/`` (including those under ``TYPE_CHECKING`` and
inside functions) with grimp, the graph library behind import-linter; the layer order itself is the
import-linter contract in pyproject.toml (``lint-imports``, run below and by ``make lint``).
"""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

import gateway

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(m.name for m in pkgutil.walk_packages(gateway.__path__, "gateway."))
# the only cycle allowed: the request-time model's type-only loop (a request points at its endpoint, and the
# endpoint's stages take a request), inside gateway.model
ALLOWED_CYCLE_PACKAGES = {"gateway.model"}


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else module


# Run in one child interpreter: it imports the third-party libraries once, then forks one process per gateway
# module, so each module is imported with no other gateway module loaded before it (what matters for import
# order and cycles) at the cost of a fork, not of a whole interpreter start.
_IMPORT_EACH = """
import importlib, json, os, sys, traceback
import aiohttp, aiohttp.web, multidict, orjson, yaml, redis, cryptography, jwt, prometheus_client, h2  # noqa
assert not any(m == "gateway" or m.startswith("gateway.") for m in sys.modules)
failed = {}
running = {}  # pid -> (module, read end of its error pipe)


def reap():
    pid, status = os.wait()
    name, r = running.pop(pid)
    with os.fdopen(r, "rb") as fh:
        err = fh.read().decode()
    if status != 0:
        failed[name] = err or f"exit status {status}"


for name in json.loads(sys.argv[1]):
    if len(running) >= (os.cpu_count() or 2):
        reap()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            importlib.import_module(name)
        except BaseException:
            os.write(w, traceback.format_exc()[-4000:].encode())
            code = 1
        os._exit(code)
    os.close(w)
    running[pid] = (name, r)
while running:
    reap()
print(json.dumps(failed))
"""


def test_every_module_imports_alone() -> None:
    """Each module imports with no other gateway module imported before it."""
    modules = [m for m in MODULES if not m.endswith("__main__")]  # __main__ runs the CLI when imported
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH, json.dumps(modules)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    failed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failed, "modules that do not import alone:\n" + "\n".join(f"{k}:\n{v}" for k, v in failed.items())
    assert len(modules) > 50


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("gateway", include_external_packages=False, cache_dir=None)


def test_no_cycle_between_packages() -> None:
    """No chain of imports leaves a package and comes back to it (TYPE_CHECKING and function-local imports
    count: grimp reads every import statement)."""
    graph = _graph()
    edges: dict[str, set[str]] = {}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = package_of(importer), package_of(imported)
            if a != b:
                edges.setdefault(a, set()).add(b)
    cycles = [f"{start} -> {nxt} -> ... -> {start}"
              for start in sorted(edges) for nxt in sorted(edges[start]) if _reaches(edges, nxt, start)]
    assert not cycles, "import cycles across packages:\n" + "\n".join(cycles)


def _reaches(edges: dict[str, set[str]], src: str, dst: str) -> bool:
    seen, todo = set(), [src]
    while todo:
        cur = todo.pop()
        if cur == dst:
            return True
        if cur in seen:
            continue
        seen.add(cur)
        todo.extend(edges.get(cur, ()))
    return False


def test_cycles_inside_packages_only_in_model() -> None:
    graph = _graph()
    bad = []
    for module in graph.modules:
        pkg = package_of(module)
        if pkg in ALLOWED_CYCLE_PACKAGES or not module.startswith(pkg + "."):
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if package_of(imported) == pkg and graph.chain_exists(importer=imported, imported=module):
                bad.append(f"{module} <-> {imported}")
    assert not bad, "import cycles inside a package:\n" + "\n".join(sorted(set(bad)))


def test_only_entry_points_flat_in_gateway() -> None:
    flat = sorted(p.stem for p in Path(gateway.__path__[0]).glob("*.py"))
    assert flat == ["__init__", "__main__", "cli", "docgen", "healthcheck"], flat


def test_layers_contract() -> None:
    """``lint-imports``: the import-linter contracts of pyproject.toml hold."""
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    assert exe is not None, "lint-imports missing: `make deps` installs the test extra"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
