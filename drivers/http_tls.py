"""The TLS context of the HTTP push port: its certificate, and the devices' CA if any."""

from __future__ import annotations

import ssl

from gateway.core.config import HttpTlsConfig


class PushTlsError(RuntimeError):
    """The push port's certificate, key or CA could not be loaded."""


def server_tls(config: HttpTlsConfig) -> ssl.SSLContext:
    """The push port's context (reads files: call it off the event loop). With `ca_file`,
    a device must present a certificate that CA signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
    except (ssl.SSLError, OSError) as exc:
        raise PushTlsError(f"http.tls: cannot load the certificate {config.cert_file} with "
                           f"the key {config.key_file}: {exc}") from exc
    if config.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(config.ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise PushTlsError(f"http.tls.ca_file: cannot load {config.ca_file}: {exc}"
                               ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context
