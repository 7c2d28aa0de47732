"""A private certificate authority for the services profile's SeaweedFS gRPC listeners.

SeaweedFS's components talk over gRPC (the HTTP ports + 10000). With mutual TLS on, each
listener accepts only a client holding a certificate this authority signed, and the
authority's key is thrown away once the certificate is made: nothing else on the machine
can get one. The key files are mode 600 from their first byte.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

#: The common name of the one certificate every SeaweedFS component presents and accepts.
COMMON_NAME = "fruitops-seaweedfs"
#: SeaweedFS's gRPC roles (``[grpc.<role>]`` in its ``security.toml``).
GRPC_ROLES = ("master", "volume", "filer", "s3", "admin", "worker", "mq", "msg_broker", "msg_agent")


def ensure_certificates(folder: Path, host: str, write_private) -> tuple[Path, Path, Path]:
    """``(ca.crt, weed.crt, weed.key)`` in ``folder``, made on the first call."""
    ca_path, cert_path, key_path = folder / "ca.crt", folder / "weed.crt", folder / "weed.key"
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return ca_path, cert_path, key_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)

    def builder(subject: str, issuer: str, public_key):
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder("fruitops-services-ca", "fruitops-services-ca", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if host not in ("127.0.0.1", "localhost"):
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    cert = (
        builder(COMMON_NAME, "fruitops-services-ca", key.public_key())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    write_private(
        key_path,
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )
    cert_path.write_bytes(cert.public_bytes(pem))
    ca_path.write_bytes(ca.public_bytes(pem))  # written last: its presence means "all made"
    return ca_path, cert_path, key_path


def grpc_sections(ca: Path, cert: Path, key: Path) -> str:
    """The ``security.toml`` sections that turn on mutual TLS for every gRPC role."""
    text = f'[grpc]\nca = "{ca}"\n'
    for role in GRPC_ROLES:
        text += (
            f'[grpc.{role}]\ncert = "{cert}"\nkey = "{key}"\nclient_cert = "{cert}"\n'
            f'client_key = "{key}"\nallowed_commonNames = "{COMMON_NAME}"\n'
        )
    return text + f'[grpc.client]\ncert = "{cert}"\nkey = "{key}"\n'
