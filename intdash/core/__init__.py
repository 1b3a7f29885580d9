"""The core: models, database, vault and the services every face calls. Never imports Textual."""
