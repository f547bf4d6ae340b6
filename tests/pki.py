"""Certificates for tests, made by `openssl` in a test's directory."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA in `directory`: (ca.crt, ca.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)
    return directory / "ca.crt", directory / "ca.key"


def issue(ca_dir: Path, name: str, common_name: str,
          san: str | None = None) -> tuple[Path, Path]:
    """A certificate signed by the CA of `ca_dir` (made by make_ca): (NAME.crt, NAME.key).
    `san`: the subjectAltName, e.g. "DNS:localhost,IP:127.0.0.1"."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=ca_dir)
    extra: list[str] = []
    if san is not None:
        (ca_dir / f"{name}.cnf").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.cnf"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", *extra, "-out", f"{name}.crt", cwd=ca_dir)
    return ca_dir / f"{name}.crt", ca_dir / f"{name}.key"


def localhost_pki(directory: Path, name: str) -> dict[str, Path]:
    """A CA and a certificate for localhost that it signed: {"ca", "cert", "key"}."""
    ca, _ = make_ca(directory, name)
    cert, key = issue(directory, "server", "localhost", san="DNS:localhost,IP:127.0.0.1")
    return {"ca": ca, "cert": cert, "key": key}
