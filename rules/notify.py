"""Notification intents: what the engine asks the gateway to deliver, journalled first.

The record types live in gateway.core.model with every other journalled record.
"""

from gateway.core.model import Notify, NotifyReason

__all__ = ["Notify", "NotifyReason"]
