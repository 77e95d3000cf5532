"""Test certificates made with the ``openssl`` command: a CA, a broker and a client."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _key_and_csr(name: str, cn: str, cwd: Path) -> None:
    _run("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)


def _sign(name: str, ca: str, cwd: Path, ext: str) -> None:
    (cwd / f"{name}.ext").write_text(ext)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
         cwd=cwd)  # fmt: skip


def make_certs(directory: Path) -> dict[str, Path]:
    """ca.pem, server.pem/key (127.0.0.1, localhost), client.pem/key, and other-ca.pem."""
    if shutil.which("openssl") is None:
        import pytest

        pytest.skip("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _run("req", "-x509", *EC, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
             "-subj", f"/CN=tidings test {ca}", cwd=directory)  # fmt: skip
    _key_and_csr("server", "localhost", directory)
    _sign("server", "ca", directory, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _key_and_csr("client", "billing-service", directory)
    _sign("client", "ca", directory, "extendedKeyUsage=clientAuth\n")
    _key_and_csr("stranger", "stranger", directory)
    _sign("stranger", "other-ca", directory, "extendedKeyUsage=clientAuth\n")
    return {p.stem if p.suffix == ".pem" else p.name: p for p in directory.iterdir()}
