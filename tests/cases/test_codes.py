import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from casework.cases import codes
from casework.cases.codes import (
    BirthRegistration,
    CodeListError,
    DocumentType,
    NationalityStatus,
    RegistrationDecision,
    Relationship,
    ResettlementStage,
    Sex,
    Stage,
    UnknownCode,
    countries,
    is_valid_country,
    is_valid_need,
    load_needs_catalogue,
    need_family,
    needs_catalogue,
    use_needs_catalogue,
)

FAMILIES = ["CR", "SC", "WR", "ER", "SP", "DS", "SM", "FU", "LP", "TR", "SV"]


@pytest.fixture(autouse=True)
def _shipped_catalogue() -> Iterator[None]:
    use_needs_catalogue(None)
    yield
    use_needs_catalogue(None)


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (Stage, ["intake", "vetting", "determination", "resettlement", "handed_off", "closed"]),
        (
            ResettlementStage,
            [
                "not_considered",
                "identified",
                "needs_assessment",
                "deprioritised",
                "interview",
                "rrf_preparation",
                "submission_review",
                "submitted",
                "state_decision",
                "pending_departure_arrangements",
                "departed",
                "arrived",
            ],
        ),
        (
            Relationship,
            [
                "principal_applicant",
                "spouse",
                "child",
                "parent",
                "sibling",
                "other_relative",
                "non_relative",
            ],
        ),
        (Sex, ["female", "male", "other", "unknown"]),
        (
            DocumentType,
            [
                "passport",
                "national_id",
                "birth_certificate",
                "refugee_id",
                "unhcr_registration",
                "other",
            ],
        ),
        (
            BirthRegistration,
            [
                "not_registered",
                "notified",
                "registered_no_certificate",
                "certificate_issued",
                "late_registration_pending",
                "unknown",
            ],
        ),
        (
            NationalityStatus,
            [
                "nationality_confirmed",
                "at_risk_of_statelessness",
                "undetermined",
                "stateless_determined",
                "unknown",
            ],
        ),
        (RegistrationDecision, ["register_now", "defer", "do_not_register"]),
    ],
)
def test_enum_values_are_the_contract(enum: Any, values: list[str]) -> None:
    assert [member.value for member in enum] == values


def test_shipped_needs_have_every_family() -> None:
    catalogue = needs_catalogue()
    assert sorted(catalogue.families) == sorted(FAMILIES)
    assert {need.family for need in catalogue.needs.values()} == set(FAMILIES)
    for code, need in catalogue.needs.items():
        assert need.code == code
        assert code.startswith(need.family + "-")
        assert need.label.strip()


@pytest.mark.parametrize(
    ("code", "family"),
    [("LP-RR", "LP"), ("SC-UC", "SC"), ("SV-VA", "SV"), ("CR-CP", "CR"), ("DS-BD", "DS")],
)
def test_need_family(code: str, family: str) -> None:
    assert is_valid_need(code)
    assert need_family(code) == family


@pytest.mark.parametrize("code", ["lp-rr", "LP", "LP-", "LP-ZZ", "XX-RR", " LP-RR", "", None, 1])
def test_invalid_needs(code: object) -> None:
    assert not is_valid_need(code)


def test_unknown_need_family_raises_without_echo() -> None:
    with pytest.raises(UnknownCode) as caught:
        need_family("QQ-QQ")
    assert "QQ" not in str(caught.value)


def test_needs_file_says_offices_may_extend() -> None:
    path = Path(codes.__file__).parent / "data" / "specific_needs.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert "may extend" in metadata["extension"]
    assert "UNHCR" in metadata["source"]


def _write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _extension(families: list[dict[str, str]], needs: list[dict[str, str]]) -> dict[str, Any]:
    return {"metadata": {"office": "test"}, "families": families, "codes": needs}


def test_extension_adds_codes_and_families(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "office.json",
        _extension(
            [{"code": "ZZ", "label": "Local family"}],
            [
                {"code": "ZZ-AA", "family": "ZZ", "label": "Local code"},
                {"code": "LP-QQ", "family": "LP", "label": "Local legal need"},
            ],
        ),
    )
    catalogue = load_needs_catalogue([path])
    assert catalogue.family("ZZ-AA") == "ZZ"
    assert catalogue.is_valid("LP-QQ")
    assert catalogue.is_valid("LP-RR")
    assert not is_valid_need("ZZ-AA")  # not in force until installed
    use_needs_catalogue(catalogue)
    assert is_valid_need("ZZ-AA")
    assert need_family("LP-QQ") == "LP"


@pytest.mark.parametrize(
    "document",
    [
        _extension([], [{"code": "LP-RR", "family": "LP", "label": "Redefined"}]),
        _extension([{"code": "LP", "label": "Redefined family"}], []),
        _extension([], [{"code": "ZZ-AA", "family": "ZZ", "label": "No such family"}]),
        _extension([], [{"code": "LP-AA", "family": "SV", "label": "Wrong family"}]),
        _extension([], [{"code": "lp-aa", "family": "LP", "label": "Lower case"}]),
        _extension([], [{"code": "LP-AAA", "family": "LP", "label": "Too long"}]),
        _extension([], [{"code": "LP-AA", "family": "LP", "label": " "}]),
        _extension([], [{"code": "LP-AA", "family": "LP"}]),
        _extension([{"code": "Z", "label": "Short"}], []),
        {"families": [], "codes": []},
        {"metadata": {}, "families": {}, "codes": []},
        {"metadata": {}, "families": [], "codes": ["LP-AA"]},
        [],
    ],
)
def test_malformed_extensions_are_refused(tmp_path: Path, document: Any) -> None:
    path = _write(tmp_path, "bad.json", document)
    with pytest.raises(CodeListError):
        load_needs_catalogue([path])


def test_unreadable_extension_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CodeListError, match=r"bad\.json"):
        load_needs_catalogue([bad])
    with pytest.raises(CodeListError):
        load_needs_catalogue([tmp_path / "missing.json"])


def test_countries_are_iso_alpha3_plus_travel_codes() -> None:
    table = countries()
    assert len(table) == 249 + 4
    for code in (
        "AFG",
        "SYR",
        "SSD",
        "MMR",
        "PSE",
        "UKR",
        "VEN",
        "COD",
        "XXA",
        "XXB",
        "XXC",
        "XXX",
    ):
        assert is_valid_country(code), code
    assert table["XXA"].startswith("Stateless")
    assert all(len(code) == 3 and code.isupper() for code in table)


@pytest.mark.parametrize("code", ["syr", "SY", "SYRIA", "XKX", "RKS", "YUG", "", None, 760])
def test_invalid_countries(code: object) -> None:
    assert not is_valid_country(code)
