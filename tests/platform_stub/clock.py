"""A clock the tests move instead of waiting (platform.clock and the features' clocks)."""

from __future__ import annotations

import datetime as dt

from platform_stub.clearing import CHINA_TZ

LAUNCH = dt.datetime(2017, 6, 15, 9, 0, tzinfo=CHINA_TZ)  # Wuhan's e-bus card launch


class Clock:
    def __init__(self, now: dt.datetime = LAUNCH) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now
