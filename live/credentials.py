"""Venue API credentials, held in memory only and never printed.

For the emulator a fresh random key pair is made per session; for a real venue the key and secret are read
from the environment variables the environment file names. Neither is ever written to disk by Keel.
"""

import os
import secrets
from dataclasses import dataclass
from dataclasses import field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keel.live.environment import CredentialsConfig


class CredentialsError(ValueError):
    """The credentials an environment asks for are not available."""


@dataclass(frozen=True)
class ApiCredentials:
    """
    An API key and its secret (HMAC secret or Ed25519 private key PEM).

    The secret is left out of ``repr`` so a stray log line or traceback cannot show it.

    Parameters
    ----------
    api_key : str
        The API key (sent to the venue in headers; not secret on its own).
    api_secret : str
        The signing secret.
    """

    api_key: str
    api_secret: str = field(repr=False)


def generate_credentials(key_type: str) -> ApiCredentials:
    """Return a random key pair: ``hmac`` gives a 64-hex secret, ``ed25519`` a PKCS#8 private key PEM."""
    api_key = secrets.token_hex(32)
    if key_type == "ed25519":
        pem = Ed25519PrivateKey.generate().private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )
        return ApiCredentials(api_key=api_key, api_secret=pem.decode())
    return ApiCredentials(api_key=api_key, api_secret=secrets.token_hex(32))


def resolve_credentials(config: CredentialsConfig) -> ApiCredentials:
    """
    Return the credentials described by ``config``.

    Raises
    ------
    CredentialsError
        If an environment variable named by the config is unset or empty (the message names the variable,
        never its value).
    """
    if config.source == "generated":
        return generate_credentials(config.key_type)
    values = {}
    for name in (config.api_key_env, config.api_secret_env):
        value = os.environ.get(name, "")
        if not value:
            raise CredentialsError(f"environment variable {name} is not set (credentials for the venue)")
        values[name] = value
    return ApiCredentials(api_key=values[config.api_key_env], api_secret=values[config.api_secret_env])
