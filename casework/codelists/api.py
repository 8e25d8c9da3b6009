"""``GET /api/v1/codes`` and ``GET /api/v1/codes/{name}``: the lists and their labels.

Open to every signed-in user and device (``codes:read``); no case data, so not
audited. Labels follow ``Accept-Language`` (``Content-Language`` says which was
used; ``Vary`` tells caches).
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from casework import i18n
from casework.api import API_PREFIX, Blueprint, problems
from casework.authz.access import requires
from casework.authz.permissions import Permission
from casework.codelists.lists import code_lists, localised
from casework.codelists.schemas import CodeListIndexOut, CodeListOut
from casework.errors import NotFound

blp = Blueprint(
    "codes",
    __name__,
    url_prefix=f"{API_PREFIX}/codes",
    description="Code lists: every enumeration the API accepts, labelled in your language.",
)

LANGUAGE_HEADERS = {
    "Content-Language": {"description": "Language of the labels.", "schema": {"type": "string"}}
}


@blp.after_request
def _say_the_language(response: Response) -> Response:
    response.headers["Content-Language"] = i18n.current_language()
    response.vary.add("Accept-Language")
    return response


@blp.route("")
class CodeLists(MethodView):
    @requires(Permission.CODES_READ)
    @blp.response(200, CodeListIndexOut, headers=LANGUAGE_HEADERS)
    @problems(blp, 401, 403)
    def get(self) -> dict[str, Any]:
        """The names of the code lists, and the languages labels come in."""
        lists = [{"name": c.name, "description": c.description} for c in code_lists().values()]
        return {"lists": lists, "languages": list(i18n.LANGUAGES)}


@blp.route("/<string:name>")
class CodeListEntries(MethodView):
    @requires(Permission.CODES_READ)
    @blp.response(200, CodeListOut, headers=LANGUAGE_HEADERS)
    @problems(blp, 401, 403, 404, descriptions={404: "No such code list."})
    def get(self, name: str) -> dict[str, Any]:
        """A list's entries ``{value, label}``, labels in the ``Accept-Language`` language."""
        code_list = code_lists().get(name)
        if code_list is None:
            raise NotFound("No such code list.")
        codes = localised(code_list)
        return {"name": name, "language": i18n.current_language(), "codes": codes}
