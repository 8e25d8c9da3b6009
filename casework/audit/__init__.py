"""The tamper-evident access log: ``record`` one entry per access."""

from casework.audit.actions import AuditAction, Outcome
from casework.audit.service import SYSTEM, Actor, init_app, record

__all__ = ["SYSTEM", "Actor", "AuditAction", "Outcome", "init_app", "record"]
