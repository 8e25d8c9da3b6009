"""The tamper-evident access log: ``record`` one entry per access.

How the parts fit:

* ``service.record`` appends an entry to the hash chain (``encoding`` defines
  the bytes hashed): in the caller's transaction when it changes something,
  by group commit (``appender``) after the snapshot of a request that only
  reads. ``signer`` signs a C2SP checkpoint over the Merkle tree of the entry
  hashes (``merkle``, ``checkpoint``) every ``audit_checkpoint_seconds`` while
  entries arrive, after integrating them into hash tiles (``tiles``,
  ``tree``); the key is its own file and rotates by a signed entry (``keys``).
* Witnesses cosign checkpoints from outside (``witness`` is the client,
  ``witnesses`` the log's side).
* ``store`` reads the log for the auditor API (``api``) and the ``casework
  audit`` commands (``cli``): event lists, the JSON Lines export (``export``),
  proofs from tiles, verification (``verify``; ``verification`` stores full
  runs and extends them incrementally for the route). See docs/audit.md.

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
