"""What the main screen's keys open for the selected integration, or for all: the create,
configure and remove forms, connecting, and the API keys, details and invoices screens."""

from __future__ import annotations

from textual import work
from textual.binding import Binding

from intdash.core.catalog import Action, type_spec
from intdash.core.services.integrations import IntegrationView
from intdash.tui.screens.base import BaseScreen

# actions offered only where the selected integration has them (IntegrationView.actions)
TYPE_ACTIONS = {
    "connect": Action.CONNECT,
    "reconnect": Action.RECONNECT,
    "configure": Action.CONFIGURE,
    "api_keys": Action.API_KEYS,
    "remove": Action.REMOVE,
}


class IntegrationsActions(BaseScreen):
    """The main screen's actions that open another screen (the screen itself is
    ``IntegrationsScreen``, which keeps the reading, the table and the bindings)."""

    def selected(self) -> IntegrationView | None:
        """The integration under the cursor, if any."""
        raise NotImplementedError

    @work(group="create")
    async def action_create(self) -> None:
        from intdash.tui.screens.apikeys import create_key, first_key_prompt
        from intdash.tui.screens.forms import CreateScreen
        from intdash.tui.screens.modals import KeyShownScreen

        form = CreateScreen()
        uid = await self.app.push_screen_wait(form)
        self.reload()
        if not uid or form.created is None:
            return
        for key, secret in form.created.generated_secrets.items():
            title = f"{uid}: its {key.replace('_', ' ')}"
            await self.app.push_screen_wait(KeyShownScreen(title, secret))
        spec = type_spec(form.created.integration.type)
        if spec.oauth:
            self._connect(uid)  # OAuth types go straight on to connecting
        elif spec.needs_api_key:  # it pushes nothing until it has a key: offer its first
            label = await self.app.push_screen_wait(first_key_prompt(uid))
            if label and await create_key(self, uid, label):
                self.reload()

    @work(group="configure")
    async def action_configure(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.forms import ConfigureScreen

        form = ConfigureScreen(view)
        saved = await self.app.push_screen_wait(form)
        self.reload()
        if saved and form.consent_changed:
            await self.offer_connect(view, form.consent_changed)

    async def offer_connect(self, view: IntegrationView, changed: tuple[str, ...]) -> None:
        """Settings that its platform's consent reads were changed: connect again now?"""
        from intdash.tui.screens.modals import ConfirmScreen

        labels = ", ".join(
            field.label.lower() for name in changed if (field := view.spec.field(name))
        )
        confirmed = await self.app.push_screen_wait(
            ConfirmScreen(
                f"Connect {view.uid} now?",
                f"{view.spec.label} reads the {labels} when it is connected: the change takes "
                "effect with a new consent.",
                "Connect",
                danger=False,
            )
        )
        if confirmed:
            self._connect(view.uid)
        else:
            self.notify(f"Not connected now: o in the details of {view.uid} connects it")

    def action_connect(self) -> None:
        view = self.selected()
        if view is not None:
            self._connect(view.uid)

    def action_reconnect(self) -> None:
        view = self.selected()
        if view is not None:
            self._connect(view.uid)

    def _connect(self, uid: str) -> None:
        from intdash.tui.screens.connect import ConnectScreen

        self.app.push_screen(ConnectScreen(uid), self.reload)

    def action_remove(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.modals import RemoveScreen

        self.app.push_screen(RemoveScreen(view), self.reload)

    def action_api_keys(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.apikeys import ApiKeysScreen

        self.app.push_screen(ApiKeysScreen(view.uid))

    def action_details(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.details import DetailsScreen

        self.app.push_screen(DetailsScreen(view.uid))

    def action_invoices(self) -> None:
        from intdash.tui.screens.invoices import InvoicesScreen

        self.app.push_screen(InvoicesScreen(None))

    def action_menu(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.modals import ActionMenu

        offered = [
            (binding.action, binding.description)
            for binding in self.BINDINGS
            if isinstance(binding, Binding)
            and binding.action in (*TYPE_ACTIONS, "details")
            and self.check_action(binding.action, ()) is True
        ]
        self.app.push_screen(ActionMenu(view.uid, offered), self._menu_chosen)

    async def _menu_chosen(self, action: str | None) -> None:
        if action:
            await self.run_action(action)
