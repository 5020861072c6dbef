"""Offline ("double offline") transit QR: neither the phone nor the bus reader needs a
network at the moment of the ride.

    platform                app (offline)              bus reader (offline)
    --------                -------------              --------------------
    PlatformKeyring  --->   Credential          --->   public_keys by key id
    issue_credential        (rider key, card,          deny list (versioned deltas)
                             credit, expiry)
                            sign_code every ~30 s      scan: verify_tap, replay window,
                            (time, nonce, rider sig)   bounded queue of TapRecords
                                    |                          |
                                    +--- QR (base45 text) -----+
                                                               | next_batch / ack
                                                               v  when connected
                                        clearing (platform): verify_tap again at the
                                        tap's time, drop duplicates by tap_id, price,
                                        debit the rider, credit the operator

The reader never changes money; clearing never trusts the reader.
"""

from platform_stub.transit.base45 import b45decode, b45encode
from platform_stub.transit.code import (
    CODE_BYTES,
    CODE_CHARS,
    NONCE_BYTES,
    OfflineCode,
    decode_code_text,
    encode_code_text,
    new_nonce,
    parse_code,
    sign_code,
    tap_id,
)
from platform_stub.transit.credential import (
    CREDENTIAL_BYTES,
    Credential,
    CredentialCache,
    issue_credential,
    verify_credential,
)
from platform_stub.transit.keys import (
    PlatformKeyring,
    RiderKey,
    derive_private_key,
    public_key_bytes,
)
from platform_stub.transit.reader import (
    Batch,
    BusReader,
    DenyDeltaOutcome,
    ScanResult,
    TapRecord,
    batch_id_for,
)
from platform_stub.transit.verify import (
    CLEARING_MAX_AGE_S,
    CLEARING_SKEW_S,
    CLOCK_SKEW_S,
    CODE_MAX_AGE_S,
    VerifiedTap,
    verify_tap,
)

__all__ = [
    "CLEARING_MAX_AGE_S",
    "CLEARING_SKEW_S",
    "CLOCK_SKEW_S",
    "CODE_BYTES",
    "CODE_CHARS",
    "CODE_MAX_AGE_S",
    "CREDENTIAL_BYTES",
    "NONCE_BYTES",
    "Batch",
    "BusReader",
    "Credential",
    "CredentialCache",
    "DenyDeltaOutcome",
    "OfflineCode",
    "PlatformKeyring",
    "RiderKey",
    "ScanResult",
    "TapRecord",
    "VerifiedTap",
    "b45decode",
    "b45encode",
    "batch_id_for",
    "decode_code_text",
    "derive_private_key",
    "encode_code_text",
    "issue_credential",
    "new_nonce",
    "parse_code",
    "public_key_bytes",
    "sign_code",
    "tap_id",
    "verify_credential",
    "verify_tap",
]
