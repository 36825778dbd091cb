"""A canary token per tenant, written into its system prompt: if an answer carries it,
the model is repeating its instructions, and the output filter replaces that sentence.

Random per process (the prompt and the filter of a turn run in the same process), so
no tenant can learn another's, and nothing needs storing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_KEY = secrets.token_bytes(32)


def canary_for(tenant_id: str) -> str:
    return "sbc-" + hmac.new(_KEY, tenant_id.encode(), hashlib.sha256).hexdigest()[:20]
