"""Certificates and keys for one testbed run, generated fresh each time it comes up.

The layout follows what kubeadm and kwokctl produce for a single-node control plane: one CA
signs the apiserver's serving certificate and an admin client certificate (group
``system:masters``) that every other component, Prometheus and the tests use; a separate RSA key
pair signs and verifies service-account tokens.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files one testbed run uses."""

    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public_key: Path


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _issue(
    *,
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    is_ca: bool = False,
    usage: list[x509.ObjectIdentifier] | None = None,
    dns_names: list[str] | None = None,
    ips: list[str] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if dns_names or ips:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names or []]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips or []]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def generate_pki(directory: Path, *, apiserver_ips: list[str], service_ip: str) -> Pki:
    """Write a CA, the apiserver serving pair, an admin client pair and a service-account pair."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        apiserver_cert=directory / "apiserver.crt",
        apiserver_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        service_account_key=directory / "sa.key",
        service_account_public_key=directory / "sa.pub",
    )
    ca_key = _new_key()
    ca_name = _name("thrifty-testbed-ca")
    ca_cert = _issue(subject=ca_name, key=ca_key, issuer=ca_name, issuer_key=ca_key, is_ca=True)
    _write_key(ca_key, pki.ca_key)
    _write_cert(ca_cert, pki.ca_cert)

    server_key = _new_key()
    server_cert = _issue(
        subject=_name("kube-apiserver"),
        key=server_key,
        issuer=ca_name,
        issuer_key=ca_key,
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        dns_names=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        ips=["127.0.0.1", service_ip, *apiserver_ips],
    )
    _write_key(server_key, pki.apiserver_key)
    _write_cert(server_cert, pki.apiserver_cert)

    admin_key = _new_key()
    admin_cert = _issue(
        subject=_name("thrifty-testbed-admin", "system:masters"),
        key=admin_key,
        issuer=ca_name,
        issuer_key=ca_key,
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write_key(admin_key, pki.admin_key)
    _write_cert(admin_cert, pki.admin_cert)

    sa_key = _new_key()
    _write_key(sa_key, pki.service_account_key)
    pki.service_account_public_key.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
