"""A self-signed certificate for 127.0.0.1, made on the spot with `cryptography` (installed
with daphne; no download, no openssl command): what nginx (`make step9`) and the tests need to
serve a stage over https:// and wss://. A browser warns about it once: it is signed by nobody
it knows, which is what "self-signed" means."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TLSFiles:
    key: Path
    certificate: Path


def self_signed_pem(days: int = 1) -> tuple[str, str]:
    """A new private key and its self-signed certificate for 127.0.0.1 and localhost, as
    PEM text: (key, certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    return key_pem.decode("ascii"), certificate_pem.decode("ascii")


def self_signed(folder: Path, days: int = 1) -> TLSFiles:
    """Write key.pem and cert.pem for 127.0.0.1 and localhost into `folder`."""
    key, certificate = self_signed_pem(days)
    folder.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(folder / "key.pem", folder / "cert.pem")
    files.key.write_text(key, encoding="ascii")
    files.certificate.write_text(certificate, encoding="ascii")
    for path in (files.key, files.certificate):
        path.chmod(0o644)  # the server runs as the sandbox's user
    return files
