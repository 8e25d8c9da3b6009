"""Helpers shared by the client's tests (a module name the server's tests do not use)."""

from __future__ import annotations

from casework_sync.vault import KdfCost

#: Tests use a cheap scrypt; the command's default is 2**17.
FAST_KDF = KdfCost(log2_n=10)
