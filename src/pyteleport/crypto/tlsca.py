"""The cluster's TLS CA (ECDSA P-256): HTTPS server certificates and client identities.

A client identity is a certificate whose subject CN is the username and whose O entries are its
roles (as Teleport encodes them); a built-in system role goes in OU.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyteleport.errors import AccessDeniedError, BadParameterError

CA_VALIDITY = dt.timedelta(days=3650)
# Teleport's ActiveRequestsASN1ExtensionOID: the access requests a certificate was issued with,
# one subject attribute each.
ACTIVE_REQUESTS_OID = x509.ObjectIdentifier("1.3.9999.2.8")


@dataclass(frozen=True, slots=True)
class TLSKeyPair:
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class TLSIdentity:
    """Who a verified client certificate says the caller is."""

    username: str
    roles: tuple[str, ...]
    builtin: str
    expires: dt.datetime
    active_requests: tuple[str, ...] = ()


def generate_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_ca(cluster_name: str, now: dt.datetime) -> TLSKeyPair:
    key = generate_tls_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
            x509.NameAttribute(NameOID.COMMON_NAME, cluster_name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return TLSKeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _load_ca(ca: TLSKeyPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadParameterError("the TLS CA key is not an ECDSA key")
    return cert, key


def _issue(
    ca: TLSKeyPair,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey,
    not_after: dt.datetime,
    now: dt.datetime,
    usage: x509.ObjectIdentifier,
    sans: Sequence[str] = (),
) -> bytes:
    ca_cert, ca_key = _load_ca(ca)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(min(not_after, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        names: list[x509.GeneralName] = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def issue_server_cert(
    ca: TLSKeyPair, hostnames: Sequence[str], now: dt.datetime, ttl: dt.timedelta
) -> TLSKeyPair:
    key = generate_tls_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    cert = _issue(
        ca, subject, key.public_key(), now + ttl, now, ExtendedKeyUsageOID.SERVER_AUTH, hostnames
    )
    return TLSKeyPair(cert, _key_pem(key))


def issue_client_cert(
    ca: TLSKeyPair,
    public_key_pem: bytes,
    username: str,
    roles: Sequence[str],
    builtin: str,
    not_after: dt.datetime,
    now: dt.datetime,
    active_requests: Sequence[str] = (),
) -> bytes:
    public_key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(
        public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    ):
        raise BadParameterError("the TLS public key must be ECDSA, Ed25519 or RSA")
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, username)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, role) for role in roles]
    if builtin:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, builtin))
    attrs += [x509.NameAttribute(ACTIVE_REQUESTS_OID, name) for name in active_requests]
    return _issue(ca, x509.Name(attrs), public_key, not_after, now, ExtendedKeyUsageOID.CLIENT_AUTH)


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return _key_pem(key)


def identity_from_cert(cert_der: bytes, ca_cert_pem: bytes, now: dt.datetime) -> TLSIdentity:
    """The identity in a client certificate that the TLS layer already verified against the CA.

    Verification happens in the TLS handshake; the issuer and validity are checked again here so a
    certificate from another cluster's CA is refused with a clear message.
    """
    cert = x509.load_der_x509_certificate(cert_der)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, Exception) as exc:
        raise AccessDeniedError(
            "client certificate is not signed by this cluster's CA: run tsh login again"
        ) from exc
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise AccessDeniedError("client certificate has expired: run tsh login again")
    subject = cert.subject
    cn = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn:
        raise AccessDeniedError("client certificate has no user name")
    roles = tuple(str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    ou = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return TLSIdentity(
        username=str(cn[0].value),
        roles=roles,
        builtin=str(ou[0].value) if ou else "",
        expires=cert.not_valid_after_utc,
        active_requests=tuple(
            str(a.value) for a in subject.get_attributes_for_oid(ACTIVE_REQUESTS_OID)
        ),
    )


def ca_pin(ca_cert_pem: bytes) -> str:
    """``sha256:<hex>`` over the CA certificate's SubjectPublicKeyInfo (DER), as tctl status shows."""
    cert = x509.load_pem_x509_certificate(ca_cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def cert_not_after(cert_pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def load_cert_and_key(cert_pem: bytes, key_pem: bytes) -> None:
    """Refuse a mismatched or unreadable pair early, with one line."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise BadParameterError(f"cannot read certificate or key: {exc}") from exc
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise BadParameterError("certificate and key do not match")
