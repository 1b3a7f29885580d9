"""The Textual dashboard. Everything it does goes through the services in ``intdash.core``."""
