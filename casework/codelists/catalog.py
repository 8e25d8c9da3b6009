"""The translation catalogs: which messages they must hold, and keeping them current.

``casework i18n update`` writes every message (problem titles, code-list labels) into
each language's ``messages.po``, keeping the translations already there, and compiles
the ``.mo`` beside it; translators edit the ``.po`` and run ``casework i18n compile``.
Both files are committed, so a fresh clone needs no build step.
"""

from __future__ import annotations

import io
from pathlib import Path

import click
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from flask.cli import with_appcontext

from casework import i18n
from casework.codelists.lists import _alpha2, code_lists
from casework.errors import TITLES

Message = tuple[str, str]  # (msgctxt, msgid)


def messages() -> list[Message]:
    """Every message a client may see translated, in a stable order. Call it with the
    application built, so that every feature's problem types are registered."""
    wanted: list[Message] = [
        (i18n.PROBLEM_CONTEXT, title) for title in sorted(set(TITLES.values()))
    ]
    for code_list in code_lists().values():
        for value, english in code_list.labels.items():
            if code_list.translated_by == "gettext" or value not in _alpha2():
                wanted.append((code_list.name, english))
    return list(dict.fromkeys(wanted))


def po_path(language: str) -> Path:
    return i18n.TRANSLATIONS / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"


def read_catalog(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, domain=i18n.DOMAIN)
    with path.open("rb") as file:
        return read_po(file, locale=language, domain=i18n.DOMAIN)


def mo_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def update(language: str) -> list[Message]:
    """Rewrite ``language``'s catalog with exactly the current messages; returns the
    messages that still lack a translation."""
    old = read_catalog(language)
    new = Catalog(locale=language, domain=i18n.DOMAIN, project="casework", fuzzy=False)
    missing = []
    for context, msgid in messages():
        existing = old.get(msgid, context=context)
        translation = existing.string if existing is not None else ""
        new.add(msgid, translation, context=context)
        if not translation:
            missing.append((context, msgid))
    path = po_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, new, width=100, omit_header=False, sort_output=False)
    compile_catalog(language)
    return missing


def compile_catalog(language: str) -> None:
    path = po_path(language)
    path.with_suffix(".mo").write_bytes(mo_bytes(read_catalog(language)))


@click.group("i18n")
def i18n_group() -> None:
    """Translation catalogs of code-list labels and problem titles."""


@i18n_group.command("update")
@with_appcontext
def update_command() -> None:
    """Bring every language's messages.po up to date and compile it."""
    for language in i18n.LANGUAGES[1:]:
        missing = update(language)
        click.echo(f"{language}: {len(missing)} message(s) to translate")


@i18n_group.command("compile")
def compile_command() -> None:
    """Compile every messages.po into its messages.mo."""
    for language in i18n.LANGUAGES[1:]:
        compile_catalog(language)
