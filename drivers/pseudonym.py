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

    def __call__(self, card: str) -> str | None:
        """The card's pseudonym; None for an empty or all-zero card number (no card)."""
        # one card, one pseudonym, whether a reader sends it as BCD, binary or padded text
        normal = card.strip().lstrip("0")
        if not normal:
            return None
        digest = hmac.new(self._key, normal.encode(), hashlib.sha256).hexdigest()
        return f"p:{digest[:20]}"
