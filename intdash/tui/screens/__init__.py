"""The dashboard's screens and modal screens."""
