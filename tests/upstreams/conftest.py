"""Certificates shared by the upstream tests (made once: openssl takes a while)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pki import issue, make_ca


@pytest.fixture(scope="session")
def platform_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA of the platforms, and a certificate for localhost that it signed."""
    directory = tmp_path_factory.mktemp("platform-ca")
    ca, _ = make_ca(directory, "platform test CA")
    cert, key = issue(directory, "platform", "localhost", san="DNS:localhost,IP:127.0.0.1")
    return {"ca": ca, "cert": cert, "key": key}
