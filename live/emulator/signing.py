"""Checking Binance request signatures: HMAC-SHA256 (hex) or Ed25519 (base64), as nautilus signs them."""

import base64
import binascii
import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_ED25519_OID = b"\x06\x03\x2b\x65\x70"


class SignatureChecker:
    """
    Verifies signatures made with the account's secret.

    An Ed25519 secret (base64 PKCS#8, with or without PEM armour, recognised by its OID like nautilus
    does) verifies base64 Ed25519 signatures with its public key; any other secret is an HMAC key and
    verifies lowercase-hex HMAC-SHA256.

    Parameters
    ----------
    api_secret : str
        The account's secret (kept only inside this object).
    """

    def __init__(self, api_secret: str) -> None:
        self._public_key: Ed25519PublicKey | None = _ed25519_public_key(api_secret)
        self._hmac_key = api_secret.encode()

    @property
    def is_ed25519(self) -> bool:
        """Whether the account's key is Ed25519."""
        return self._public_key is not None

    def verify(self, payload: str, signature: str) -> bool:
        """Return whether ``signature`` signs ``payload`` with the account's key."""
        if self._public_key is None:
            expected = hmac.new(self._hmac_key, payload.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature)
        try:
            self._public_key.verify(base64.b64decode(signature, validate=True), payload.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def _ed25519_public_key(api_secret: str) -> Ed25519PublicKey | None:
    body = "".join(line for line in api_secret.splitlines() if not line.startswith("-----"))
    try:
        key_bytes = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    if _ED25519_OID not in key_bytes:
        return None
    # The last 32 bytes of a PKCS#8 Ed25519 key are its seed (what nautilus signs with).
    return Ed25519PrivateKey.from_private_bytes(key_bytes[-32:]).public_key()
