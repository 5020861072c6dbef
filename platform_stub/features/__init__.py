"""Platform features beyond wallets and transit, each in a module of its own.

A feature module defines a service class taking the :class:`Platform` (its
constructor creates its tables) and ``add_routes(app, platform)`` for its HTTP API.
``FEATURES`` lists them: attribute name on the platform -> module. The platform
builds each service at start-up (``platform.<name>``) and the API mounts each
module's routes, so adding a feature is one module and one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FEATURES: dict[str, str] = {
    # name on the platform: module under platform_stub.features
    "paycodes": "paycodes",
    "refunds": "refunds",
    "announcements": "announcements",
    "bills": "bills",
    "community": "community",
    "hospital": "hospital",
    "credit": "credit",
}


def feature_modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(f"platform_stub.features.{module}")
            for name, module in FEATURES.items()}
