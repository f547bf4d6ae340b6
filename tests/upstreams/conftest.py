"""Certificates shared by the upstream tests (made once: openssl takes a while)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pki import localhost_pki


@pytest.fixture(scope="session")
def platform_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA of the platforms, and a certificate for localhost that it signed."""
    return localhost_pki(tmp_path_factory.mktemp("platform-ca"), "platform test CA")
