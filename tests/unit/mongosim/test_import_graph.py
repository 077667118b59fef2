"""mongosim's import graph has no cycles: dependencies point down (STYLE.md, point 18).

Every import counts: top-level, function-level and those under ``if TYPE_CHECKING:``,
since a cycle hidden by a deferred import is still a cycle in the design.
"""

from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (dev extra)")


def _graph() -> object:
    return grimp.build_graph("mongosim", include_external_packages=False, cache_dir=None)


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle in the graph, as a path of modules that returns to its start."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(edges, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if colour.get(nxt, WHITE) == GREY:
                return [*stack[stack.index(nxt) :], nxt]
            if colour.get(nxt, WHITE) == WHITE:
                found = visit(nxt)
                if found is not None:
                    return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(edges):
        if colour[node] == WHITE:
            found = visit(node)
            if found is not None:
                return found
    return None


def test_mongosim_imports_form_no_cycle() -> None:
    graph = _graph()
    modules = {m for m in graph.modules if m != "mongosim"}  # type: ignore[attr-defined]
    edges = {
        m: {
            d
            for d in graph.find_modules_directly_imported_by(m)  # type: ignore[attr-defined]
            if d in modules
        }
        for m in modules
    }
    cycle = _find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_reports_a_back_import() -> None:
    """The check itself works: a deliberate back-import is a cycle, and is named."""
    edges = {"a.engine": {"a.storage"}, "a.storage": {"a.commands"}, "a.commands": {"a.engine"}}
    assert _find_cycle(edges) == ["a.commands", "a.engine", "a.storage", "a.commands"]
    assert _find_cycle({"a.engine": {"a.storage"}, "a.storage": set()}) is None
