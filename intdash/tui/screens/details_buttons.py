"""The details screen's action bar: a button for each thing that can be done to the
integration, labelled with its key where there is room, and shown only where it applies."""

from __future__ import annotations

from textual.containers import Horizontal
from textual.widgets import Button

from intdash.core.catalog import Probe, TypeSpec

# button id: (label, key, the screen's action it runs)
BUTTONS = {
    "b-test": ("Test", "t", "test_connection"),
    "b-sync": ("Sync now", "s", "sync_now"),
    "b-from": ("Sync from…", "f", "reset_sync_from"),
    "b-toggle": ("Disable", "e", "toggle_sync"),
    "b-deliveries": ("Deliveries", "d", "deliveries"),
    "b-remove": ("Remove", "x", "remove"),
    "b-close": ("Close", "esc", "back"),
}
COMPACT_BELOW = 100  # narrower, the buttons drop their keys to fit


class ActionBar(Horizontal):
    """The buttons; each press runs the screen's action of the same key (see ``BUTTONS``)."""

    def __init__(self, *, id: str) -> None:
        self.compact = False
        self.enable = False  # the toggle offers Enable (sync is off) rather than Disable
        buttons = [
            Button(self._label(name), id=name, variant="error" if name == "b-remove" else "default")
            for name in BUTTONS
        ]
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

    def offer(self, spec: TypeSpec) -> None:
        """Show only the buttons that the integration's type has a use for."""
        tested, oauth = spec.probe is not Probe.NONE, spec.oauth
        for button, shown in (("#b-test", tested), ("#b-sync", oauth),
                              ("#b-from", oauth), ("#b-deliveries", spec.delivers)):  # fmt: skip
            widget = self.query_one(button, Button)
            if widget.display != shown:
                widget.display = shown
