"""Route index: find the published API for (method, path) within one group and environment.

Role in the pipeline: step 2 (spec 02 §11.2). Built once per (group, environment) at config-load time;
a lookup never scans the list of APIs.

Data structure
--------------
* ``static``: a dict ``path -> {method: endpoint}`` for NORMAL APIs whose path has no ``{param}``. Most
  lookups end here: one dict probe, O(1) in the number of APIs.
* a segment trie for the rest: each node has a dict of literal children, at most one parameter child
  (``{name}`` matches one non-empty segment), and two method tables: ``exact`` (NORMAL APIs ending here)
  and ``prefix`` (SWA APIs ending here). A lookup walks the request's segments once, trying the literal
  child before the parameter child (backtracking only when the literal branch has no match), so its cost
  is O(depth) dict probes for realistic tables, independent of how many APIs exist.

Precedence (documented with examples in docs/routing.md)
----------------------------------------------------------
1. NORMAL (exact) beats SWA (prefix): an exact match anywhere wins over every prefix match.
2. Among exact matches, literal segments beat ``{param}`` segments, left to right.
3. Among prefix matches, the longest prefix (most segments) wins; SWA prefixes match whole segments
   only (``/a`` matches ``/a``, ``/a/``, ``/a/b``; never ``/ab``).
4. At the chosen node a concrete method beats ``ANY``; a node whose path matches but which accepts
   neither the method nor ``ANY`` is skipped in favour of the next candidate.
5. A trailing slash is significant for NORMAL APIs (``/a`` and ``/a/`` are different paths).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class _Node(Generic[T]):
    __slots__ = ("exact", "literal", "param", "prefix")

    def __init__(self) -> None:
        self.literal: dict[str, _Node[T]] = {}
        self.param: _Node[T] | None = None
        self.exact: dict[str, T] | None = None
        self.prefix: dict[str, T] | None = None


def _copy_node(node: _Node[T]) -> _Node[T]:
    """A shallow copy of a trie node: its children and method tables are shared until changed."""
    out: _Node[T] = _Node()
    out.literal = dict(node.literal)
    out.param, out.exact, out.prefix = node.param, node.exact, node.prefix
    return out


def split_template(uri: str) -> list[str]:
    """``/users/{id}/x`` -> ``["users", "{id}", "x"]``; ``/`` -> ``[]``."""
    if uri == "/":
        return []
    return uri[1:].split("/") if uri.startswith("/") else uri.split("/")


def is_param(segment: str) -> bool:
    return len(segment) > 2 and segment[0] == "{" and segment[-1] == "}"


def param_name(segment: str) -> str:
    return segment[1:-1].rstrip("+")


class Match(Generic[T]):
    """A successful lookup: the target, its path parameter values and, for SWA, the unmatched rest."""

    __slots__ = ("params", "suffix", "target")

    def __init__(self, target: T, params: dict[str, str], suffix: str) -> None:
        self.target = target
        self.params = params
        self.suffix = suffix


class Router(Generic[T]):
    """Route table for one group in one environment."""

    __slots__ = ("_names", "_root", "size", "static")

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self.static: dict[str, dict[str, T]] = {}
        # id(target) -> [(segment index, param name)] so that each API keeps its own parameter names
        self._names: dict[int, tuple[tuple[int, str], ...]] = {}
        self.size = 0

    def add(self, method: str, uri: str, prefix: bool, target: T) -> None:
        if not prefix and "{" not in uri:  # a static route: one table entry, no segments
            self._names[id(target)] = ()
            self.size += 1
            table = self.static.get(uri)
            if table is None:
                table = self.static[uri] = {}
            table[method] = target
            return
        segments = split_template(uri)
        names = tuple((i, param_name(s)) for i, s in enumerate(segments) if is_param(s)) if "{" in uri else ()
        self._names[id(target)] = names
        self.size += 1
        if not prefix and not names:
            self.static.setdefault(uri, {})[method] = target
            return
        node = self._root
        for seg in segments:
            if is_param(seg):
                if node.param is None:
                    node.param = _Node()
                node = node.param
            else:
                child = node.literal.get(seg)
                if child is None:
                    child = node.literal[seg] = _Node()
                node = child
        if prefix:
            if node.prefix is None:
                node.prefix = {}
            node.prefix[method] = target
        else:
            if node.exact is None:
                node.exact = {}
            node.exact[method] = target

    def updated(self, removed: list[tuple[str, str, bool, T]], added: list[tuple[str, str, bool, T]]) -> Router[T]:
        """A new router equal to this one with the ``removed`` routes (method, uri, prefix, target) taken out and
        the ``added`` ones put in; this router is not changed (requests in flight keep using it).

        Only what the change touches is copied: the static table (one dictionary), the method tables of the
        changed paths and the trie nodes on their way from the root; everything else is shared. Config-load
        time (the incremental compile of a single-API change): the cost follows the change, not the group."""
        out: Router[T] = Router.__new__(Router)
        out._root = _copy_node(self._root)
        out.static = dict(self.static)
        out._names = dict(self._names)
        out.size = self.size
        copied: set[int] = {id(out._root)}
        for method, uri, prefix, target in removed:
            out._names.pop(id(target), None)
            segments = split_template(uri)
            if not prefix and not any(map(is_param, segments)):
                table = out.static.get(uri)
                if table is not None and table.get(method) is target:
                    table = out.static[uri] = dict(table)
                    del table[method]
                    out.size -= 1
                    if not table:
                        del out.static[uri]
                continue
            node = out._path(segments, copied, create=False)
            if node is None:
                continue
            attr = "prefix" if prefix else "exact"
            table = getattr(node, attr)
            if table is not None and table.get(method) is target:
                table = dict(table)
                del table[method]
                setattr(node, attr, table or None)
                out.size -= 1
        for method, uri, prefix, target in added:
            segments = split_template(uri)
            names = tuple((i, param_name(s)) for i, s in enumerate(segments) if is_param(s))
            out._names[id(target)] = names
            out.size += 1
            if not prefix and not names:
                out.static[uri] = {**out.static.get(uri, {}), method: target}
                continue
            node = out._path(segments, copied, create=True)
            assert node is not None
            attr = "prefix" if prefix else "exact"
            setattr(node, attr, {**(getattr(node, attr) or {}), method: target})
        return out

    def _path(self, segments: list[str], copied: set[int], create: bool) -> _Node[T] | None:
        """The trie node of ``segments`` in this (new) router, copying the shared nodes on the way."""
        node = self._root
        for seg in segments:
            param = is_param(seg)
            child = node.param if param else node.literal.get(seg)
            if child is None:
                if not create:
                    return None
                child = _Node()
            elif id(child) not in copied:
                child = _copy_node(child)
            if param:
                node.param = child
            else:
                node.literal[seg] = child
            copied.add(id(child))
            node = child
        return node

    def lookup(self, method: str, path: str) -> tuple[Match[T] | None, bool]:
        """Return (match, path_matched). ``path_matched`` is True when some API has this path but
        none accepts the method (so the caller can say "method not defined")."""
        table = self.static.get(path)
        path_matched = False
        if table is not None:
            target = table.get(method) or table.get("ANY")
            if target is not None:
                return Match(target, {}, ""), True
            path_matched = True
        segments = split_template(path)
        prefixes: list[tuple[int, _Node[T], list[str]]] = []
        seen_path: list[bool] = [False]
        found = self._walk(self._root, segments, 0, method, [], prefixes, seen_path)
        if found is not None:
            node_target, values = found
            return Match(node_target, self._params(node_target, values), ""), True
        if prefixes:
            # deepest prefix first; stable for equal depth (literal branch was recorded first)
            prefixes.sort(key=lambda p: -p[0])
            for depth, node, values in prefixes:
                assert node.prefix is not None
                target = node.prefix.get(method) or node.prefix.get("ANY")
                if target is None:
                    path_matched = True
                    continue
                rest = segments[depth:]
                suffix = "/" + "/".join(rest) if rest else ""
                return Match(target, self._params(target, values), suffix), True
        return None, path_matched or seen_path[0]

    def _params(self, target: T, values: list[str]) -> dict[str, str]:
        names = self._names.get(id(target), ())
        return {name: values[k] for k, (_i, name) in enumerate(names) if k < len(values)}

    def _walk(
        self,
        node: _Node[T],
        segments: list[str],
        i: int,
        method: str,
        values: list[str],
        prefixes: list[tuple[int, _Node[T], list[str]]],
        seen_path: list[bool],
    ) -> tuple[T, list[str]] | None:
        if node.prefix is not None:
            prefixes.append((i, node, list(values)))
        if i == len(segments):
            if node.exact is not None:
                target = node.exact.get(method) or node.exact.get("ANY")
                if target is not None:
                    return target, values
                seen_path[0] = True
            return None
        seg = segments[i]
        child = node.literal.get(seg)
        if child is not None:
            found = self._walk(child, segments, i + 1, method, values, prefixes, seen_path)
            if found is not None:
                return found
        if node.param is not None and seg:
            values.append(seg)
            found = self._walk(node.param, segments, i + 1, method, values, prefixes, seen_path)
            if found is not None:
                return found
            values.pop()
        return None
