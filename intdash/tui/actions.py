"""What the dashboard's actions do to the workspace: those that change something are greyed and
refused in ``--read-only``."""

from __future__ import annotations

CHANGING_ACTIONS = frozenset(
    {
        "create",
        "configure",
        "remove",
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
