"""The TLS context for the broker connection."""

from __future__ import annotations

import ssl

from gateway.core.config import BrokerConfig


def client_tls(config: BrokerConfig) -> ssl.SSLContext | None:
    """The TLS context for a broker: its certificate and host name are always verified."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(
        cafile=str(config.tls.ca_file) if config.tls.ca_file else None)
    if config.tls.cert_file:
        context.load_cert_chain(str(config.tls.cert_file),
                                str(config.tls.key_file) if config.tls.key_file else None)
    return context
