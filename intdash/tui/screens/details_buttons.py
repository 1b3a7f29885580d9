"""The details screen's action bar: a button for each thing that can be done to the
integration, labelled with its key where there is room, and shown only where it applies; and
which of Connect or Reconnect its ``o`` offers."""

from __future__ import annotations

from textual.containers import Horizontal
from textual.widgets import Button

from intdash.core.catalog import Action, Probe
from intdash.core.services.integrations import IntegrationView

# button id: (label, key, the screen's action it runs)
BUTTONS = {
    "b-connect": ("Connect", "o", "connect"),
    "b-test": ("Test", "t", "test_connection"),
    "b-sync": ("Sync now", "s", "sync_now"),
    "b-from": ("Sync from…", "f", "reset_sync_from"),
    "b-toggle": ("Disable", "e", "toggle_sync"),
    "b-deliveries": ("Deliveries", "d", "deliveries"),
    "b-remove": ("Remove", "x", "remove"),
    "b-close": ("Close", "esc", "back"),
}
COMPACT_BELOW = 100  # narrower, the buttons drop their keys to fit


def authorise_action(view: IntegrationView | None) -> str | None:
    """What ``o`` does in details: "connect" while the integration is not authorised (never
    connected, or its tokens refused), "reconnect" for one of a platform that is, or nothing."""
    if view is None or not view.actions:  # removed
        return None
    if Action.CONNECT in view.actions:
        return "connect"
    return "reconnect" if view.spec.oauth else None


class ActionBar(Horizontal):
    """The buttons; each press runs the screen's action of the same key (see ``BUTTONS``)."""

    def __init__(self, *, id: str) -> None:
        self.compact = False
        self.enable = False  # the toggle offers Enable (sync is off) rather than Disable
        buttons = [
            Button(self._label(name), id=name, variant="error" if name == "b-remove" else "default")
            for name in BUTTONS
        ]
        buttons[0].display = False  # Connect: only once the integration is known to need it
        super().__init__(*buttons, id=id)

    @staticmethod
    def action(button: str) -> str:
        """The screen's action a button runs."""
        return BUTTONS[button][2]

    def _label(self, name: str) -> str:
        """A button's label; its key too where there is room (the footer always has them)."""
        label, key, _ = BUTTONS[name]
        if name == "b-toggle" and self.enable:
            label = "Enable"
        return label if self.compact else f"{label} ({key})"

    def relabel(self, *, compact: bool | None = None, enable: bool | None = None) -> None:
        """Label the buttons again for a screen ``compact`` or not, and a sync ``enable``d or not
        (None: as before); only the labels that changed are set."""
        if compact is not None:
            self.compact = compact
        if enable is not None:
            self.enable = enable
        for name in BUTTONS:
            button = self.query_one(f"#{name}", Button)
            label = self._label(name)
            if str(button.label) != label:
                button.label = label

    def offer(self, view: IntegrationView) -> None:
        """Show only the buttons that the integration has a use for: until it is authorised,
        Connect in place of testing and syncing (which would only fail)."""
        spec = view.spec
        connect = Action.CONNECT in view.actions
        tested, oauth = spec.probe is not Probe.NONE and not connect, spec.oauth and not connect
        for button, shown in (("#b-connect", connect), ("#b-test", tested), ("#b-sync", oauth),
                              ("#b-from", oauth), ("#b-deliveries", spec.delivers)):  # fmt: skip
            widget = self.query_one(button, Button)
            if widget.display != shown:
                widget.display = shown
