"""Stories: one sequence of client calls told in-process and over HTTP, compared as lists.

A story returns what each call gave, a refusal as (error class, code), so the two clients
must agree on every outcome and every stable code, not only on the end balance.
"""

from __future__ import annotations

from collections.abc import Callable

from platform_stub import InProcessClient, Platform, PlatformClient
from platform_stub.exceptions import PlatformError


def refusal(call: Callable[[], object]) -> tuple[str, str]:
    """The refusal a call must raise, as (error class, code)."""
    try:
        call()
    except PlatformError as err:
        return type(err).__name__, err.code
    raise AssertionError("the call was expected to be refused")


def told_in_process(db_url: str, story: Callable[[PlatformClient], list[object]]) -> list[object]:
    """The story told through ``InProcessClient`` on a platform opened on ``db_url``."""
    platform = Platform.open(db_url)
    try:
        return story(InProcessClient(platform))
    finally:
        platform.close()
