"""Our listeners hooked into Locust's events, once per process.

Locustfiles import each other's users (the city imports every role), so the module
that hooks a listener may be asked to more than once; a listener hooked twice would
count every request twice.
"""

from locust import events  # first: locust patches the stdlib for gevent

# isort: split
from collections.abc import Callable
from typing import Any

_hooked: set[str] = set()


def hook_once(owner: str, **listeners: Callable[..., Any]) -> None:
    """Add each listener to the Locust event it is named after, the first time ``owner`` asks."""
    if owner in _hooked:
        return
    _hooked.add(owner)
    for event_name, listener in listeners.items():
        getattr(events, event_name).add_listener(listener)
