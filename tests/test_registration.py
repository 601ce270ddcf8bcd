"""Registration's rules as a pure checker (composition, member count, one person once, the
charter's version, the dates), the `[registration]` table of the event file, and the Markdown
of the public page rendered without passing any HTML through."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from server.errors import CharterOutdated, EventFileError, RegistrationInvalid
from server.event import RegistrationSpec, parse_event
from server.registration import (
    VisitorLimiter,
    check_application,
    page_title,
    phase_at,
    render_markdown,
)

QUESTIONS = ["sarcopenia", "nodules", "edss"]
CHARTER = "# Ethical charter\n\nThe data stay with the team. No **re-identification**.\n"
ABOUT = "# About the challenge\n\nThree questions, see [the society](https://www.sfrnet.org).\n"
REGISTRATION_TABLE = """
[registration]
opens = 2019-09-01T09:00:00
closes = 2019-09-30T18:00:00
charter = "charter.md"
charter_version = "2019-1"
pages = ["about.md"]
"""


def with_registration(event_file: Path, table: str = REGISTRATION_TABLE) -> Path:
    """The event file given a `[registration]` table (instead of its own), its charter and
    one page."""
    (event_file.parent / "charter.md").write_text(CHARTER, encoding="utf-8")
    (event_file.parent / "about.md").write_text(ABOUT, encoding="utf-8")
    text = re.sub(r"\n\[registration\]\n(?:[^\[\n][^\n]*\n)*", "\n",
                  event_file.read_text(encoding="utf-8"))
    event_file.write_text(text + table, encoding="utf-8")
    return event_file


def rules(**changes: Any) -> RegistrationSpec:
    values: dict[str, Any] = {
        "opens": datetime(2019, 9, 1, 7, tzinfo=UTC), "closes": datetime(2019, 9, 30, tzinfo=UTC),
        "charter": Path("charter.md"), "charter_version": "2019-1", **changes}
    return RegistrationSpec(**values)


def member(name: str, role: str, kind: str = "other", email: str | None = None
           ) -> dict[str, str]:
    return {"name": name, "email": email or f"{name.split()[0].lower()}@example.org",
            "role": role, "affiliation": "CHU de Lyon" if kind == "other" else "LIRIS",
            "kind": kind}


def form(**changes: Any) -> dict[str, Any]:
    base = {"team": "Lyon Vision",
            "members": [member("Ada Radiologist", "radiologist"),
                        member("Bo Student", "data-scientist", "lab"),
                        member("Cy Engineer", "engineer", "company")],
            "challenges": ["nodules"], "charter_accepted": True, "charter_version": "2019-1"}
    return copy.deepcopy({**base, **changes})


def refusal(data: Any, spec: RegistrationSpec | None = None) -> RegistrationInvalid:
    with pytest.raises(RegistrationInvalid) as caught:
        check_application(data, spec or rules(), QUESTIONS)
    return caught.value


def test_a_team_as_the_seed_asked_is_accepted_with_its_fields_tidied() -> None:
    data = form(team="  Lyon   Vision ")
    data["members"][0]["name"] = " Ada  Radiologist"
    application = check_application(data, rules(), QUESTIONS)
    assert application.team == "Lyon Vision"
    assert [m.name for m in application.members][0] == "Ada Radiologist"
    assert application.challenges == ("nodules",)
    assert application.charter_version == "2019-1"


def test_the_member_count_is_the_events() -> None:
    two = form()
    two["members"] = two["members"][:2]
    assert refusal(two).to_json()["error"] == {
        "code": "registration_invalid", "field": "members",
        "message": "a team has 3 to 15 members; this one has 2"}
    many = form()
    many["members"] += [member(f"M{i} Extra", "researcher") for i in range(3)]
    assert "2 to 5 members; this one has 6" in refusal(
        many, rules(min_members=2, max_members=5)).message
    check_application(two, rules(min_members=2), QUESTIONS)


def test_the_composition_rule_names_what_is_missing() -> None:
    no_radiologist = form()
    no_radiologist["members"][0]["role"] = "researcher"
    assert refusal(no_radiologist).message == ("the team needs at least one radiologist among "
                                               "its members")
    no_scientist = form()
    no_scientist["members"][1]["role"] = "engineer"
    assert "at least one data scientist or student" in refusal(no_scientist).message
    hospital_only = form()
    for m in hospital_only["members"]:
        m["kind"] = "other"
    assert refusal(hospital_only).message == ("the team needs a member from a research lab or "
                                              "a company")
    # An event may declare its own rule: engineers required, any affiliation.
    own = rules(required_roles=("engineer",), required_affiliations=())
    check_application(hospital_only, own, QUESTIONS)
    assert "at least one engineer" in refusal(no_radiologist | {"members": [
        member("A Radiologist", "radiologist"), member("B Student", "data-scientist"),
        member("C Researcher", "researcher")]}, own).message


def test_each_member_field_is_checked_naming_the_member() -> None:
    bad_mail = form()
    bad_mail["members"][1]["email"] = "bo at lab"
    caught = refusal(bad_mail)
    assert caught.extra["field"] == "members[1].email"
    assert caught.message.startswith("member 2 (Bo Student)'s e-mail 'bo at lab'")
    no_name = form()
    no_name["members"][2]["name"] = "  "
    assert (refusal(no_name).extra["field"], refusal(no_name).message) == (
        "members[2].name", "member 3's name is missing")
    bad_role = form()
    bad_role["members"][0]["role"] = "surgeon"
    assert refusal(bad_role).extra["field"] == "members[0].role"
    bad_kind = form()
    bad_kind["members"][0]["kind"] = "club"
    assert "research lab, a company or other" in refusal(bad_kind).message
    long_affiliation = form()
    long_affiliation["members"][0]["affiliation"] = "x" * 161
    assert "longer than 160 characters" in refusal(long_affiliation).message


def test_one_person_is_one_member_whatever_the_case_of_the_address() -> None:
    twice = form()
    twice["members"][2]["email"] = "ADA@Example.org"
    caught = refusal(twice)
    assert caught.extra["field"] == "members[2].email"
    assert "has the e-mail of member 1" in caught.message


def test_questions_and_charter() -> None:
    assert refusal(form(challenges=[])).message == "choose at least one question"
    assert "no question 'lungs'" in refusal(form(challenges=["lungs"])).message
    assert refusal(form(challenges=["edss", "edss"])).message == "a question is chosen twice"
    assert refusal(form(charter_accepted=False)).extra["field"] == "charter"
    with pytest.raises(CharterOutdated) as caught:
        check_application(form(charter_version="2018-2"), rules(), QUESTIONS)
    assert caught.value.extra == {"field": "charter_version", "current": "2019-1"}
    assert refusal("team=Lyon").extra["field"] == "form"


def test_registration_is_open_from_opens_until_closes() -> None:
    spec = rules()
    assert phase_at(spec, datetime(2019, 9, 1, 6, 59, 59, tzinfo=UTC)) == "before"
    assert phase_at(spec, spec.opens) == "open"
    assert phase_at(spec, datetime(2019, 9, 29, 23, 59, 59, tzinfo=UTC)) == "open"
    assert phase_at(spec, spec.closes) == "closed"


def test_a_visitor_sending_forms_is_slowed_and_the_table_stays_bounded() -> None:
    limiter = VisitorLimiter(burst=2, every_s=60, max_visitors=3)
    assert [limiter.take("a", now=0), limiter.take("a", now=0)] == [0, 0]
    assert limiter.take("a", now=1) == pytest.approx(59)
    assert limiter.take("a", now=61) == 0
    for visitor in "bcde":
        limiter.take(visitor, now=62)
    assert len(limiter._buckets) == 3


# -- the event file ------------------------------------------------------------------------------

def test_the_registration_table_parses_with_the_seeds_defaults(example_event: Path) -> None:
    event = parse_event(with_registration(example_event))
    spec = event.registration
    assert spec is not None
    # 09:00 on the event's wall clock (Europe/Paris, summer time) is 07:00 UTC.
    assert spec.opens == datetime(2019, 9, 1, 7, tzinfo=UTC)
    assert (spec.min_members, spec.max_members) == (3, 15)
    assert spec.required_roles == ("radiologist", "data-scientist")
    assert spec.required_affiliations == ("lab", "company")
    assert spec.charter == example_event.parent / "charter.md"
    assert spec.pages == (example_event.parent / "about.md",)
    assert parse_event(example_event.with_name("event.toml")).registration is not None


@pytest.mark.parametrize(("change", "key", "words"), [
    ('closes = 2019-08-01T00:00:00', "registration.closes", "after opens"),
    ('closes = "soon"', "registration.closes", "date and time such as"),
    ("max_members = 2", "registration.max_members", "at least min_members"),
    ("min_members = 0", "registration.min_members", "from 1 to 100"),
    ('required_roles = ["surgeon"]', "registration.required_roles", "among radiologist"),
    ('charter = "../outside.md"', "registration.charter", "inside the event folder"),
    ('charter = "event.toml"', "registration.charter", "Markdown file"),
    ('pages = ["missing.md"]', "registration.pages", "Markdown file"),
    ("colour = 1", "registration.colour", "unknown key"),
])
def test_a_bad_registration_table_names_its_key(example_event: Path, change: str, key: str,
                                                words: str) -> None:
    name = change.split(" =")[0]
    lines = [line for line in REGISTRATION_TABLE.splitlines() if not line.startswith(name + " ")]
    (example_event.parent.parent / "outside.md").write_text("x")
    with_registration(example_event, "\n".join(lines) + "\n" + change + "\n")
    with pytest.raises(EventFileError) as caught:
        parse_event(example_event)
    assert caught.value.key == key and words in caught.value.detail
    assert caught.value.line is not None


# -- Markdown ------------------------------------------------------------------------------------

def test_markdown_is_rendered_and_no_html_passes_through() -> None:
    source = ("# Title\n\nSome *words* and **bold** with `code`.\n\n- one\n- two\n\n"
              "1. first\n\n<script>alert(1)</script>\n\n[ok](https://example.org) "
              "[bad](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n```\n<b>kept</b>\n```\n")
    out = render_markdown(source)
    assert "<h2>Title</h2>" in out
    assert "<em>words</em>" in out and "<strong>bold</strong>" in out
    assert "<code>code</code>" in out
    assert "<ul><li>one</li><li>two</li></ul>" in out and "<ol><li>first</li></ol>" in out
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<img" not in out and "javascript:" not in out
    assert '<a href="https://example.org" rel="noopener">ok</a>' in out
    assert "<pre><code>&lt;b&gt;kept&lt;/b&gt;</code></pre>" in out
    assert page_title(source, "file") == "Title" and page_title("no heading", "file") == "file"
