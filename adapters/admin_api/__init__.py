"""The admin REST API (``/api/v1``): per-tenant documents and search, with API keys."""
