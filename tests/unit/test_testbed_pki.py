import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from thrifty.testbed.pki import generate_pki


def test_apiserver_certificate_is_signed_by_the_ca_and_names_every_address(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path, apiserver_ips=["10.245.0.1"], service_ip="10.96.0.1")
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.apiserver_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "10.96.0.1", "10.245.0.1"}
    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.245.0.1") in names.get_values_for_type(x509.IPAddress)


def test_admin_certificate_is_in_system_masters(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path, apiserver_ips=["10.245.0.1"], service_ip="10.96.0.1")
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    organizations = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in organizations] == ["system:masters"]
    assert oct(pki.admin_key.stat().st_mode & 0o777) == "0o600"
