"""casework-sync: the field client for casework, an encrypted replica that syncs exactly once."""

from casework_sync.client import Client, RetryPolicy, Status, SyncReport
from casework_sync.transport import (
    DeviceRevoked,
    LinkDown,
    LoginRequired,
    ResyncRequired,
    ServerRefused,
    SyncError,
)
from casework_sync.vault import KdfCost, VaultError, WrongPassphrase

__all__ = [
    "Client",
    "DeviceRevoked",
    "KdfCost",
    "LinkDown",
    "LoginRequired",
    "ResyncRequired",
    "RetryPolicy",
    "ServerRefused",
    "Status",
    "SyncError",
    "SyncReport",
    "VaultError",
    "WrongPassphrase",
]
