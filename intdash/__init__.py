"""intdash: a keyboard-driven terminal dashboard for invoice integrations."""

__version__ = "0.1.0"
