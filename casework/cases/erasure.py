"""What else erasure must destroy: hooks that features register for their own case data.

Crypto-shredding makes every ciphertext under the case's data key noise, but
features keep more about a case than its members: workflow outcomes, vetting
interviews and checks, consent records, and a partner package that is sealed
to the partner, not under the case key, so shredding alone leaves it readable
by the partner. Each feature's ``init_app`` registers a hook that overwrites or
deletes its rows for the case; :func:`casework.cases.service.erase_case` runs
every hook in the erasure's transaction, so the erasure is all or nothing.

The dependency stays one way: features import this registry, cases imports
no feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask, current_app
from sqlalchemy.orm import Session

if TYPE_CHECKING:  # pragma: no cover - typing only
    from casework.cases.models import Case

ErasureHook = Callable[[Session, "Case"], None]

_EXTENSION_KEY = "casework.erasure_hooks"


def on_erase(app: Flask, hook: ErasureHook) -> None:
    """Register ``hook`` to run when a case of ``app`` is erased."""
    registered: list[ErasureHook] = app.extensions.setdefault(_EXTENSION_KEY, [])
    if hook not in registered:
        registered.append(hook)


def registered_hooks(app: Flask | None = None) -> list[ErasureHook]:
    """The erasure hooks of ``app`` (default: the current application)."""
    target = app if app is not None else current_app
    hooks: list[ErasureHook] = target.extensions.get(_EXTENSION_KEY, [])
    return hooks


def run_hooks(session: Session, case: Case) -> None:
    """Run every registered hook for ``case``, in registration order; one failing aborts all."""
    for hook in registered_hooks():
        hook(session, case)
