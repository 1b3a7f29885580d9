"""The dashboard's dialogs, driven with the Pilot: secrets shown once, Connect, the create and
configure forms, and Connect offered wherever an OAuth integration is not authorised."""

from __future__ import annotations

import string
from typing import Any

import pytest
from textual import events
from textual.screen import Screen
from textual.widgets import Button, Input, OptionList, Select, Static

from intdash.core.catalog import Action
from intdash.core.errors import ConfigError
from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService
from intdash.sandbox.server import Sandbox
from intdash.tui.app import IntdashApp
from intdash.tui.screens.apikeys import ApiKeysScreen
from intdash.tui.screens.connect import ConnectScreen
from intdash.tui.screens.details import DetailsScreen
from intdash.tui.screens.forms import ConfigureScreen, CreateScreen, SettingsForm
from intdash.tui.screens.integrations import IntegrationsScreen
from intdash.tui.screens.modals import (
    ActionMenu,
    ConfirmScreen,
    KeyShownScreen,
    PromptScreen,
    RemoveScreen,
)
from tests.conftest import run_intdash
from tests.providers import connect, consent, pws, redirect_uri, sandbox, sandbox_env
from tests.test_integrations import authorise
from tests.test_tui import app_for, uids
from tests.waiting import until

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures

# every key an operator might type into a field: characters, and the keys that edit a line
TYPED = [
    *string.ascii_letters,
    *string.digits,
    *string.punctuation,
    "space",
    "é",
    "€",
    "backspace",
    "delete",
    "ctrl+d",
    "ctrl+h",
    "ctrl+w",
    "ctrl+u",
    "ctrl+k",
    "ctrl+x",
    "ctrl+v",
    "ctrl+f",
    "enter",
]


def notices(app: IntdashApp) -> list[str]:
    return [n.message for n in app._notifications]


def noticed(app: IntdashApp, text: str) -> bool:
    return any(text in message for message in notices(app))


def select(app: IntdashApp, uid: str) -> None:
    rows = app.screen.query_one("#integrations")
    rows.move_cursor(row=rows.get_row_index(uid))  # type: ignore[attr-defined]


def ready(app: IntdashApp, kind: type[Screen[Any]]) -> bool:
    """A dialog of ``kind`` is shown, and composed down to its buttons and fields (a dialog's
    nested widgets are mounted a step after the dialog itself)."""
    screen = app.screen
    if not isinstance(screen, kind) or not screen.query(Button):
        return False
    return not isinstance(screen, SettingsForm) or bool(screen.query("#f-name"))


def connecting(app: IntdashApp) -> str | None:
    """The UID that the Connect dialog shown connects, once its URL is ready."""
    screen = app.screen
    return screen.uid if isinstance(screen, ConnectScreen) and screen.flow else None


def set_auth_error(ws: Workspace, uid: str) -> None:
    """The platform refused its tokens: a reconnect is needed."""
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        row.auth_error = "invalid_grant"
        session.add(row)


# -- item 1: a secret shown once is never changed by a key, and y copies it ------------------


async def _shown_once_stays_as_shown(pilot: Any, app: IntdashApp) -> str:
    """Type every key into the secret of a "shown once" dialog: it stays byte for byte as shown,
    the dialog stays open, and y copies it from anywhere in the dialog."""
    screen = app.screen
    assert isinstance(screen, KeyShownScreen)
    secret = screen.query_one("#secret", Input)
    shown = secret.value
    await until(pilot, lambda: app.focused is secret)
    await pilot.press("y")
    assert app.clipboard == shown
    assert noticed(app, "Copied")
    for key in TYPED:
        await pilot.press(key)
        secret.focus()  # whatever a key did with the focus, the next one goes to the secret
    app.post_message(events.Paste("pasted over it"))
    await pilot.pause()
    assert secret.value.encode() == shown.encode()
    assert app.screen is screen  # no key closed it, quit or opened anything over it
    body = str(screen.query_one(".dialog-body", Static).render())
    assert "y copies it" in body
    # y from anywhere in the dialog
    for button in ("#done", "#copy"):
        app.copy_to_clipboard("")
        screen.query_one(button, Button).focus()
        await pilot.press("y")
        assert app.clipboard == shown
    assert secret.value == shown
    return shown


async def test_an_api_key_shown_once_cannot_be_typed_over(ws: Workspace) -> None:
    uid = ws.integrations.create("custom").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApiKeysScreen))
        await pilot.press("n")
        await until(pilot, lambda: ready(app, PromptScreen))
        await pilot.press(*"production", "enter")
        await until(pilot, lambda: ready(app, KeyShownScreen))
        key = await _shown_once_stays_as_shown(pilot, app)
        await pilot.click("#done")
        await until(pilot, lambda: isinstance(app.screen, ApiKeysScreen))
    assert key.startswith("idk_") and ws.keys.verify(key).ok


async def test_a_signing_secret_shown_once_cannot_be_typed_over(ws: Workspace) -> None:
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query("#empty-create"))
        await pilot.press("n")
        await until(pilot, lambda: ready(app, CreateScreen))
        app.screen.query_one("#type", Select).value = "webhook"
        await until(pilot, lambda: app.screen.query("#f-url"))
        await pilot.pause()
        app.screen.query_one("#f-url", Input).value = "https://hooks.example.com/in"
        await until(pilot, lambda: not app.screen.query_one("#save", Button).disabled)
        await pilot.click("#save")
        await until(pilot, lambda: ready(app, KeyShownScreen))
        secret = await _shown_once_stays_as_shown(pilot, app)
        assert secret.startswith("whsec_")
        await pilot.click("#done")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))


async def test_connect_y_copies_the_url_and_types_only_into_the_paste_box(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid = pws.integrations.create("xero").integration.uid
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen) and app.screen.flow)
        screen = app.screen
        assert isinstance(screen, ConnectScreen) and screen.flow is not None
        url, paste = screen.query_one("#url", Input), screen.query_one("#paste", Input)
        shown = screen.flow.url
        await until(pilot, lambda: app.focused is url)  # y copies at once
        await pilot.press("y")
        assert app.clipboard == shown
        for key in TYPED:
            await pilot.press(key)
            url.focus()
        assert url.value == shown
        assert isinstance(app.screen, ConnectScreen)
        app.copy_to_clipboard("")
        screen.query_one("#close", Button).focus()
        await pilot.press("y")
        assert app.clipboard == shown
        # the paste box is the one field that takes what is typed, y included
        app.copy_to_clipboard("")
        paste.focus()
        await pilot.press("y")
        assert paste.value == "y" and app.clipboard == ""
        assert url.value == shown
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))


# -- item 11: Connect's paste box and a missing client id -------------------------------------


async def test_the_paste_box_shows_the_redirect_uri(
    pws: Workspace, sandbox: Sandbox, redirect_uri: str
) -> None:
    uid = pws.integrations.create("myob").integration.uid
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen) and app.screen.flow)
        placeholder = app.screen.query_one("#paste", Input).placeholder
        assert placeholder.startswith(redirect_uri + "?code=")
        assert "8471" not in placeholder


@pytest.mark.parametrize("kind", ["xero", "myob", "zoho"])
async def test_connect_without_a_client_id_names_the_setting(ws: Workspace, kind: str) -> None:
    uid = ws.integrations.create(kind).integration.uid
    variable = f"INTDASH_{kind.upper()}__CLIENT_ID"
    with pytest.raises(ConfigError, match=f"client id is not set: set {variable}"):
        await ConnectService(ws).begin(uid)


async def test_connect_without_a_client_id_says_so_in_the_dashboard_and_cli(
    ws: Workspace, env: dict[str, str]
) -> None:
    uid = ws.integrations.create("xero").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("o")
        await until(pilot, lambda: noticed(app, "INTDASH_XERO__CLIENT_ID"), timeout=10)
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
    done = run_intdash("connect", uid, "--no-listen", env=env, stdin="")
    assert done.returncode == 1
    assert "INTDASH_XERO__CLIENT_ID" in done.stderr and "client_id=" not in done.stdout


# -- item 4: Connect wherever an OAuth integration is not authorised --------------------------


def test_actions_offer_connect_until_authorised(ws: Workspace) -> None:
    made = {kind: ws.integrations.create(kind).integration.uid for kind in
            ("xero", "myob", "zoho", "custom")}  # fmt: skip
    hook = ws.integrations.create("webhook", values={"url": "https://a.example/h"})
    made["webhook"] = hook.integration.uid

    def actions(kind: str) -> tuple[Action, ...]:
        return ws.integrations.get(made[kind]).actions

    never = {
        "xero": (Action.CONNECT, Action.REMOVE),
        "myob": (Action.CONNECT, Action.CONFIGURE, Action.REMOVE),
        "zoho": (Action.CONNECT, Action.CONFIGURE, Action.REMOVE),
        "webhook": (Action.CONFIGURE, Action.REMOVE),
        "custom": (Action.API_KEYS, Action.REMOVE),
    }
    assert {kind: actions(kind) for kind in made} == never
    assert ws.integrations.get(made["myob"]).to_json()["actions"] == [
        "connect",
        "configure",
        "remove",
    ]
    for kind in ("xero", "myob", "zoho"):
        authorise(ws, made[kind])
    seed = {kind: ws.integrations.get(uid).spec.actions for kind, uid in made.items()}
    assert {kind: actions(kind) for kind in made} == seed  # authorised: the type's own
    for kind in ("xero", "myob", "zoho"):
        set_auth_error(ws, made[kind])  # refused tokens: connect again
    assert {kind: actions(kind) for kind in made} == never
    ws.integrations.remove(made["myob"])
    assert actions("myob") == ()


async def test_o_and_the_menu_connect_any_oauth_integration_not_authorised(
    pws: Workspace, sandbox: Sandbox
) -> None:
    myob = pws.integrations.create("myob").integration.uid
    zoho = pws.integrations.create("zoho").integration.uid
    xero = pws.integrations.create("xero").integration.uid
    await connect(pws, zoho)
    await connect(pws, xero)
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(uids(app)) == 3)
        screen = app.screen

        def offered() -> set[str]:
            return {a for a in ("connect", "reconnect", "configure", "api_keys", "remove")
                    if screen.check_action(a, ()) is True}  # fmt: skip

        select(app, xero)
        assert offered() == {"reconnect", "remove"}
        select(app, zoho)
        assert offered() == {"configure", "remove"}
        select(app, myob)
        assert offered() == {"connect", "configure", "remove"}
        await until(pilot, lambda: "Connect" in app.export_screenshot())  # in the footer
        await pilot.press("o")
        await until(pilot, lambda: connecting(app) == myob)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("space")
        await until(
            pilot, lambda: isinstance(app.screen, ActionMenu) and app.screen.query(OptionList)
        )
        menu = app.screen.query_one(OptionList)
        ids = [menu.get_option_at_index(i).id for i in range(menu.option_count)]
        assert ids == ["details", "connect", "configure", "remove"]
        menu.highlighted = ids.index("connect")
        await pilot.press("enter")
        await until(pilot, lambda: connecting(app) == myob)


async def test_details_offers_connect_by_key_and_button_until_authorised(
    pws: Workspace, sandbox: Sandbox
) -> None:
    pws.plans.set("scale")  # the first sync, started once connected, stays within the limit
    uid = pws.integrations.create("zoho").integration.uid
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
        details = app.screen
        button = details.query_one("#b-connect", Button)
        await until(pilot, lambda: button.display)
        assert details.check_action("connect", ()) is True
        assert details.check_action("reconnect", ()) is False
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen) and app.screen.flow)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is details)
        await pilot.click("#b-connect")
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen) and app.screen.flow)
        screen = app.screen
        assert isinstance(screen, ConnectScreen) and screen.flow is not None
        paste = screen.query_one("#paste", Input)
        paste.value = await consent(screen.flow.url)
        paste.focus()
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is details)
        await until(pilot, lambda: not button.display)  # authorised: nothing to connect
        assert details.check_action("connect", ()) is False
        assert details.check_action("reconnect", ()) is True  # o still authorises again
    assert pws.integrations.get(uid).status.active


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("zoho", "organization_id", "12345"),
        ("zoho", "data_centre", "eu"),
        ("myob", "company_file_id", "11111111-2222-4333-8444-555555555555"),
    ],
)
async def test_saving_a_consent_setting_offers_to_connect_at_once(
    pws: Workspace, sandbox: Sandbox, kind: str, field: str, value: str
) -> None:
    uid = pws.integrations.create(kind).integration.uid
    await connect(pws, uid)
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        main = app.screen
        # a change that needs no consent: saved, nothing more asked
        await pilot.press("c")
        await until(pilot, lambda: ready(app, ConfigureScreen))
        app.screen.query_one("#f-name", Input).value = "Renamed"
        await pilot.pause()
        await pilot.click("#save")
        await until(pilot, lambda: pws.integrations.get(uid).name == "Renamed")
        await until(pilot, lambda: app.screen is main)
        await pilot.pause()
        assert app.screen is main
        # one that the consent reads: Connect now?
        await pilot.press("c")
        await until(pilot, lambda: ready(app, ConfigureScreen))
        widget = app.screen.query_one(f"#f-{field}")
        if isinstance(widget, Select):
            widget.value = value
        else:
            assert isinstance(widget, Input)
            widget.value = value
        await pilot.pause()
        await pilot.click("#save")
        await until(
            pilot,
            lambda: ready(app, ConfirmScreen),
            message=lambda: f"{app.screen} {notices(app)}",
        )
        assert pws.integrations.get(uid).settings[field] == value  # saved first
        title = str(app.screen.query_one(".dialog-title", Static).render())
        assert title == f"Connect {uid} now?"
        await pilot.click("#confirm")
        await until(pilot, lambda: connecting(app) == uid)


async def test_declining_to_connect_after_a_consent_change_says_how_later(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("c")
        await until(pilot, lambda: ready(app, ConfigureScreen))
        app.screen.query_one("#f-organization_id", Input).value = "777"
        await pilot.pause()
        await pilot.click("#save")
        await until(pilot, lambda: ready(app, ConfirmScreen))
        await pilot.press("enter")  # the focus starts on Cancel
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        await until(pilot, lambda: noticed(app, f"o in the details of {uid} connects it"))


# -- item 11: creating, configuring --------------------------------------------------------


async def test_a_new_custom_integration_offers_its_first_key(ws: Workspace) -> None:
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query("#empty-create"))
        await pilot.press("n")
        await until(pilot, lambda: ready(app, CreateScreen))
        app.screen.query_one("#type", Select).value = "custom"
        await pilot.pause()
        await pilot.click("#save")
        await until(pilot, lambda: ready(app, PromptScreen), timeout=10)
        created = [m for m in notices(app) if m.startswith("Created ")]
        assert created and created[0].startswith("Created Custom Integration cust-")
        title = str(app.screen.query_one(".dialog-title", Static).render())
        assert "first API key" in title
        await pilot.press(*"ERP", "enter")
        await until(pilot, lambda: ready(app, KeyShownScreen))
        key = app.screen.query_one("#secret", Input).value
        await pilot.click("#done")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen) and uids(app))
        [uid] = uids(app)
        assert created == [f"Created Custom Integration {uid}"]
    assert ws.keys.verify(key).ok
    assert ws.integrations.get(uid).status.active  # it has its key


async def test_a_custom_integration_is_named_once_in_the_remove_dialog(ws: Workspace) -> None:
    uid = ws.integrations.create("custom").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("x")
        await until(pilot, lambda: ready(app, RemoveScreen))
        title = str(app.screen.query_one(".dialog-title", Static).render())
        assert title == f"Remove Custom Integration {uid}?"


async def test_a_configure_error_is_toasted_and_its_field_focused(ws: Workspace) -> None:
    """An error only the service finds (a UID that does not exist) shows beside its field, in a
    toast too (the field may be below the fold), and the field takes the focus."""
    uid = ws.integrations.create("webhook", values={"url": "https://a.example/h"}).integration.uid
    app = app_for(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("c")
        await until(pilot, lambda: ready(app, ConfigureScreen))
        form = app.screen
        form.query_one("#f-deliver", Input).value = "cust-zzzzzz"
        await until(pilot, lambda: not form.query_one("#save", Button).disabled)
        form.query_one("#f-name", Input).focus()
        await pilot.press("enter")  # save from the first field, far above the faulty one
        await until(pilot, lambda: noticed(app, "deliver: no integration with UID 'cust-zzzzzz'"))
        assert app.focused is form.query_one("#f-deliver", Input)
        assert "no integration" in str(form.query_one("#e-deliver", Static).render())
        assert app.screen is form  # nothing saved, the form still open


async def test_create_tabs_from_the_type_through_the_fields_to_the_buttons(ws: Workspace) -> None:
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query("#empty-create"))
        await pilot.press("n")
        await until(pilot, lambda: ready(app, CreateScreen))
        await until(pilot, lambda: app.focused is app.screen.query_one("#type"))
        app.screen.query_one("#type", Select).value = "webhook"
        await until(pilot, lambda: app.screen.query("#f-url"))
        await pilot.pause()
        order = []
        for _ in range(6):
            order.append(app.focused.id if app.focused else None)
            await pilot.press("tab")
        assert order == ["type", "f-name", "f-url", "f-headers", "f-deliver", "cancel"]
