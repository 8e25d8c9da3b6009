"""The user's language: gettext catalogs (Babel, Flask-Babel) chosen by ``Accept-Language``.

Code-list labels and problem titles are translated here; nothing else a client
sees is (details, field messages and the OpenAPI document stay in English, the
language of the API itself). Catalogs live in ``casework/translations``; the
compiled ``.mo`` files are committed beside their ``.po`` sources, so a fresh
clone serves every language without a build step, and a test fails when one is
stale (``casework i18n compile`` rebuilds them).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, has_request_context, request
from flask_babel import Babel, force_locale, gettext, pgettext

__all__ = ["DEFAULT", "LANGUAGES", "TRANSLATIONS", "force_locale", "init_app", "label", "title"]

DEFAULT = "en"
LANGUAGES = ("en", "ko")
"""Every shipped language; the first is the source language of the catalogs."""
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"
PROBLEM_CONTEXT = "problem"
"""msgctxt of a problem title: the same English word may be a title and a label."""


def select_locale() -> str:
    """The best shipped language the request accepts (quality values respected), else English."""
    if not has_request_context():
        return DEFAULT
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT) or DEFAULT


def init_app(app: Flask) -> None:
    """Attach Flask-Babel with the casework catalogs and the Accept-Language selector."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["BABEL_DOMAIN"] = DOMAIN
    Babel(app, locale_selector=select_locale)


def label(context: str, english: str) -> str:
    """``english`` (a code-list label) in the request's language; ``context`` is the list."""
    return str(pgettext(context, english))


def title(english: str) -> str:
    """A problem title in the request's language (English outside a request or an app)."""
    try:
        return str(pgettext(PROBLEM_CONTEXT, english))
    except (RuntimeError, KeyError):  # no application: nothing to translate with
        return english


def translate(message: str) -> str:
    """Plain gettext, for the rare message without a context."""
    return str(gettext(message))


def current_language() -> str:
    """The language of the current request (``en`` outside one)."""
    return select_locale()
