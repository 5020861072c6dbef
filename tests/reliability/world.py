"""A small city over HTTP for the reliability tests: a rider with a bus card, a
merchant, a bus operator and one reader, plus a restartable server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from platform_stub import HttpClient
from platform_stub.clearing import UploadedTap
from platform_stub.service import luhn_complete
from platform_stub.transit import (
    BusReader,
    Credential,
    derive_private_key,
    encode_code_text,
    public_key_bytes,
    sign_code,
)
from tests.servers import start_server, stop_server
from tests.transit.riders import RIDER_SEED

RIDER_INDEX = 7
WALLET_FEN = 2_000_000


@dataclass
class Server:
    """One platform server process on a database that outlives it."""

    db_url: str
    log_path: Path
    proc: subprocess.Popen | None = None
    url: str = ""
    starts: int = 0

    def start(self) -> str:
        self.proc, self.url = start_server(self.db_url, self.log_path.with_suffix(
            f".{self.starts}.log"))
        self.starts += 1
        return self.url

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing; what a power cut does."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_server(self.proc)


@dataclass
class City:
    rider_token: str
    merchant_token: str
    operator_token: str
    reader_token: str
    collection_code: str
    credential: Credential
    reader: BusReader
    nonces: int = field(default=0)

    def scan_taps(self, count: int) -> None:
        """The rider taps ``count`` times; each code has its own nonce, so its own tap."""
        key = derive_private_key(RIDER_SEED, RIDER_INDEX)
        now_s = int(time.time())
        for _ in range(count):
            self.nonces += 1
            raw = sign_code(self.credential, key, now_s, self.nonces.to_bytes(8, "big"))
            assert self.reader.scan(encode_code_text(raw), now_s).accepted

    def uploaded(self) -> tuple[str, list[UploadedTap]]:
        batch = self.reader.next_batch()
        assert batch is not None
        return batch.batch_id, [UploadedTap(t.seq, t.code_text, t.scanned_at_s)
                                for t in batch.taps]


def build_city(client: HttpClient, base_url: str) -> City:
    rider = client.register_resident("乘客")
    client.bind_card(rider.token, luhn_complete("622202000000007"), "ICBC")
    client.top_up(rider.token, WALLET_FEN, "wallet")
    merchant = client.register_merchant("早餐店", "武汉")
    code = httpx.get(f"{base_url}/v1/collection-code", timeout=10,
                     headers={"Authorization": f"Bearer {merchant.token}"}).json()["payload"]
    operator = client.register_operator("武汉公交")
    reader = client.register_reader(operator.token, "bus-1")
    key = derive_private_key(RIDER_SEED, RIDER_INDEX)
    credential = Credential.from_bytes(client.claim_bus_card(rider.token, public_key_bytes(key)))
    bus = BusReader(f"R{reader.participant_id}", client.transit_public_keys(reader.token))
    return City(rider.token, merchant.token, operator.token, reader.token, code, credential, bus)
