"""Syncs: the engine that pulls invoices and the scheduler that runs it."""
