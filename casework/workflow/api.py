"""Routes of the workflow feature."""

from __future__ import annotations

from casework.api import API_PREFIX, Blueprint

blp = Blueprint("workflow", __name__, url_prefix=f"{API_PREFIX}")
