"""The registry of integration types is the only place that branches on type.

ARCHITECTURE: "adding a sixth type touches no ``if type == …`` chains elsewhere". The source is
scanned for comparisons against a type (its ``IntegrationType`` member or its string value) and
for ``isinstance`` checks against one platform's connector class. Only the registry
(``core/catalog.py``, ``providers/registry.py``), each platform's own provider modules, the
sandbox (which plays the platforms) and the migrations (which rewrite one type's stored rows)
may name a type so.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from intdash.core.catalog import TYPES, Action, Flow, IntegrationType, Probe

PACKAGE = Path(__file__).resolve().parent.parent / "intdash"
TYPE_VALUES = frozenset(t.value for t in IntegrationType)
PLATFORMS = ("xero", "myob", "zoho")


def _exempt(relative: Path) -> bool:
    parts = relative.parts
    if parts[0] == "sandbox" or parts[:2] == ("core", "migrations"):
        return True
    if relative.as_posix() in ("core/catalog.py", "providers/registry.py"):
        return True
    return parts[0] == "providers" and relative.name.startswith(PLATFORMS)


def _dotted(node: ast.AST) -> str | None:
    """``IntegrationType.XERO.value`` as text; None for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _names_a_type(node: ast.AST) -> str | None:
    """What names a type in ``node`` (itself or a member of a tuple, list or set)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return repr(node.value) if node.value in TYPE_VALUES else None
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return next((found for item in node.elts if (found := _names_a_type(item))), None)
    dotted = _dotted(node)
    if dotted is not None:
        parts = dotted.split(".")
        if "IntegrationType" in parts[:-1]:
            return dotted
    return None


def _connector_class(node: ast.AST) -> str | None:
    """One platform's connector class (``MyobConnector``), or one of a tuple of them."""
    if isinstance(node, ast.Tuple):
        return next((found for item in node.elts if (found := _connector_class(item))), None)
    dotted = _dotted(node)
    if dotted is None:
        return None
    name = dotted.rsplit(".", 1)[-1]
    return name if name.endswith("Connector") and name != "Connector" else None


def _branches(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Each comparison on type in a module: its line and what it compares with."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found = _names_a_type(operand) or _connector_class(operand)
                if found:
                    yield node.lineno, f"compares with {found}"
                    break
        elif isinstance(node, ast.MatchValue):
            if found := _names_a_type(node.value):
                yield node.lineno, f"matches case {found}"
        elif isinstance(node, ast.MatchClass):
            if found := _connector_class(node.cls):
                yield node.lineno, f"matches case {found}()"
        elif isinstance(node, ast.Call):
            function = _dotted(node.func)
            if function in ("isinstance", "issubclass") and len(node.args) == 2:
                if found := _connector_class(node.args[1]):
                    yield node.lineno, f"{function} with {found}"
            elif isinstance(node.func, ast.Attribute) and node.func.attr == "in_":
                # a query's IN (...) on a type is the same comparison in SQL
                for argument in node.args:
                    if found := _names_a_type(argument):
                        yield node.lineno, f"selects IN {found}"


def branches_on_type(root: Path = PACKAGE) -> list[str]:
    """``file:line: what`` for every comparison on type outside the registry."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if _exempt(relative):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for line, what in sorted(_branches(tree)):
            found.append(f"intdash/{relative.as_posix()}:{line}: {what}")
    return found


def test_nothing_outside_the_registry_branches_on_type() -> None:
    found = branches_on_type()
    assert not found, (
        "these compare with an integration type outside the registry; read a flag or hook "
        "of the type's entry (core/catalog.py) or of its connector instead:\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    "source",
    [
        "if row.type == 'xero': pass",
        "if row.type != IntegrationType.WEBHOOK.value: pass",
        "if view.type is IntegrationType.CUSTOM: pass",
        "ok = kind in ('myob', 'zoho')",
        "q = select(t).where(t.c.type == IntegrationType.WEBHOOK.value)",
        "q = select(t).where(t.c.type.in_(['webhook']))",
        "match view.type:\n    case IntegrationType.ZOHO: pass",
        "match kind:\n    case 'custom' | 'other': pass",
        "match connector:\n    case MyobConnector(): pass",
        "if isinstance(connector, MyobConnector): pass",
        "if isinstance(connector, (Foo, registry.XeroConnector)): pass",
    ],
)
def test_the_scan_sees_each_kind_of_branch(source: str) -> None:
    assert len(list(_branches(ast.parse(source)))) == 1, source


@pytest.mark.parametrize(
    "source",
    [
        "spec = TYPES[IntegrationType.XERO]",
        "ws.integrations.create('myob', name='Bay')",
        "if spec.delivers and kind == 'hook': pass",
        "if isinstance(connector, Connector): pass",
        "if trigger == 'manual': pass",
    ],
)
def test_the_scan_lets_the_rest_be(source: str) -> None:
    assert not list(_branches(ast.parse(source))), source


def test_the_scan_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "screen.py").write_text(
        "x = 1\nif view.type is IntegrationType.CUSTOM:\n    x = 2\n"
    )
    (tmp_path / "catalog.py").write_text("if t == 'xero': pass\n")  # exempt only under core/
    assert branches_on_type(tmp_path) == [
        "intdash/catalog.py:1: compares with 'xero'",
        "intdash/screen.py:2: compares with IntegrationType.CUSTOM",
    ]


# -- the entries themselves -------------------------------------------------------------------


def test_each_type_offers_its_actions() -> None:
    assert {t: spec.actions for t, spec in TYPES.items()} == {
        IntegrationType.XERO: (Action.RECONNECT, Action.REMOVE),
        IntegrationType.MYOB: (Action.CONFIGURE, Action.REMOVE),
        IntegrationType.ZOHO: (Action.CONFIGURE, Action.REMOVE),
        IntegrationType.WEBHOOK: (Action.CONFIGURE, Action.REMOVE),
        IntegrationType.CUSTOM: (Action.API_KEYS, Action.REMOVE),
    }


def test_each_type_says_what_it_does_with_invoices() -> None:
    assert {t: (spec.flow, spec.probe, spec.activity) for t, spec in TYPES.items()} == {
        IntegrationType.XERO: (Flow.SYNCS, Probe.PLATFORM, "sync"),
        IntegrationType.MYOB: (Flow.SYNCS, Probe.PLATFORM, "sync"),
        IntegrationType.ZOHO: (Flow.SYNCS, Probe.PLATFORM, "sync"),
        IntegrationType.WEBHOOK: (Flow.DELIVERS, Probe.SIGNED_EVENT, "delivery"),
        IntegrationType.CUSTOM: (Flow.PUSHES, Probe.NONE, "push"),
    }


@pytest.mark.parametrize("kind", list(IntegrationType))
def test_the_flags_of_an_entry_agree(kind: IntegrationType) -> None:
    spec = TYPES[kind]
    assert [spec.syncs, spec.pushes, spec.delivers].count(True) == 1
    assert spec.needs_api_key is spec.pushes  # what pushes authenticates with an API key
    assert (Action.API_KEYS in spec.actions) is spec.pushes
    assert (spec.probe is Probe.PLATFORM) is spec.oauth  # a platform is tested by calling it
    assert (spec.probe is Probe.SIGNED_EVENT) is spec.delivers
    assert set(spec.consent_fields) <= set(spec.field_names)
