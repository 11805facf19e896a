"""An HTTPS reverse proxy in front of a real MLflow server that demands credentials, like a hosted
tracking server behind an auth gateway. It records the credentials it saw and what it refused."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key; the certificate is its own CA bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class AuthProxy:
    """``bearer``: accepts tokens listed in ``token_registry`` ("<token> <expires_at>" lines) until they
    expire. ``basic``: accepts one user and password."""

    def __init__(
        self,
        upstream: str,
        directory: Path,
        mode: str,
        token_registry: Path | None = None,
        user: str = "",
        password: str = "",
    ):
        self.upstream = urlsplit(upstream)
        self.mode, self.registry, self.user, self.password = mode, token_registry, user, password
        self.seen: list[str] = []
        self.refused: list[str] = []
        self.cert, key = self_signed_certificate(directory)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                credential = self.headers.get("Authorization", "")
                if not proxy.allowed(credential):
                    proxy.refused.append(f"{self.command} {self.path} {credential[:20]}")
                    body = json.dumps({"error_code": "UNAUTHENTICATED", "message": "bad credentials"}).encode()
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                proxy.seen.append(credential)
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
                conn.request(self.command, self.path, body=data, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                self.send_response(response.status)
                self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def allowed(self, credential: str) -> bool:
        if self.mode == "basic":
            expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return credential == f"Basic {expected}"
        if not credential.startswith("Bearer ") or self.registry is None or not self.registry.exists():
            return False
        token = credential.removeprefix("Bearer ")
        for line in self.registry.read_text().splitlines():
            value, expires_at = line.split()
            if value == token and time.time() < float(expires_at):
                return True
        return False

    def __enter__(self) -> AuthProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
