"""The reference mobile-payment platform: ledger, wallets, codes, payments, API."""

from platform_stub.audit import AuditReport, audit
from platform_stub.client import HttpClient, InProcessClient, PlatformClient
from platform_stub.service import Platform, Receipt, Registration
from platform_stub.storage import Database, open_database

__all__ = [
    "AuditReport",
    "Database",
    "HttpClient",
    "InProcessClient",
    "Platform",
    "PlatformClient",
    "Receipt",
    "Registration",
    "audit",
    "open_database",
]
