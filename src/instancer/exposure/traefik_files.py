"""Files a Traefik in front of instancer needs: its static configuration (entry points, the
HTTP provider polling instancer, the file provider holding the TLS store) and, for tests and
local runs, a self-signed wildcard certificate.

Used by `instancer proxy init` (scripts/run) and by the tests, so both run Traefik the same
way. Production differs only in the certificate: see docs/operations.md.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

POLL_INTERVAL = "1s"  # routes appear and vanish within about this long


@dataclass(frozen=True)
class TraefikLayout:
    """Where Traefik listens and where it asks instancer for routes."""

    routes_url: str
    routes_token: str
    https_address: str = ":8443"
    tcp_address: str = ":1337"
    api_address: str = "127.0.0.1:8081"
    http_entrypoint: str = "websecure"
    tcp_entrypoint: str = "tcptls"
    log_level: str = "ERROR"


def self_signed_wildcard(domain: str, directory: Path, *, days: int = 365) -> tuple[Path, Path]:
    """A key and a certificate for `*.domain` and `domain`, its own CA (so a client can trust
    it with `--cacert`). Written once; an existing pair is kept."""
    cert_path, key_path = directory / "wildcard.crt", directory / "wildcard.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{domain}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"*.{domain}"), x509.DNSName(domain)]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def write_config(directory: Path, layout: TraefikLayout, cert: Path, key: Path) -> Path:
    """Write `traefik.yml` (static) and `tls.yml` (the default certificate); return the former.

    Both are written as JSON, which is YAML: the file provider accepts only `.yml`/`.toml`."""
    directory.mkdir(parents=True, exist_ok=True)
    tls = directory / "tls.yml"
    tls.write_text(json.dumps(_tls_config(cert, key), indent=2))
    static = directory / "traefik.yml"
    static.touch(mode=0o600)  # it holds the routes token
    static.write_text(json.dumps(_static_config(layout, tls), indent=2))
    return static


def _tls_config(cert: Path, key: Path) -> dict[str, object]:
    default = {"certFile": str(cert.resolve()), "keyFile": str(key.resolve())}
    return {"tls": {"stores": {"default": {"defaultCertificate": default}}}}


def _static_config(layout: TraefikLayout, tls: Path) -> dict[str, object]:
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": layout.log_level},
        "entryPoints": {
            layout.http_entrypoint: {"address": layout.https_address},
            layout.tcp_entrypoint: {"address": layout.tcp_address},
            "traefik": {"address": layout.api_address},
        },
        # The API lists every route (slugs are secrets): keep its entry point on loopback.
        "api": {"insecure": True, "dashboard": False},
        "ping": {"entryPoint": "traefik"},
        "providers": {
            # Traefik applies a provider's changes at most this often (default 2 s).
            "providersThrottleDuration": "500ms",
            "http": {
                "endpoint": layout.routes_url,
                "pollInterval": POLL_INTERVAL,
                "pollTimeout": "2s",
                "headers": {"Authorization": f"Bearer {layout.routes_token}"},
            },
            "file": {"filename": str(tls.resolve())},
        },
    }
