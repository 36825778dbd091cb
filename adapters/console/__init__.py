"""The operators' console at ``/admin``: server-rendered pages over the engine's console
queries, signed in with a tenant's admin key (or the operator token for every tenant)."""
