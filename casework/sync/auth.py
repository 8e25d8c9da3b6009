"""Who a signed device request acts for: the device alone, or a person through it.

Registered first among the authenticators: a signed request is verified here
(signature, digest, window, nonce, revocation) and its token, if any, must be
bound to the signing device. An unsigned request falls through to the bearer
authenticator, which refuses a device-bound token (see ``token_principal``).
"""

from __future__ import annotations

from flask import request

from casework import db
from casework.auth import sessions
from casework.auth.access import Principal
from casework.errors import Unauthorized
from casework.sync.models import Device
from casework.sync.service import is_signed_request, verified_device


def device_principal() -> Principal | None:
    """Authenticator: None for an unsigned request; else the device's principal."""
    if not is_signed_request():
        return None
    device = verified_device(db.session())
    header = request.headers.get("Authorization")
    if header is None:
        # A device alone holds no permission: it acts only for a signed-in person.
        return Principal(
            user_id=None, role="device", office=device.office_code, device_id=str(device.id)
        )
    principal = sessions.token_principal(header, device.id)
    if principal.office != device.office_code:
        raise Unauthorized("This account does not belong to the device's office.")
    return principal


def request_device() -> sessions.DeviceBinding | None:
    """The signing device of this request (verified), for a device-bound sign-in."""
    if not is_signed_request():
        return None
    device = verified_device(db.session())
    return sessions.DeviceBinding(device.id, device.office_code)


def current_device() -> Device:
    """The device that signed this request; 401 when it is not a signed request."""
    if not is_signed_request():
        raise Unauthorized("Sync requests must be signed by an enrolled device.")
    return verified_device(db.session())
