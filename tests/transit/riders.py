"""Test riders: seeded keys, credentials and codes, as a simulation would make them."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from platform_stub.transit import (
    Credential,
    PlatformKeyring,
    derive_private_key,
    encode_code_text,
    issue_credential,
    public_key_bytes,
    sign_code,
)

NOW_S = 1_700_000_000
DAY_S = 86_400
PLATFORM_SEED = b"cashless-city test platform seed"
RIDER_SEED = b"cashless-city test riders seed.."


@dataclass(frozen=True)
class Rider:
    """A rider as the app holds it: a private key and the credential vouching for it."""

    private_key: Ed25519PrivateKey
    credential: Credential

    def code(self, timestamp_s: int = NOW_S, nonce_index: int = 0) -> str:
        """A code as scanned text; the nonce comes from a counter, as a seeded rng would."""
        nonce = nonce_index.to_bytes(8, "big")
        return encode_code_text(sign_code(self.credential, self.private_key, timestamp_s, nonce))


def make_rider(
    keyring: PlatformKeyring,
    card_id: int = 1001,
    expires_at_s: int = NOW_S + 7 * DAY_S,
    credit_limit_fen: int = 5_000,
) -> Rider:
    private_key = derive_private_key(RIDER_SEED, card_id)
    credential = issue_credential(
        keyring, card_id, public_key_bytes(private_key), credit_limit_fen, expires_at_s
    )
    return Rider(private_key, credential)
