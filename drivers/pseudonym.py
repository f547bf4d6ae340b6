"""Card numbers become keyed pseudonyms inside the driver, before anything else sees them."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymiser:
    """HMAC-SHA256 with the site's secret key, truncated: stable per card, not reversible."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymisation key needs at least 16 bytes")
        self._key = key

    def __call__(self, card: str) -> str:
        digest = hmac.new(self._key, card.strip().encode(), hashlib.sha256).hexdigest()
        return f"p:{digest[:20]}"
