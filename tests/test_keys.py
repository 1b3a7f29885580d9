"""The dashboard's keys: the command palette on every screen, themes, read-only everywhere,
keymaps, help and the palette built from the keys as bound, and small terminals."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.dom import DOMNode
from textual.widgets import Button, Input, Static

from intdash.core.workspace import Workspace
from intdash.tui.app import IntdashApp
from intdash.tui.screens.apikeys import ApiKeysScreen
from intdash.tui.screens.deliveries import DeliveriesScreen
from intdash.tui.screens.details import DetailsScreen
from intdash.tui.screens.help import HelpScreen
from intdash.tui.screens.integrations import IntegrationsScreen
from intdash.tui.screens.invoices import InvoicesScreen
from intdash.tui.screens.modals import ActionMenu, RemoveScreen
from tests.conftest import run_intdash
from tests.waiting import until

README = Path(__file__).parents[1] / "README.md"


class Recording(IntdashApp):
    """The dashboard, keeping what it said (its notices) for the test to read."""

    def __init__(self, ws: Workspace, **options: Any) -> None:
        super().__init__(ws, schedule=False, poll_seconds=0.2, **options)
        self.said: list[tuple[str, str]] = []

    def notify(self, message: str, *, title: str = "", **options: Any) -> None:
        self.said.append((title, message))
        super().notify(message, title=title, **options)

    def read_only_notices(self) -> int:
        return sum(title == "read-only" for title, _ in self.said)


def integrations(app: IntdashApp) -> IntegrationsScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, IntegrationsScreen)
    return screen


async def select(pilot: Any, app: IntdashApp, uid: str) -> None:
    """The row of ``uid`` under the cursor, once the main screen has read it."""
    main = integrations(app)
    await until(pilot, lambda: uid in main.views)
    table: Any = main.query_one("#integrations")
    await until(pilot, lambda: uid in [table.cursor_key, *table.keys])
    table.move_cursor(row=table.get_row_index(uid))
    await until(pilot, lambda: main.selected_uid() == uid)


async def details_of(pilot: Any, app: IntdashApp, uid: str) -> DetailsScreen:
    await select(pilot, app, uid)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
    screen = app.screen
    assert isinstance(screen, DetailsScreen)
    return screen


async def palette_opens(pilot: Any, app: IntdashApp, key: str = "ctrl+p") -> None:
    """``key`` opens the command palette over the current screen; esc closes it again."""
    under = app.screen
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), message=f"{key} on {under}")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is under)


# -- item 5: ctrl+p --------------------------------------------------------------------------


async def test_ctrl_p_opens_the_palette_on_every_screen(ws: Workspace) -> None:
    custom = ws.integrations.create("custom").integration.uid
    hook = ws.integrations.create("webhook", values={"url": "https://a.example/h"})
    app = Recording(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await select(pilot, app, custom)
        await palette_opens(pilot, app)
        await palette_opens(pilot, app, "colon")  # : still opens it
        await pilot.press("slash")  # from inside the filter box too (':' types there)
        await until(pilot, lambda: isinstance(app.focused, Input))
        await palette_opens(pilot, app)
        await pilot.press("escape")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await palette_opens(pilot, app)
        await pilot.press("escape")
        await select(pilot, app, custom)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApiKeysScreen))
        await palette_opens(pilot, app)
        await pilot.press("escape")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InvoicesScreen))
        await palette_opens(pilot, app)
        await pilot.press("escape")
        await details_of(pilot, app, hook.integration.uid)
        await palette_opens(pilot, app)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen))
        await palette_opens(pilot, app)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        await pilot.press("x")  # a dialog: the palette opens over it too
        await until(pilot, lambda: isinstance(app.screen, RemoveScreen))
        await palette_opens(pilot, app)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
    assert ws.integrations.get(hook.integration.uid).removed_at is None


# -- item 6: themes --------------------------------------------------------------------------


def test_a_bad_theme_is_one_line_before_the_dashboard(env: dict[str, str]) -> None:
    bad = run_intdash("--theme", "solarised-dark", env=env)
    assert bad.returncode == 2
    [line] = bad.stderr.splitlines()
    assert line.startswith("intdash: no theme 'solarised-dark' (did you mean 'solarized-dark'?);")
    assert "themes: ansi-dark, ansi-light," in line and "textual-dark" in line
    # the documented names are accepted: the dashboard goes on to want a terminal
    for name in ("textual-ansi", "ansi-dark", "nord"):
        good = run_intdash("--theme", name, env=env)
        assert "needs a terminal" in good.stderr, (name, good.stderr)
    helped = run_intdash("--help", env=env).stdout
    assert "ansi-dark" in helped and "textual-ansi" not in helped
    readme = README.read_text(encoding="utf-8")
    assert "`textual-ansi`" not in readme.replace("`textual-ansi` is taken", "")
    assert "`--theme NAME`" in readme and "`ansi-dark`" in readme


async def test_the_documented_theme_is_the_16_colour_one(ws: Workspace) -> None:
    app = Recording(ws, theme="textual-ansi")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        assert app.theme == "ansi-dark"
    assert not app.said  # no toast
    with pytest.raises(ValueError, match="no theme 'nope'; themes: ansi-dark"):
        Recording(ws, theme="nope")


# -- item 7: read-only -----------------------------------------------------------------------


def test_every_binding_of_every_screen_is_classified() -> None:
    """A new binding must say whether it changes anything: it fails here until its action is
    in CHANGING_ACTIONS (greyed and refused in --read-only) or VIEWING_ACTIONS."""
    from intdash.tui.actions import (
        BUTTON_ACTIONS,
        CHANGING_ACTIONS,
        VIEWING_ACTIONS,
        action_name,
        bindings_of,
        dashboard_classes,
    )
    from intdash.tui.screens.details_buttons import BUTTONS
    from intdash.tui.widgets import RowTable

    assert not CHANGING_ACTIONS & VIEWING_ACTIONS
    seen = set()
    classes: list[type[DOMNode]] = [*dashboard_classes(), RowTable]
    for cls in classes:
        for owner, binding in bindings_of(cls):
            name = action_name(binding.action)
            where = f"{owner.__name__}: {binding.key} -> {binding.action}"
            assert name in CHANGING_ACTIONS | VIEWING_ACTIONS, f"unclassified: {where}"
            seen.add(name)
    buttons = [action for *_, action in BUTTONS.values()] + list(BUTTON_ACTIONS.values())
    for action in buttons:
        assert action in CHANGING_ACTIONS | VIEWING_ACTIONS, f"unclassified button: {action}"
    assert seen | set(buttons) >= CHANGING_ACTIONS  # no stale entry


async def test_read_only_greys_every_way_in_and_says_so(ws: Workspace) -> None:
    xero = ws.integrations.create("xero").integration.uid
    custom = ws.integrations.create("custom").integration.uid
    ws.keys.create(custom, "production")
    hook = ws.integrations.create("webhook", values={"url": "https://a.example/h"})
    app = Recording(ws, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        main = integrations(app)

        async def refused(key: str) -> None:
            """``key`` does nothing but say read-only; the screen stays."""
            before, screen = app.read_only_notices(), app.screen
            await pilot.press(key)
            await until(
                pilot, lambda: app.read_only_notices() == before + 1, message=f"{key}: silent"
            )
            assert app.screen is screen

        await select(pilot, app, xero)
        for key in ("x", "n", "o"):
            await refused(key)
        await select(pilot, app, hook.integration.uid)
        await refused("c")
        # the palette offers them greyed, and choosing one says read-only too
        commands = {c.title: c for c in app.get_system_commands(main)}
        assert commands["Remove"].help.startswith("read-only")
        assert not commands["Refresh"].help.startswith("read-only")
        before = app.read_only_notices()
        commands["Remove"].callback()
        await until(pilot, lambda: app.read_only_notices() == before + 1)
        # the action menu offers only what may be done
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, ActionMenu))
        menu = app.screen
        assert isinstance(menu, ActionMenu)
        offered = {action for action, _ in menu.actions}
        assert offered and not offered & {"remove", "configure", "create"}
        await pilot.press("escape")

        # API keys: create and revoke
        await select(pilot, app, custom)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApiKeysScreen))
        await until(pilot, lambda: app.screen.query_one("#keys").row_count == 1)  # type: ignore[attr-defined]
        for key in ("n", "x"):
            await refused(key)
        await pilot.press("escape")

        # details: every changing key, and every changing button greyed
        screen = await details_of(pilot, app, xero)
        from intdash.tui.actions import CHANGING_ACTIONS, button_action

        live = {b.id: b for b in screen.query(Button) if b.display}
        changing = {n for n in live if button_action(n) in CHANGING_ACTIONS}
        assert {"b-remove", "b-toggle"} <= changing and "b-close" not in changing
        await until(pilot, lambda: all(live[n].disabled for n in changing))
        assert not any(b.disabled for n, b in live.items() if n not in changing)
        for key in ("e", "o", "x"):
            await refused(key)
        await pilot.press("escape")

        # deliveries: resend, test and rotate
        await details_of(pilot, app, hook.integration.uid)
        await refused("t")  # a signed test event
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen))
        for key in ("t", "R"):
            await refused(key)
    assert ws.integrations.get(xero).removed_at is None
    assert len(ws.integrations.listing()) == 3
    assert [k.label for k in ws.keys.list(custom)] == ["production"]


async def test_an_empty_read_only_workspace_greys_its_create_button(ws: Workspace) -> None:
    app = Recording(ws, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query("#empty-create"))
        button = app.screen.query_one("#empty-create", Button)
        await until(pilot, lambda: button.disabled)


# -- item 15: keymaps ------------------------------------------------------------------------


def test_every_binding_has_an_id() -> None:
    from intdash.tui.actions import our_bindings

    for cls, binding in our_bindings():
        assert binding.id, f"{cls.__name__}: {binding.key} -> {binding.action} has no id"
        # one id, one binding on a screen: a keymap moves exactly it
    from intdash.tui.actions import bindings_of, dashboard_classes

    for cls in dashboard_classes():
        ids = [b.id for owner, b in bindings_of(cls) if owner.__module__.startswith("intdash.")]
        assert len(ids) == len(set(ids)), f"{cls.__name__} repeats an id: {ids}"


def test_the_keymap_setting_is_checked(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from intdash.core.config import load_settings
    from intdash.core.errors import ConfigError

    config = tmp_path / "config.toml"
    monkeypatch.setenv("INTDASH_CONFIG", str(config))
    config.write_text('[keymap]\nfilter = "f"\nhelp = "?,f1"\nback = "esc"\n')
    assert load_settings().keymap == {"filter": "f", "help": "question_mark,f1", "back": "escape"}
    for table, words in (
        ('filter = "ctrl+fliter"', "`ctrl+fliter` is not a key"),
        ('filter = "cmd+f"', "`cmd` is not one of ctrl, shift, alt"),
        ('filter = ""', "`` is not a key"),
        ('"Filter Box" = "f"', "`Filter Box` is not a binding id"),
        ("filter = 1", "setting `filter` in [keymap] of"),
        ('filter = "escpae"', "(did you mean `escape`?)"),
    ):
        config.write_text(f"[keymap]\n{table}\n")
        with pytest.raises(ConfigError, match=re.escape(words)) as raised:
            load_settings()
        assert "\n" not in str(raised.value) and "keymap" in str(raised.value)


def test_the_names_the_keymap_takes_are_textuals() -> None:
    """Every key name the setting accepts is one Textual binds (characters by its names)."""
    import string

    from textual.keys import Keys, _character_to_key  # how Textual names a key pressed

    from intdash.core.config import CHARACTER_KEYS, NAMED_KEYS, normalise_key

    textual_names = {k.value for k in Keys}
    for name in NAMED_KEYS:
        assert name in textual_names, name
    for name, character in CHARACTER_KEYS.items():
        assert _character_to_key(character) == name, name
    for character in string.punctuation + string.ascii_letters + string.digits:
        assert normalise_key(character) == _character_to_key(character), character


def test_unknown_binding_ids_and_clashes_stop_the_dashboard(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    env = {**env, "INTDASH_CONFIG": str(config)}
    for table, words in (
        ('fliter = "f"', "no key binding has the id `fliter` (did you mean `filter`?)"),
        ('refresh = "n"', "`create` and `refresh` would share the key n (IntegrationsScreen)"),
        ('sync-now = "q"', "`quit` and `sync-now` would share the key q (DetailsScreen)"),
        ('connect = "O"', "`connect` and `reconnect` share the key o: give them new keys"),
    ):
        config.write_text(f"[keymap]\n{table}\n")
        done = run_intdash(env=env)
        assert done.returncode == 1, done
        [line] = done.stderr.splitlines()
        assert line.startswith(f"intdash: [keymap] of {config}: ") and words in line, line
    config.write_text('[keymap]\nfilter = "f"\nrefresh = "ctrl+r"\n')  # fine: on to the terminal
    assert "needs a terminal" in run_intdash(env=env).stderr


def help_text(app: IntdashApp) -> str:
    return str(app.screen.query_one("VerticalScroll Static", Static).render())


async def test_a_keymap_remaps_and_help_and_palette_show_the_keys_as_bound(ws: Workspace) -> None:
    uid = ws.integrations.create("xero").integration.uid
    keymap = {"filter": "f", "help": "f1", "details": "l,enter", "back": "h"}
    app = Recording(ws, keymap=keymap)
    async with app.run_test(size=(100, 30)) as pilot:
        main = integrations(app)
        await select(pilot, app, uid)
        await pilot.press("question_mark")  # no longer help
        await pilot.pause()
        assert app.screen is main
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = help_text(app)
        assert re.search(r"\n +f +Filter: ", text) and not re.search(r"\n +/ +Filter", text)
        assert re.search(r"\n +f1 +Keys: ", text)
        assert re.search(r"\n +tab +Focus Next", text)  # inherited from Textual's screen
        assert re.search(r"\n +pgdn +Page down", text)  # the table's own
        assert re.search(r"\n +q, ctrl\+q +Quit", text)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is main)
        commands = {c.title: c.help for c in app.get_system_commands(main)}
        assert commands["Filter"].endswith("(f)") and commands["Details"].endswith("(l, enter)")
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.focused, Input))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.focused, Input))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = help_text(app)
        assert re.search(r"\n +esc +Close: Back to the integrations", text)  # as bound there
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        await pilot.press("escape")  # details' esc is its own (id close), not back: still esc
        await until(pilot, lambda: app.screen is main)


async def test_help_lists_inherited_keys(ws: Workspace) -> None:
    uid = ws.integrations.create("custom").integration.uid
    app = Recording(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await select(pilot, app, uid)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApiKeysScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = help_text(app)
        for line in (
            r"esc +Back",
            r"n +Create: Create an API key",
            r"tab +Focus Next",
            r"\? +Keys",
            r":, ctrl\+p +Commands",
        ):
            assert re.search(r"\n +" + line, text), line


async def test_the_palette_has_commands_not_moves(ws: Workspace) -> None:
    uid = ws.integrations.create("xero").integration.uid
    app = Recording(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        details = await details_of(pilot, app, uid)
        for screen in (integrations(app), details):
            commands = list(app.get_system_commands(screen))
            titles = [c.title for c in commands]
            assert "Down" not in titles and "Up" not in titles
            assert len(titles) == len(set(titles))  # Textual's Keys and Quit are ours here
            for command in commands:
                assert command.help != command.title


# -- item 16: small terminals ----------------------------------------------------------------


async def test_a_small_terminal_says_how_big_it_must_be(ws: Workspace) -> None:
    from intdash.tui.screens.base import TooSmallScreen

    uid = ws.integrations.create("xero").integration.uid
    app = Recording(ws)
    async with app.run_test(size=(60, 20)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        said = str(app.screen.query_one("#too-small", Static).render())
        assert "at least 80x24" in said and "60x20" in said
        box = app.screen.query_one("#too-small").region
        assert abs(box.x - (60 - box.right)) <= 1 and abs(box.y - (20 - box.bottom)) <= 1
        await pilot.resize_terminal(100, 30)
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        await select(pilot, app, uid)  # as it was: its rows and keys
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        await pilot.resize_terminal(79, 30)
        await until(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        await pilot.press("x")  # keys reach nothing beneath
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
    assert ws.integrations.get(uid).removed_at is None


async def test_the_details_footer_keeps_help_and_quit_in_view(ws: Workspace) -> None:
    uid = ws.integrations.create("xero").integration.uid
    app = Recording(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        details = await details_of(pilot, app, uid)
        await until(pilot, lambda: len(details.query("FooterKey")) > 5)
        shown = {getattr(k, "key", None): k.region for k in details.query("FooterKey")}
        for key in ("question_mark", "q", "escape"):
            assert key in shown and 0 < shown[key].right <= 100, (key, shown.get(key))


# -- the README's keys -----------------------------------------------------------------------

SECTIONS = {  # the README's heading of each screen's keys
    "IntdashApp": "Everywhere",
    "IntegrationsScreen": "Integrations",
    "DetailsScreen": "Details",
    "InvoicesScreen": "Invoices",
    "ApiKeysScreen": "API keys",
    "DeliveriesScreen": "Deliveries",
    "AuditScreen": "Audit",
    "HelpScreen": "Dialogs",
    "KeyShownScreen": "Dialogs",
    "ConnectScreen": "Dialogs",
    "BaseModal": "Dialogs",
    "TooSmallScreen": "Dialogs",
}


def test_the_readme_lists_every_key_of_every_screen() -> None:
    """Each screen's table in the README names each of its keys with its id."""
    from intdash.tui.actions import bindings_of, dashboard_classes
    from intdash.tui.screens.base import key_label

    text = README.read_text(encoding="utf-8")
    keys_part = text[text.index("### Keys") : text.index("### Keymap")]
    blocks = keys_part.split("\n\n")
    tables = {
        re.sub(r"\*\*(.+?)\*\*.*", r"\1", title): table
        for title, table in itertools.pairwise(blocks)
        if title.startswith("**") and table.startswith("|")
    }
    for cls in dashboard_classes():
        section = SECTIONS.get(cls.__name__)
        if section is None:
            continue
        rows = tables[section].splitlines()
        for owner, binding in bindings_of(cls):
            if not owner.__module__.startswith("intdash."):
                continue
            label = key_label(binding.key)
            row = [r for r in rows if f"`{binding.id}`" in r]
            assert row, f"{section}: no row for {binding.id}"
            assert any(f"`{label}`" in r for r in row), f"{section}: {binding.id} is not {label}"


def test_the_readme_keymap_example_is_a_good_one() -> None:
    from intdash.core.config import normalise_keymap
    from intdash.tui.actions import keymap_problems

    text = README.read_text(encoding="utf-8")
    example = re.search(r"```toml\n(\[keymap\]\n.+?)```", text, re.S)
    assert example
    import tomllib

    keymap = normalise_keymap(tomllib.loads(example.group(1))["keymap"])
    assert keymap["filter"] == "f" and keymap_problems(keymap) == []
