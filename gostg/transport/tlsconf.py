"""TLS contexts from GOST's ``tls`` objects (listener, dialer, or the global one).

Server side (GOST's rules): ``certFile``/``keyFile`` when given; else ``cert.pem``/``key.pem`` in
the working directory; else a self-signed certificate generated once and kept under ``~/.gost/``.
A ``caFile`` on the server requires and verifies client certificates.
Client side: ``secure: false`` (the default) skips verification; ``serverName`` sets SNI;
``caFile`` verifies the server; ``certFile``/``keyFile`` present a client certificate.
"""
import datetime
import os

from gevent import ssl

from ..errors import ConfigError

AUTO_DIR = os.path.expanduser("~/.gost")
AUTO_CERT, AUTO_KEY = "gostg-cert.pem", "gostg-key.pem"


def _generate(cert_path, key_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gost.run"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GOST")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("gost.run"), x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    os.makedirs(os.path.dirname(cert_path), mode=0o700, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def default_cert():
    """→ (cert, key) paths following GOST's order, generating the self-signed pair if needed."""
    if os.path.isfile("cert.pem") and os.path.isfile("key.pem"):
        return "cert.pem", "key.pem"
    cert, key = os.path.join(AUTO_DIR, AUTO_CERT), os.path.join(AUTO_DIR, AUTO_KEY)
    if not (os.path.isfile(cert) and os.path.isfile(key)):
        _generate(cert, key)
    return cert, key


def server_context(tls, path=""):
    tls = tls or {}
    cert, key = tls.get("certFile"), tls.get("keyFile")
    if not cert:
        cert, key = default_cert()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key or None)
        if tls.get("caFile"):
            ctx.load_verify_locations(tls["caFile"])
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{path}.tls" if path else "tls", f"cannot load certificates: {exc}") from None
    return ctx


def client_context(tls, path=""):
    tls = tls or {}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if tls.get("secure") or tls.get("caFile"):
            if tls.get("caFile"):
                ctx.load_verify_locations(tls["caFile"])
            else:
                ctx.load_default_certs()
            # GOST: `secure` checks the name too; a `caFile` alone checks only the chain
            ctx.check_hostname = bool(tls.get("secure")) and bool(tls.get("serverName"))
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if tls.get("certFile"):
            ctx.load_cert_chain(tls["certFile"], tls.get("keyFile") or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{path}.tls" if path else "tls", f"cannot load certificates: {exc}") from None
    return ctx
