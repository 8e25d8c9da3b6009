"""The tamper-evident access log: ``record`` one entry per access.

How the parts fit:

* ``service.record`` appends an entry to the hash chain in the caller's
  transaction (``encoding`` defines the bytes hashed); ``signer`` signs a C2SP
  checkpoint over the Merkle tree of the entry hashes (``merkle``,
  ``checkpoint``) at the first append, every ``audit_checkpoint_every`` entries
  or ``audit_checkpoint_minutes`` minutes, and on demand.
* ``store`` reads the log for the auditor API (``api``, ``audit:read``) and the
  ``casework audit`` commands (``cli``): event lists, the JSON Lines export
  (``export``), verification (``verify``) and inclusion proofs (``proofs``).

An auditor's routine: pin the verifier key (``GET /api/v1/audit/public-key``)
once, out of band; keep the latest checkpoint note from time to time; to
check, export the log and run ``casework audit verify --from-export FILE
--key KEY --checkpoint KEPT`` on their own machine. Exit status 0 means every
hash, link and signature holds and the log still contains what every kept
checkpoint vouched for; otherwise the output names the first bad seq.
"""

from casework.audit.actions import AuditAction, Outcome
from casework.audit.service import SYSTEM, Actor, init_app, record

__all__ = ["SYSTEM", "Actor", "AuditAction", "Outcome", "init_app", "record"]
