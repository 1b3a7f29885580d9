"""The dashboard's actions and key bindings, declared once.

Every action a key can reach is either in ``CHANGING_ACTIONS`` (it changes the workspace: greyed
and refused in ``--read-only``, everywhere it can be reached) or in ``VIEWING_ACTIONS`` (it only
looks, moves or leaves); tests/test_keys.py walks every binding of every screen and fails on one
that is in neither. Every binding of ours has an id, by which the ``[keymap]`` table of
config.toml gives it other keys."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Iterator, Mapping

from textual.actions import parse
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.screen import Screen

CHANGING_ACTIONS = frozenset(
    {
        "create",
        "configure",
        "remove",
        "connect",
        "reconnect",
        "sync_now",
        "cancel_sync",  # it writes a request to stop, for whichever process runs the sync
        "toggle_sync",
        "reset_sync_from",
        "test_connection",
        "create_key",
        "revoke_key",
        "resend",
        "rotate_secret",
    }
)
"""Actions that change the workspace (or ask another process to)."""

MOVING_ACTIONS = frozenset(
    {
        "cursor_down",
        "cursor_up",
        "move",
        "scroll_runs",
        # Textual's own, on every screen and in every table
        "focus_next",
        "focus_previous",
        "copy_text",
        "help_quit",
        "cursor",
        "page",
        "edge",
        "select",
        "scroll_left",
        "scroll_right",
        "page_left",
        "page_right",
    }
)
"""Actions that only move (a cursor, the focus) or copy a selection: keys, not commands, so
the command palette leaves them out."""

VIEWING_ACTIONS = MOVING_ACTIONS | frozenset(
    {
        "details",
        "invoices",
        "api_keys",  # the screen; creating and revoking there are changing actions
        "deliveries",
        "audit",
        "menu",  # the menu offers only what may be done
        "help",
        "command_palette",
        "back",
        "back_or_clear",
        "cancel",
        "quit",
        "filter",
        "clear_filter",
        "sort",
        "reverse",
        "refresh",
        "show_view",  # a health view of the main table (all, failing, …)
        "copy",  # a secret or a URL, to the operator's own clipboard
        "open",  # an invoice in full
        "scroll",
    }
)
"""Actions that change nothing: they open, filter, sort, move, copy what is shown, or leave."""

BUTTON_ACTIONS = {"empty-create": "create"}
"""Buttons, by id, that run a screen's action through a handler of their own (the details
screen's action bar names its own: ``details_buttons.BUTTONS``)."""


def action_name(action: str) -> str:
    """An action's name without its namespace and parameters: ``move(1)`` is ``move``."""
    return parse(action)[1]


def button_action(button_id: str | None) -> str | None:
    """The action that the button of this id runs, if it runs one."""
    from intdash.tui.screens.details_buttons import BUTTONS

    if button_id in BUTTONS:
        return BUTTONS[button_id][2]
    return BUTTON_ACTIONS.get(button_id or "")


# -- the bindings of every screen ------------------------------------------------------------


def bindings_of(node: type[DOMNode]) -> list[tuple[type[DOMNode], Binding]]:
    """A class's bindings as Textual merges them, each with the class that declares it: its
    own and those it inherits, where a subclass's binding of a key hides its bases' (no keymap
    applied)."""
    keys: dict[str, list[tuple[type[DOMNode], Binding]]] = {}
    for base in reversed(node.__mro__):
        if not (isinstance(base, type) and issubclass(base, DOMNode)):
            continue
        declared: list[BindingType] = base.__dict__.get("BINDINGS", [])
        mine: dict[str, list[tuple[type[DOMNode], Binding]]] = {}
        for binding in Binding.make_bindings(declared):
            mine.setdefault(binding.key, []).append((base, binding))
        for key in mine:  # a subclass's binding takes its place in the subclass's order
            keys.pop(key, None)
        keys.update(mine)
    return [pair for pairs in keys.values() for pair in pairs]


def dashboard_classes() -> list[type[DOMNode]]:
    """The app, the row table and every screen of the dashboard (each module of
    intdash.tui.screens)."""
    import intdash.tui.screens
    from intdash.tui.app import IntdashApp

    for module in pkgutil.iter_modules(intdash.tui.screens.__path__):
        importlib.import_module(f"intdash.tui.screens.{module.name}")
    from intdash.tui.widgets import RowTable  # the tables' own keys: remappable too

    found: list[type[DOMNode]] = [IntdashApp, RowTable]
    todo: list[type[DOMNode]] = [*Screen.__subclasses__()]
    while todo:
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("intdash.") and cls not in found:
            found.append(cls)
    return found


def our_bindings() -> Iterator[tuple[type[DOMNode], Binding]]:
    """Every binding that the dashboard declares (Textual's own, such as tab, are not ours),
    with the class whose keys it is."""
    for cls in dashboard_classes():
        for owner, binding in bindings_of(cls):
            if owner.__module__.startswith("intdash."):
                yield cls, binding


def binding_ids() -> set[str]:
    return {binding.id for _, binding in our_bindings() if binding.id}


def keys_of(binding: Binding, keymap: Mapping[str, str]) -> tuple[str, ...]:
    """The keys a binding has under ``keymap`` (long names, as config.py makes them)."""
    keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
    return tuple(keys.split(","))


def keymap_problems(keymap: Mapping[str, str]) -> list[str]:
    """What is wrong with a keymap (long key names): ids that no binding has, keys that it
    gives to two bindings of one screen, and one of the bindings that share a key by design
    (Connect and Reconnect on ``o``) moved without the other."""
    known = binding_ids()
    problems = []
    for binding_id in keymap:
        if binding_id not in known:
            close = difflib.get_close_matches(binding_id, sorted(known), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            problems.append(f"no key binding has the id `{binding_id}`{hint}")
    if problems:
        return problems
    from intdash.tui.app import IntdashApp

    everywhere = [b for _, b in bindings_of(IntdashApp)]
    for cls in dashboard_classes():
        own = [b for _, b in bindings_of(cls)]
        namespaces = [own] if cls is IntdashApp else [own, everywhere]
        together: list[set[str]] = []  # bindings that share a key by design
        after: dict[str, set[str]] = {}
        for bindings in namespaces:
            before: dict[str, set[str]] = {}
            for binding in bindings:
                name = binding.id or binding.action
                before.setdefault(binding.key, set()).add(name)
                for key in keys_of(binding, keymap):
                    after.setdefault(key, set()).add(name)
            for key, ids in before.items():
                moved = ids & set(keymap)
                if moved and moved != ids:  # Textual takes the key from all when one moves
                    named = " and ".join(f"`{i}`" for i in sorted(ids))
                    problems.append(f"{named} share the key {key}: give them new keys together")
            together.extend(ids for ids in before.values() if len(ids) > 1)
        shared_before: dict[str, set[str]] = {}
        for binding in [b for bindings in namespaces for b in bindings]:
            shared_before.setdefault(binding.key, set()).add(binding.id or binding.action)
        together.extend(ids for ids in shared_before.values() if len(ids) > 1)
        for key, ids in after.items():
            if len(ids) > 1 and not any(ids <= shared for shared in together):
                named = " and ".join(f"`{i}`" for i in sorted(ids))
                problems.append(f"{named} would share the key {key} ({cls.__name__})")
    return sorted(set(problems))
