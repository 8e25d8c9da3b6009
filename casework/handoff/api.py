"""Routes of the handoff feature."""

from __future__ import annotations

from casework.api import API_PREFIX, Blueprint

blp = Blueprint("handoff", __name__, url_prefix=f"{API_PREFIX}")
