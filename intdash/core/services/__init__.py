"""The services: the one way every face (CLI, dashboard, HTTP) reads and changes the workspace."""
