"""Notification intents: what the engine asks the gateway to deliver, journalled first.

The record types live in gateway.model with every other journalled record.
"""

from gateway.model import Notify, NotifyReason

__all__ = ["Notify", "NotifyReason"]
