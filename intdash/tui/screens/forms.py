"""Create Integration and Configure: one form, built from the type's registry entry, validated
as the operator types; nothing is saved while anything is invalid."""

from __future__ import annotations

import asyncio
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from intdash.core.catalog import TYPES, FieldKind, FieldSpec, IntegrationType, TypeSpec, type_spec
from intdash.core.clock import Clock
from intdash.core.errors import FieldErrors
from intdash.core.services.integrations import CreatedIntegration, IntegrationView
from intdash.core.services.integrations.validation import parse_common
from intdash.tui.screens.base import BaseModal
from intdash.tui.screens.modals import described

KEPT = "•••••••• (kept unless retyped)"


def check_common(key: str, value: str, clock: Clock) -> str | None:
    """What the service would say of a common field (name, sync from, sync enabled), judged
    by the workspace's clock; None when it would take the value."""
    try:
        parse_common(key, value, clock)
    except ValueError as exc:
        return str(exc)
    return None


def _check(field: FieldSpec, value: str, secret_set: bool) -> str | None:
    if field.secret and not value and secret_set:
        return None  # kept as it is
    try:
        field.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


class SettingsForm(BaseModal[str]):
    """The fields of one type; subclasses say what Save does."""

    title_text = ""
    save_label = "Save"
    name_required = True

    def __init__(self, spec: TypeSpec, view: IntegrationView | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.view = view

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            yield Label(self.title_text, classes="dialog-title", id="form-title")
            yield from self.compose_top()
            # not a stop of its own on tab: each field scrolls into view as it takes the focus
            with VerticalScroll(id="fields", can_focus=False):
                yield from self.field_widgets()
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.save_label, id="save", variant="primary")

    def compose_top(self) -> ComposeResult:
        yield from ()

    def field_widgets(self) -> list[Widget]:
        widgets: list[Widget] = [
            Label("Name"),
            Input(
                self.view.name if self.view else "", placeholder="A name for people", id="f-name"
            ),
            Static("", id="e-name", classes="field-error"),
        ]
        for field in self.spec.fields:
            widgets.append(Label(field.label + (" *" if field.required else "")))
            current = self.view.settings.get(field.name) if self.view else field.default
            if isinstance(current, list):
                current = ", ".join(current)
            if field.kind is FieldKind.CHOICE:
                widgets.append(
                    Select(
                        [(choice, choice) for choice in field.choices],
                        value=current if current in field.choices else Select.BLANK,
                        id=f"f-{field.name}",
                        allow_blank=not field.required,
                    )
                )
            elif field.secret:
                is_set = bool(self.view and field.name in self.view.secrets_set)
                widgets.append(
                    Input(
                        "",
                        password=True,
                        placeholder=KEPT if is_set else field.help,
                        id=f"f-{field.name}",
                    )
                )
            else:
                widgets.append(
                    Input(str(current or ""), placeholder=field.help, id=f"f-{field.name}")
                )
            widgets.append(Static(field.help, classes="field-help"))
            widgets.append(Static("", id=f"e-{field.name}", classes="field-error"))
        return widgets

    def on_mount(self) -> None:
        self.validate()
        self.first_field().focus()

    def first_field(self) -> Widget:
        """Where the focus starts: the first field of the form."""
        return self.query_one("#f-name", Input)

    # -- values and checks -------------------------------------------------------------------

    def raw(self, name: str) -> str:
        widget = self.query_one(f"#f-{name}")
        if isinstance(widget, Select):
            return "" if widget.value is Select.BLANK else str(widget.value)
        assert isinstance(widget, Input)
        return widget.value

    def values(self) -> dict[str, str]:
        """What is sent: every field, but secrets only when (re)typed."""
        found = {"name": self.raw("name").strip()}
        for field in self.spec.fields:
            value = self.raw(field.name)
            if field.secret and not value:
                continue
            found[field.name] = value
        return found

    def validate(self) -> bool:
        name = self.raw("name")
        checked = self.name_required or name.strip()
        problems = {"name": check_common("name", name, self.ws.clock) if checked else None}
        for field in self.spec.fields:
            is_set = bool(self.view and field.name in self.view.secrets_set)
            problems[field.name] = _check(field, self.raw(field.name), is_set)
        for name, problem in problems.items():
            self.query_one(f"#e-{name}", Static).update(f"{name}: {problem}" if problem else "")
        ok = not any(problems.values())
        self.query_one("#save", Button).disabled = not ok
        return ok

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self, event: Any) -> None:
        if getattr(event, "control", None) is not None and event.control.id != "type":
            self.validate()

    def show_errors(self, errors: dict[str, str]) -> None:
        """The service's refusal: beside each field it names, in a toast too (a field may be
        below the fold), and the first such field takes the focus."""
        first: Widget | None = None
        for name, problem in errors.items():
            for label in self.query(f"#e-{name}").results(Static):
                label.update(f"{name}: {problem}")
            for widget in self.query(f"#f-{name}"):
                if first is None:
                    first = widget
        message = "; ".join(f"{name}: {problem}" for name, problem in errors.items())
        self.app.notify(message, title="Not saved", severity="error", timeout=8)
        if first is not None:
            first.focus()  # it scrolls into view

    # -- saving ------------------------------------------------------------------------------

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    async def _save(self, _event: Any = None) -> None:
        if not self.validate():
            return
        try:
            uid = await self.save(self.values())
        except FieldErrors as exc:
            self.show_errors(exc.errors)
            return
        except Exception as exc:
            self.intdash.report(exc, "Saving")
            return
        self.dismiss(uid)

    async def save(self, values: dict[str, str]) -> str:
        raise NotImplementedError

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class ConfigureScreen(SettingsForm):
    save_label = "Save"

    def __init__(self, view: IntegrationView) -> None:
        super().__init__(view.spec, view)
        self.title_text = f"Configure {described(view.spec, view.uid)}"
        # the settings saved that its platform's consent reads: it wants connecting again
        self.consent_changed: tuple[str, ...] = ()

    async def save(self, values: dict[str, str]) -> str:
        assert self.view is not None
        before = self.view.settings
        saved = await asyncio.to_thread(self.ws.integrations.configure, self.view.uid, values)
        self.consent_changed = tuple(
            name
            for name in self.spec.consent_fields
            if _shown(saved.settings.get(name)) != _shown(before.get(name))
        )
        self.app.notify(f"Saved {saved.uid}")
        return saved.uid


def _shown(value: Any) -> str:
    """A stored setting as the form compares it (absent and empty alike)."""
    return "" if value is None else str(value)


class CreateScreen(SettingsForm):
    title_text = "Create Integration"
    save_label = "Create"
    name_required = False  # a new integration may take its default name

    def __init__(self) -> None:
        super().__init__(TYPES[IntegrationType.XERO])
        self.created: CreatedIntegration | None = None

    def first_field(self) -> Widget:
        return self.query_one("#type", Select)  # the type first: the fields follow from it

    def compose_top(self) -> ComposeResult:
        yield Label("Type")
        yield Select(
            [(f"{spec.icon} {spec.label}", kind.value) for kind, spec in TYPES.items()],
            value=self.spec.type.value,
            allow_blank=False,
            id="type",
        )

    @on(Select.Changed, "#type")
    async def _type_chosen(self, event: Select.Changed) -> None:
        if event.value is Select.BLANK or event.value == self.spec.type.value:
            return
        name = self.raw("name")
        self.spec = type_spec(str(event.value))
        fields = self.query_one("#fields", VerticalScroll)
        await fields.remove_children()
        await fields.mount_all(self.field_widgets())
        self.query_one("#f-name", Input).value = name
        self.validate()

    def validate(self) -> bool:
        self.query_one("#f-name", Input).placeholder = f"default: {self.spec.label} and its UID"
        return super().validate()

    def values(self) -> dict[str, str]:
        found = super().values()
        if not found["name"]:
            del found["name"]
        return found

    async def save(self, values: dict[str, str]) -> str:
        created = await asyncio.to_thread(self.ws.integrations.create, self.spec.type, None, values)
        self.created = created  # the caller shows any generated secret, once
        view = created.integration
        self.app.notify(f"Created {described(view.spec, view.uid)}")
        return view.uid
