"""The event file (docs/event-file.md): parsed, validated and turned into frozen specs.

Validation collects the first problem with its file, key and line; TOML itself gives lines for
syntax errors, and `_Lines` finds the line of a key inside the document for semantic ones.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server import kinds
from server.errors import EventFileError
from server.ranking import RankingDeclarationError

if TYPE_CHECKING:
    from server.evaluators.options import ScoringOptions

SLUG_RE = re.compile(r"^[a-z0-9-]+$")
MIN_GIVEN_TOKEN_LENGTH = 16

EVENT_KEYS = {"name", "timezone"}
ACCESS_KEYS = {"organizer_token", "jury_token"}
CHALLENGE_KEYS = {
    "slug", "title", "kind", "duration_minutes", "truth", "release", "counts",
    "max_submissions", "team_feedback", "leaderboard", "freeze_minutes",
    "upload_grace_seconds", "max_upload_mb", "sealed", "storage_quota_mb", "ranking",
    "inclusion", "splits", "batches",
}
TEAM_KEYS = {"name", "challenges", "token"}
CENTER_KEYS = {"name", "challenges", "token", "ae_title", "email"}
REVIEWER_KEYS = {"name", "challenges", "token"}
REGISTRATION_KEYS = {"opens", "closes", "min_members", "max_members", "required_roles",
                     "required_affiliations", "charter", "charter_version", "pages"}
INCLUSION_KEYS = {"target", "margin", "keep", "reading", "dates", "criteria"}
SPLIT_KEYS = {"seed", "sets", "stratify", "value", "bins"}
BATCH_KEYS = {"name", "set", "part", "parts", "opens", "sealed"}
# Sets whose truth never goes out before the final day, whatever the final day is built from.
HELD_SETS = ("validation", "test")
SET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
TOP_KEYS = {"event", "access", "challenges", "teams", "centers", "reviewers", "registration"}
GRADES = ("A", "B", "C", "D")
AE_TITLE_RE = re.compile(r"^[ -~]{1,16}$")
EMAIL_RE = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+$")


class Counts(StrEnum):
    """Which of a team's valid submissions stands for it on the board."""

    LAST = "last"
    BEST = "best"


class Feedback(StrEnum):
    """What a team is shown of its own scored files."""

    STATUS = "status"
    SCORE = "score"


class Reading(StrEnum):
    """How many experts grade each exam (`[challenges.inclusion] reading`)."""

    SINGLE = "single"
    DOUBLE = "double"  # two blind readings; a third reviewer settles a disagreement


class Visibility(StrEnum):
    """Who sees a challenge's board (`leaderboard`): server/leaderboard.py."""

    JURY = "jury"
    TEAMS = "teams"
    PUBLIC = "public"


MIB = 1024 * 1024


@dataclass(frozen=True)
class InclusionSpec:
    """A question's inclusion (`[challenges.inclusion]`, docs/inclusion-platform.md): how many
    exams it needs, the quality classes kept, the reading mode, the dates policy of its
    de-identification, and the criteria (server/inclusion/criteria.py) every exam is checked
    against on arrival. `declared` is the table as the event file gives it, stored as JSON."""

    target: int
    margin: float = 0.10
    keep: tuple[str, ...] = ("A", "B", "C")
    reading: Reading = Reading.SINGLE
    dates: str = "shift"
    criteria: Any = None  # server.inclusion.criteria.Criteria
    declared: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def wanted(self) -> int:
        """The exams asked of the centers: the target and its margin (the seed asked 10 %)."""
        return math.ceil(self.target * (1 + self.margin) - 1e-9)


@dataclass(frozen=True)
class SplitSpec:
    """A question's split (`[challenges.splits]`, docs/datasets.md): the seed, the sets in
    order each with its size in exams (int) or its fraction (float), what it is stratified
    by, and for `value` the clinical field and its bins' edges."""

    seed: int
    sets: tuple[tuple[str, int | float], ...]
    stratify: tuple[str, ...] = ("center",)
    value: str | None = None
    bins: tuple[float, ...] = ()


@dataclass(frozen=True)
class BatchSpec:
    """A batch release of a training set (`[[challenges.batches]]`, docs/datasets.md): the
    set it comes from, which part of it (`part` of `parts`, the set's exams in exam order;
    1 of 1: all of it), when it opens (None: when an organizer opens it), and whether its
    archive is sealed."""

    name: str
    set: str
    part: int = 1
    parts: int = 1
    opens: datetime | None = None
    sealed: bool = False


@dataclass(frozen=True)
class ChallengeSpec:
    """A challenge as the event file declares it. Its fields have the names and types of the
    stored challenge's (server/store/challenges.py), which adds the clock's state."""

    slug: str
    title: str
    kind: str
    duration: timedelta
    truth: Path
    release: Path | None = None
    counts: Counts = Counts.LAST
    max_submissions: int | None = None
    team_feedback: Feedback = Feedback.STATUS
    leaderboard: Visibility = Visibility.JURY
    freeze_window: timedelta = timedelta(0)
    upload_grace: timedelta = timedelta(seconds=30)
    hu_window: tuple[float, float] | None = None
    max_upload_bytes: int = 10 * MIB
    sealed: bool = False
    # What one team may store on this challenge; None: the server's default (podium serve
    # --storage-quota-mb, else four maximum-size uploads).
    storage_quota_bytes: int | None = None
    # The declared ranking (`ranking = {...}`, normalised by server.ranking's rule); None: the
    # kind's own rule. server.kinds.of(challenge) is the kind ranking this way.
    ranking: Mapping[str, Any] | None = None
    # The kind's options (`Kind.options` keys: hu_window, ...) as JSON values, passed to the
    # scorer by name (`scoring_options`).
    options: Mapping[str, Any] = field(default_factory=dict)
    # Before the final day: the exams the question collects; None: not collected by Podium.
    inclusion: InclusionSpec | None = None
    # Its kept exams' split into sets; None: not split by Podium.
    splits: SplitSpec | None = None
    # `truth = "set:NAME"` / `release = "set:NAME"`: built from that set of its split
    # (server/dataset/final.py); `truth` and `release` then point into the data dir.
    truth_set: str | None = None
    release_set: str | None = None
    # Batch releases of its training sets, in the declared order.
    batches: tuple[BatchSpec, ...] = ()

    def batch(self, name: str) -> BatchSpec | None:
        return next((b for b in self.batches if b.name == name), None)

    def scoring_options(self) -> ScoringOptions:
        return scoring_options(self.options)


def scoring_options(options: Mapping[str, Any]) -> ScoringOptions:
    """The scorer's options from a challenge's kind options (the event file's, or as stored):
    each key is the ScoringOptions field of that name; a list ([low, high]) becomes a tuple.
    Raises TypeError for a key ScoringOptions has no field for, ValueError for a bad value."""
    from server.evaluators.options import ScoringOptions
    fields: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                              for key, value in options.items()}
    return ScoringOptions(**fields)


@dataclass(frozen=True)
class TeamSpec:
    name: str
    challenges: tuple[str, ...]
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CenterSpec:
    """An inclusion center: the questions it sends exams for, and the calling AE title its
    PACS uses towards Podium's DICOM node (None: web uploads only)."""

    name: str
    challenges: tuple[str, ...]
    token: str | None = field(default=None, repr=False)
    ae_title: str | None = None
    # Where its digest is mailed (server/inclusion/digest.py); empty: shown on its page only.
    email: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReviewerSpec:
    """An expert who grades the exams of the questions named."""

    name: str
    challenges: tuple[str, ...]
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EventSpec:
    path: Path
    name: str
    timezone: str
    challenges: tuple[ChallengeSpec, ...]
    teams: tuple[TeamSpec, ...]
    organizer_token: str | None = field(default=None, repr=False)
    jury_token: str | None = field(default=None, repr=False)
    centers: tuple[CenterSpec, ...] = ()
    reviewers: tuple[ReviewerSpec, ...] = ()
    # Teams that register themselves (`[registration]`, docs/registration.md); None: only the
    # event file's teams take part.
    registration: RegistrationSpec | None = None

    def challenge(self, slug: str) -> ChallengeSpec:
        for challenge in self.challenges:
            if challenge.slug == slug:
                return challenge
        known = ", ".join(c.slug for c in self.challenges)
        raise KeyError(f"no challenge {slug!r} in {self.path} (challenges: {known})")


MEMBER_ROLES = ("radiologist", "data-scientist", "researcher", "engineer")
AFFILIATION_KINDS = ("lab", "company", "other")


@dataclass(frozen=True)
class RegistrationSpec:
    """How teams register themselves (`[registration]`): when, how many members, the
    composition every team must have (the seed's by default: a radiologist, a data scientist
    or student, a research lab or a company among the affiliations), the charter accepted, and
    the Markdown pages shown on the public page."""

    opens: datetime
    closes: datetime
    charter: Path
    charter_version: str
    min_members: int = 3
    max_members: int = 15
    required_roles: tuple[str, ...] = ("radiologist", "data-scientist")
    required_affiliations: tuple[str, ...] = ("lab", "company")
    pages: tuple[Path, ...] = ()


class _Lines:
    """Finds the line of `[table] key` or `[[array]] #index key` in the TOML text (1-based)."""

    _array = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]")
    _table = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
    _key = re.compile(r"^\s*(\"[^\"]*\"|[A-Za-z0-9_-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.headers: dict[tuple[str, int | None], int] = {}
        self.keys: dict[tuple[str, int | None, str], int] = {}
        counts: dict[str, int] = {}
        current: tuple[str, int | None] = ("", None)
        for number, line in enumerate(text.splitlines(), start=1):
            if m := self._array.match(line):
                name = m.group(1)
                index = counts.get(name, 0)
                counts[name] = index + 1
                current = (name, index)
                self.headers[current] = number
            elif m := self._table.match(line):
                # A sub-table of an array's element ([challenges.inclusion] after the second
                # [[challenges]]) belongs to that element.
                name = m.group(1)
                parent = next((p for p in counts if name.startswith(p + ".")), None)
                current = (name, counts[parent] - 1 if parent else None)
                self.headers[current] = number
            elif m := self._key.match(line):
                key = m.group(1).strip('"')
                self.keys.setdefault((current[0], current[1], key), number)

    def of(self, table: str, index: int | None = None, key: str | None = None) -> int | None:
        if key is not None and (table, index, key) in self.keys:
            return self.keys[(table, index, key)]
        return self.headers.get((table, index))


class _Checker:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _Lines(text)

    def fail(self, message: str, table: str, index: int | None = None,
             key: str | None = None) -> EventFileError:
        head, dot, rest = table.partition(".")
        name = table if index is None else f"{head}[{index}]{dot}{rest}"
        dotted = f"{name}.{key}" if key else name
        return EventFileError(str(self.path), message, key=dotted,
                              line=self.lines.of(table, index, key))

    def table(self, doc: dict[str, Any], name: str, allowed: set[str],
              index: int | None = None) -> None:
        for key in doc:
            if key not in allowed:
                raise self.fail(f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}",
                                name, index, key)

    def string(self, doc: dict[str, Any], table: str, key: str, index: int | None = None,
               *, required: bool = True, choices: tuple[str, ...] | None = None,
               default: str | None = None) -> str | None:
        if key not in doc:
            if required:
                raise self.fail(f"missing required key {key!r}", table, index)
            return default
        value = doc[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key} must be a non-empty string, got {value!r}", table, index, key)
        if choices is not None and value not in choices:
            raise self.fail(f"{key} must be one of {', '.join(map(repr, choices))}, got {value!r}",
                            table, index, key)
        return value

    def number(self, doc: dict[str, Any], table: str, key: str, index: int | None, *,
               default: float | None, minimum: float, strict: bool) -> float | None:
        if key not in doc:
            if default is None and strict:
                raise self.fail(f"missing required key {key!r}", table, index)
            return default
        value = doc[key]
        bad = (isinstance(value, bool) or not isinstance(value, int | float)
               or not math.isfinite(value) or value < minimum or (strict and value <= minimum))
        if bad:
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise self.fail(f"{key} must be a number {bound}, got {value!r}", table, index, key)
        return float(value)


def parse_event(path: str | Path) -> EventSpec:
    """Reads and validates an event file; raises EventFileError naming file, key and line."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EventFileError(str(path), "event file not found") from None
    except UnicodeDecodeError as exc:
        raise EventFileError(str(path), f"event file is not UTF-8 ({exc.reason})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11 gives the position only inside the message: "... (at line 3, column 9)".
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else None
        message = str(exc)
        raise EventFileError(str(path), f"invalid TOML: {message}", line=line) from None
    check = _Checker(path, text)
    check.table(doc, "", TOP_KEYS)

    event = doc.get("event")
    if not isinstance(event, dict):
        raise check.fail("missing [event] table with a name", "event")
    check.table(event, "event", EVENT_KEYS)
    name = check.string(event, "event", "name")
    timezone = check.string(event, "event", "timezone", required=False, default="UTC")
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise check.fail(f"unknown time zone {timezone!r} (use an IANA name such as "
                         "'Europe/Paris')", "event", None, "timezone") from None

    access = doc.get("access", {})
    if not isinstance(access, dict):
        raise check.fail("[access] must be a table", "access")
    check.table(access, "access", ACCESS_KEYS)
    organizer_token = _token(check, access, "access", None, "organizer_token")
    jury_token = _token(check, access, "access", None, "jury_token")

    raw_challenges = doc.get("challenges")
    if not isinstance(raw_challenges, list) or not raw_challenges:
        raise check.fail("at least one [[challenges]] table is required", "challenges")
    challenges: list[ChallengeSpec] = []
    for index, raw in enumerate(raw_challenges):
        challenge = _challenge(check, raw, index, path.parent, str(timezone))
        if any(c.slug == challenge.slug for c in challenges):
            raise check.fail(f"slug {challenge.slug!r} is used by two challenges",
                             "challenges", index, "slug")
        challenges.append(challenge)

    raw_teams = doc.get("teams", [])
    if not isinstance(raw_teams, list):
        raise check.fail("teams must be [[teams]] tables", "teams")
    slugs = {c.slug for c in challenges}
    teams: list[TeamSpec] = []
    for index, raw in enumerate(raw_teams):
        team = _team(check, raw, index, slugs)
        if any(t.name.casefold() == team.name.casefold() for t in teams):
            raise check.fail(f"team name {team.name!r} is used twice", "teams", index, "name")
        teams.append(team)

    collecting = {c.slug for c in challenges if c.inclusion is not None}
    centers = _members(check, doc, "centers", CENTER_KEYS, collecting, _center)
    reviewers = _members(check, doc, "reviewers", REVIEWER_KEYS, collecting, _reviewer)
    ae_titles: dict[str, str] = {}
    for index, center in enumerate(centers):
        if center.ae_title is None:
            continue
        if center.ae_title in ae_titles:
            owner = ae_titles[center.ae_title]
            raise check.fail(f"AE title {center.ae_title!r} is already {owner!r}'s; the DICOM "
                             "node knows a center by its own", "centers", index, "ae_title")
        ae_titles[center.ae_title] = center.name

    given: list[tuple[str | None, str, int | None, str]] = [
        (organizer_token, "access", None, "organizer_token"),
        (jury_token, "access", None, "jury_token")]
    given += [(t.token, "teams", i, "token") for i, t in enumerate(teams)]
    given += [(c.token, "centers", i, "token") for i, c in enumerate(centers)]
    given += [(r.token, "reviewers", i, "token") for i, r in enumerate(reviewers)]
    seen: set[str] = set()
    for token, table, position, key in given:
        if token is None:
            continue
        if token in seen:
            raise check.fail("this token is already given to another role; every role "
                             "needs its own", table, position, key)
        seen.add(token)

    return EventSpec(path=path, name=str(name), timezone=str(timezone),
                     challenges=tuple(challenges), teams=tuple(teams),
                     organizer_token=organizer_token, jury_token=jury_token,
                     centers=tuple(centers), reviewers=tuple(reviewers),
                     registration=_registration(check, doc, path.parent, str(timezone)))


def check_truth(event: EventSpec) -> EventSpec:
    """Loads every challenge's truth; raises EventFileError naming the challenge's `truth` key.

    Kept apart from parse_event: only commands that score (serve, demo, score, rescore) pay
    for reading the truth; `tokens`, `export` and `check-release` need the file's shape only.
    The evaluators own the truth formats; a truth they cannot use refuses the event now, not at
    the first upload. Loaded truth is cached, so scoring does not read it again.
    """
    from server.evaluators import TruthError, load_truth

    check = _Checker(event.path, event.path.read_text(encoding="utf-8"))
    for index, challenge in enumerate(event.challenges):
        if challenge.truth_set is not None and not challenge.truth.exists():
            continue  # written from its set when the split is made (docs/datasets.md)
        try:
            load_truth(challenge.kind, challenge.truth)
        except TruthError as exc:
            raise check.fail(str(exc), "challenges", index, "truth") from None
    return event


def _token(check: _Checker, doc: dict[str, Any], table: str, index: int | None,
           key: str) -> str | None:
    token = check.string(doc, table, key, index, required=False)
    if token is not None and (len(token) < MIN_GIVEN_TOKEN_LENGTH or token != token.strip()):
        raise check.fail(f"{key} must be at least {MIN_GIVEN_TOKEN_LENGTH} characters without "
                         "surrounding spaces; leave it out to have one generated",
                         table, index, key)
    return token


def _challenge(check: _Checker, raw: Any, index: int, base: Path, timezone: str = "UTC"
               ) -> ChallengeSpec:
    table = "challenges"
    if not isinstance(raw, dict):
        raise check.fail("each challenge must be a [[challenges]] table", table, index)
    # The keys of every challenge, and those a kind adds (checked against the kind below).
    kind_keys = set().union(*(k.options for k in kinds.all_kinds().values()))
    check.table(raw, table, CHALLENGE_KEYS | kind_keys, index)
    slug = str(check.string(raw, table, "slug", index))
    if not SLUG_RE.match(slug):
        raise check.fail(f"slug {slug!r} may only use a-z, 0-9 and '-'", table, index, "slug")
    title = str(check.string(raw, table, "title", index))
    kind = str(check.string(raw, table, "kind", index, choices=kinds.names()))
    of_kind = kinds.get(kind)
    duration = check.number(raw, table, "duration_minutes", index, default=None, minimum=0,
                            strict=True)
    assert duration is not None
    truth_set, release_set = _from_set(raw, "truth"), _from_set(raw, "release")
    if truth_set is not None:
        truth = Path(str(raw["truth"]))  # where it is built: server/dataset/final.py resolve()
    else:
        found = _path(check, raw, table, index, "truth", base, required=True)
        assert found is not None
        truth = found
        if not (truth.is_dir() if of_kind.truth_shape == "folder" else truth.is_file()):
            raise check.fail(f"truth {truth} must be {of_kind.truth_text} for a {kind} "
                             "challenge", table, index, "truth")
    release = (Path(str(raw["release"])) if release_set is not None
               else _path(check, raw, table, index, "release", base, required=False))
    counts = str(check.string(raw, table, "counts", index, required=False,
                              choices=tuple(c.value for c in Counts), default="last"))
    max_submissions = None
    if "max_submissions" in raw:
        value = raw["max_submissions"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise check.fail(f"max_submissions must be a whole number >= 1, got {value!r}",
                             table, index, "max_submissions")
        max_submissions = value
    team_feedback = str(check.string(raw, table, "team_feedback", index, required=False,
                                     choices=tuple(f.value for f in Feedback), default="status"))
    leaderboard = str(check.string(raw, table, "leaderboard", index, required=False,
                                   choices=tuple(v.value for v in Visibility), default="jury"))
    freeze = check.number(raw, table, "freeze_minutes", index, default=0.0, minimum=0,
                          strict=False)
    assert freeze is not None
    if freeze * 60 > duration * 60:
        raise check.fail(f"freeze_minutes ({freeze:g}) is longer than the challenge "
                         f"({duration:g} minutes)", table, index, "freeze_minutes")
    grace = check.number(raw, table, "upload_grace_seconds", index, default=30.0, minimum=0,
                         strict=False)
    assert grace is not None
    sealed = raw.get("sealed", False)
    if not isinstance(sealed, bool):
        raise check.fail(f"sealed must be true or false, got {sealed!r}", table, index, "sealed")
    if sealed and release is None:
        raise check.fail("sealed = true needs a release to seal", table, index, "sealed")
    max_upload = check.number(raw, table, "max_upload_mb", index,
                              default=of_kind.max_upload_mb, minimum=0, strict=True)
    assert max_upload is not None
    quota = check.number(raw, table, "storage_quota_mb", index, default=None, minimum=0,
                         strict=False)
    if quota is not None and quota < max_upload:
        raise check.fail(f"storage_quota_mb ({quota:g}) is smaller than max_upload_mb "
                         f"({max_upload:g}): a team could not store even one upload",
                         table, index, "storage_quota_mb")
    options = _kind_options(check, raw, index, of_kind)
    hu = options.get("hu_window")
    hu_window = (float(hu[0]), float(hu[1])) if hu is not None else None
    ranking = _ranking(check, raw, index, of_kind)
    inclusion = _inclusion(check, raw, index)
    splits = _splits(check, raw, index)
    if splits is not None and inclusion is None:
        raise check.fail("splits needs an [challenges.inclusion] table: a question is split "
                         "from the exams it collects", "challenges", index, "splits")
    _check_from_set(check, index, kind, splits, truth_set, release_set)
    batches = _batches(check, raw, index, splits, (truth_set, release_set), timezone)
    return ChallengeSpec(
        slug=slug, title=title, kind=kind, duration=timedelta(minutes=duration), truth=truth,
        release=release, counts=Counts(counts), max_submissions=max_submissions,
        team_feedback=Feedback(team_feedback), leaderboard=Visibility(leaderboard),
        freeze_window=timedelta(minutes=freeze), upload_grace=timedelta(seconds=grace),
        hu_window=hu_window, max_upload_bytes=int(max_upload * MIB), sealed=sealed,
        storage_quota_bytes=None if quota is None else int(quota * MIB),
        ranking=ranking, options=options, inclusion=inclusion, splits=splits,
        truth_set=truth_set, release_set=release_set, batches=batches,
    )


def _kind_options(check: _Checker, raw: dict[str, Any], index: int, of_kind: kinds.Kind
                  ) -> dict[str, Any]:
    """The kind options the challenge sets, as JSON values, each checked by the scorer's own
    options (ScoringOptions) as well as here."""
    table = "challenges"
    options: dict[str, Any] = {}
    for key in sorted(set().union(*(k.options for k in kinds.all_kinds().values()))):
        if key not in raw:
            continue
        value = raw[key]
        if key not in of_kind.options:
            allowed = [k for k, v in kinds.all_kinds().items() if key in v.options]
            raise check.fail(f"{key} applies to {' and '.join(allowed)} challenges only",
                             table, index, key)
        if key == "hu_window":
            ok = (isinstance(value, list) and len(value) == 2
                  and all(_finite(v) for v in value) and value[0] < value[1])
            if not ok:
                raise check.fail(f"hu_window must be [low, high] with low < high, "
                                 f"got {value!r}", table, index, key)
            value = [float(value[0]), float(value[1])]
        elif not (_finite(value) or isinstance(value, bool | str)
                  or (isinstance(value, list) and all(_finite(v) for v in value))):
            raise check.fail(f"{key} must be a number, true/false, text or a list of numbers, "
                             f"got {value!r}", table, index, key)
        try:
            scoring_options({key: value})
        except (TypeError, ValueError) as exc:
            raise check.fail(f"{key} = {value!r} is refused by the scorer: {exc}",
                             table, index, key) from None
        options[key] = value
    return options


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _ranking(check: _Checker, raw: dict[str, Any], index: int, of_kind: kinds.Kind
             ) -> dict[str, Any] | None:
    """The challenge's declared ranking, normalised (every default written out); None: the
    kind's own rule."""
    if "ranking" not in raw:
        return None
    value = raw["ranking"]
    line = check.lines.of("challenges", index, "ranking")
    if not isinstance(value, dict):
        raise EventFileError(str(check.path), "ranking must be a table: ranking = {scheme = "
                             "\"sum-of-ranks\", metrics = [...], tie_break = \"...\"}",
                             key=f"challenges[{index}].ranking", line=line)
    try:
        rule = of_kind.ranking_from(value)
        of_kind.with_ranking(rule)
    except RankingDeclarationError as exc:
        raise EventFileError(str(check.path), f"{exc} (kind {of_kind.name})",
                             key=f"challenges[{index}].ranking.{exc.key}", line=line) from None
    except ValueError as exc:
        raise EventFileError(str(check.path), str(exc), key=f"challenges[{index}].ranking",
                             line=line) from None
    return rule.declaration()


def _path(check: _Checker, raw: dict[str, Any], table: str, index: int, key: str, base: Path,
          *, required: bool) -> Path | None:
    value = check.string(raw, table, key, index, required=required)
    if value is None:
        return None
    path = (base / value).resolve()
    if not path.exists():
        raise check.fail(f"{key} {value!r} not found (looked for {path})", table, index, key)
    return path


def _team(check: _Checker, raw: Any, index: int, slugs: set[str]) -> TeamSpec:
    table = "teams"
    if not isinstance(raw, dict):
        raise check.fail("each team must be a [[teams]] table", table, index)
    check.table(raw, table, TEAM_KEYS, index)
    name = str(check.string(raw, table, "name", index)).strip()
    challenges = raw.get("challenges", [])
    if not isinstance(challenges, list) or not all(isinstance(c, str) for c in challenges):
        raise check.fail("challenges must be a list of challenge slugs", table, index,
                         "challenges")
    for slug in challenges:
        if slug not in slugs:
            raise check.fail(f"team {name!r} names unknown challenge {slug!r}; known: "
                             f"{', '.join(sorted(slugs))}", table, index, "challenges")
    if len(set(challenges)) != len(challenges):
        raise check.fail("a challenge is listed twice", table, index, "challenges")
    token = _token(check, raw, table, index, "token")
    return TeamSpec(name=name, challenges=tuple(challenges), token=token)


def _inclusion(check: _Checker, raw: dict[str, Any], index: int) -> InclusionSpec | None:
    """`[challenges.inclusion]`: None when the question collects no exams through Podium."""
    if "inclusion" not in raw:
        return None
    from server.inclusion.criteria import CriteriaError, parse_criteria

    table = "challenges.inclusion"
    doc = raw["inclusion"]
    if not isinstance(doc, dict):
        raise check.fail("inclusion must be a table: [challenges.inclusion]", "challenges", index,
                         "inclusion")
    check.table(doc, table, INCLUSION_KEYS, index)
    target = doc.get("target")
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise check.fail(f"target must be a whole number of exams >= 1, got {target!r}"
                         if "target" in doc else "missing required key 'target' (the exams "
                         "the question needs)", table, index, "target" if "target" in doc
                         else None)
    margin = check.number(doc, table, "margin", index, default=0.10, minimum=0, strict=False)
    assert margin is not None
    if margin > 1:
        raise check.fail(f"margin is a fraction of the target (0.1 asks 10 % more), got "
                         f"{margin:g}", table, index, "margin")
    keep = doc.get("keep", ["A", "B", "C"])
    if (not isinstance(keep, list) or not keep or len(set(keep)) != len(keep)
            or not all(isinstance(g, str) and g in GRADES for g in keep)):
        raise check.fail(f"keep must list the quality classes kept, among A, B, C, D, got "
                         f"{keep!r}", table, index, "keep")
    reading = str(check.string(doc, table, "reading", index, required=False,
                               choices=tuple(r.value for r in Reading), default="single"))
    dates = str(check.string(doc, table, "dates", index, required=False,
                             choices=("shift", "keep", "remove"), default="shift"))
    criteria_doc = doc.get("criteria")
    if not isinstance(criteria_doc, dict):
        raise check.fail("missing [challenges.inclusion.criteria] (what an exam must be)",
                         table, index, "criteria" if "criteria" in doc else None)
    where = f"challenges[{index}].inclusion.criteria"
    try:
        criteria = parse_criteria(criteria_doc, where)
    except CriteriaError as exc:
        relative = exc.key[len(where) + 1:].split(".") if exc.key != where else []
        head = relative[0] if relative else None
        if head in ("nodules", "clinical") and len(relative) > 1:
            line = check.lines.of(f"challenges.inclusion.criteria.{head}", index, relative[1])
        else:
            line = check.lines.of("challenges.inclusion.criteria", index, head)
        raise EventFileError(str(check.path), exc.detail, key=exc.key, line=line) from None
    return InclusionSpec(target=target, margin=margin, keep=tuple(g for g in GRADES if g in keep),
                         reading=Reading(reading), dates=dates, criteria=criteria,
                         declared=doc)


def _splits(check: _Checker, raw: dict[str, Any], index: int) -> SplitSpec | None:
    """`[challenges.splits]`: None when the question is not split by Podium."""
    if "splits" not in raw:
        return None
    table = "challenges.splits"
    doc = raw["splits"]
    if not isinstance(doc, dict):
        raise check.fail("splits must be a table: [challenges.splits]", "challenges", index,
                         "splits")
    check.table(doc, table, SPLIT_KEYS, index)
    seed = doc.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise check.fail(f"seed must be a whole number (the same seed gives the same split), "
                         f"got {seed!r}" if "seed" in doc else "missing required key 'seed' "
                         "(a whole number: the same seed gives the same split)", table, index,
                         "seed" if "seed" in doc else None)
    sets = doc.get("sets")
    example = "sets = {training = 513, validation = 512, test = 500}, or fractions"
    if not isinstance(sets, dict) or not sets:
        raise check.fail(f"sets must name the sets in order with their sizes: {example}",
                         table, index, "sets" if "sets" in doc else None)
    amounts = list(sets.values())
    whole = all(isinstance(a, int) and not isinstance(a, bool) for a in amounts)
    fractions = all(isinstance(a, float) for a in amounts)
    if not (whole or fractions):
        listed = ", ".join(f"{n} = {a!r}" for n, a in sets.items())
        raise check.fail(f"sets must all be sizes in exams (513) or all fractions (0.34), "
                         f"not a mix: {listed}", table, index, "sets")
    for name, amount in sets.items():
        if not SET_NAME_RE.match(name):
            raise check.fail(f"set name {name!r} may only use a-z, 0-9, '-' and '_' (at most "
                             "40)", table, index, "sets")
        if (whole and amount < 1) or (fractions and not 0 < amount <= 1):
            raise check.fail(f"set {name} must be a size >= 1 or a fraction in (0, 1], got "
                             f"{amount!r}", table, index, "sets")
    if fractions and sum(amounts) > 1 + 1e-9:
        raise check.fail(f"the fractions of sets add up to {sum(amounts):g}, more than 1",
                         table, index, "sets")
    stratify = doc.get("stratify", ["center"])
    allowed = ("center", "class", "value")
    if (not isinstance(stratify, list) or len(set(stratify)) != len(stratify)
            or not all(isinstance(k, str) and k in allowed for k in stratify)):
        raise check.fail(f"stratify must list among {', '.join(allowed)}, got {stratify!r}",
                         table, index, "stratify")
    if "class" in stratify and "value" in stratify:
        raise check.fail("stratify by class or by value, not both", table, index, "stratify")
    value = check.string(doc, table, "value", index, required="value" in stratify)
    bins = doc.get("bins", [])
    if "value" in stratify:
        good = (isinstance(bins, list) and len(bins) >= 2 and all(_finite(b) for b in bins)
                and all(a < b for a, b in zip(bins, bins[1:], strict=False)))
        if not good:
            raise check.fail(f"bins must be increasing edges, at least two, e.g. [0, 3, 6, "
                             f"10], got {bins!r}", table, index, "bins" if "bins" in doc
                             else None)
    elif "value" in doc or "bins" in doc:
        raise check.fail("value and bins are for stratify = [..., \"value\"]", table, index,
                         "value" if "value" in doc else "bins")
    return SplitSpec(seed=seed, sets=tuple(sets.items()), stratify=tuple(stratify),
                     value=value, bins=tuple(float(b) for b in bins))


def _from_set(raw: dict[str, Any], key: str) -> str | None:
    """The set a `truth` or `release` of "set:NAME" names; None for a path."""
    value = raw.get(key)
    if isinstance(value, str) and value.startswith("set:"):
        return value[len("set:"):].strip()
    return None


def truth_from_set() -> tuple[str, ...]:
    """The kinds whose truth Podium writes from a set: those with a truth writer
    (`Kind.write_truth`, server/dataset/final.py)."""
    return tuple(n for n, k in kinds.all_kinds().items() if k.write_truth is not None)


def _check_from_set(check: _Checker, index: int, kind: str, splits: SplitSpec | None,
                    truth_set: str | None, release_set: str | None) -> None:
    for key, name in (("truth", truth_set), ("release", release_set)):
        if name is None:
            continue
        if splits is None:
            raise check.fail(f"{key} = \"set:{name}\" needs a [challenges.splits] table "
                             "naming that set", "challenges", index, key)
        names = [n for n, _ in splits.sets]
        if name not in names:
            raise check.fail(f"{key} names set {name!r}, which [challenges.splits] does not "
                             f"declare; its sets: {', '.join(names)}", "challenges", index, key)
    if truth_set is not None and kind not in (writable := truth_from_set()):
        raise check.fail(f"a {kind} truth cannot be written from a set (only "
                         f"{', '.join(writable)}): give its truth as a path",
                         "challenges", index, "truth")
    if truth_set is not None and kind == "regression" and (splits is None
                                                           or splits.value is None):
        raise check.fail("a regression truth from a set needs [challenges.splits] value: the "
                         "clinical field it is (stratify = [\"center\", \"value\"])",
                         "challenges", index, "truth")


def _batches(check: _Checker, raw: dict[str, Any], index: int, splits: SplitSpec | None,
             final_sets: tuple[str | None, str | None], timezone: str
             ) -> tuple[BatchSpec, ...]:
    """`[[challenges.batches]]`: each a part of a training set of the question's split."""
    listed = raw.get("batches", [])
    if not isinstance(listed, list) or not all(isinstance(b, dict) for b in listed):
        raise check.fail("batches must be [[challenges.batches]] tables", "challenges", index,
                         "batches")
    if listed and splits is None:
        raise check.fail("batches need a [challenges.splits] table: a batch is a part of one "
                         "of its sets", "challenges", index, "batches")
    names = [n for n, _ in splits.sets] if splits is not None else []
    batches: list[BatchSpec] = []
    for position, doc in enumerate(listed):
        def fail(message: str, key: str | None = None, position: int = position
                 ) -> EventFileError:
            # The key named with both indexes: challenges[i].batches[j].opens
            dotted = f"challenges[{index}].batches[{position}]" + (f".{key}" if key else "")
            return EventFileError(str(check.path), message, key=dotted,
                                  line=_batch_line(check, index, position, key))

        for key in doc:
            if key not in BATCH_KEYS:
                raise fail(f"unknown key {key!r}; allowed: {', '.join(sorted(BATCH_KEYS))}",
                           key)
        name = doc.get("name")
        if not isinstance(name, str) or not SET_NAME_RE.match(name):
            raise fail(f"name must use a-z, 0-9, '-' and '_' (at most 40), e.g. \"batch-1\", "
                       f"got {name!r}" if "name" in doc else "missing required key 'name' "
                       "(e.g. \"batch-1\")", "name" if "name" in doc else None)
        if any(b.name == name for b in batches):
            raise fail(f"batch name {name!r} is used twice in this challenge", "name")
        set_name = doc.get("set")
        if not isinstance(set_name, str) or set_name not in names:
            raise fail(f"set must name a set of [challenges.splits] ({', '.join(names)}), got "
                       f"{set_name!r}" if "set" in doc else "missing required key 'set' (the "
                       "training set the batch is a part of)", "set" if "set" in doc else None)
        if set_name in HELD_SETS or set_name in final_sets:
            raise fail(f"set {set_name!r} is held back for the final day: its truth never goes "
                       "out in a batch; batches are parts of a training set", "set")
        parts = doc.get("parts", 1)
        part = doc.get("part", 1)
        if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= 100:
            raise fail(f"parts must be a whole number from 1 to 100 (the set cut into that "
                       f"many batches), got {parts!r}", "parts")
        if isinstance(part, bool) or not isinstance(part, int) or not 1 <= part <= parts:
            raise fail(f"part must be a whole number from 1 to parts ({parts}), got {part!r}",
                       "part")
        if ("part" in doc) != ("parts" in doc):
            raise fail("part and parts go together: part = 1 and parts = 2 is the first "
                       "half of the set", "part" if "part" in doc else "parts")
        for other in batches:
            if other.set == set_name and (other.parts, other.part) == (parts, part):
                raise fail(f"batch {other.name!r} is already part {part} of {parts} of set "
                           f"{set_name!r}", "part" if "part" in doc else "set")
        opens = doc.get("opens")
        if opens is not None:
            if not isinstance(opens, datetime):
                raise fail(f"opens must be a date and time such as 2019-09-11T09:00:00 (the "
                           f"event's time zone, {timezone}), or left out for a batch an "
                           f"organizer opens, got {opens!r}", "opens")
            if opens.tzinfo is None:
                opens = opens.replace(tzinfo=ZoneInfo(timezone))
        sealed = doc.get("sealed", False)
        if not isinstance(sealed, bool):
            raise fail(f"sealed must be true or false, got {sealed!r}", "sealed")
        batches.append(BatchSpec(name=name, set=set_name, part=part, parts=parts, opens=opens,
                                 sealed=sealed))
    return tuple(batches)


def _batch_line(check: _Checker, index: int, position: int, key: str | None) -> int | None:
    """The line of a batch's key: `[[challenges.batches]]` tables are counted through the
    whole file, so the batch is found among those between its challenge's header and the
    next challenge's."""
    headers = check.lines.headers
    start = headers.get(("challenges", index), 0)
    end = headers.get(("challenges", index + 1), 1 << 30)
    mine = sorted((line, k) for (name, k), line in headers.items()
                  if name == "challenges.batches" and k is not None and start < line < end)
    if position >= len(mine):
        return headers.get(("challenges", index))
    return check.lines.of("challenges.batches", mine[position][1], key)


def _members(check: _Checker, doc: dict[str, Any], table: str, allowed: set[str],
             collecting: set[str], read: Any) -> list[Any]:
    raw = doc.get(table, [])
    if not isinstance(raw, list):
        raise check.fail(f"{table} must be [[{table}]] tables", table)
    members: list[Any] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise check.fail(f"each of {table} must be a [[{table}]] table", table, index)
        check.table(entry, table, allowed, index)
        name = str(check.string(entry, table, "name", index)).strip()
        if any(m.name.casefold() == name.casefold() for m in members):
            raise check.fail(f"name {name!r} is used twice", table, index, "name")
        slugs = entry.get("challenges", [])
        if (not isinstance(slugs, list) or not slugs
                or not all(isinstance(c, str) for c in slugs)):
            raise check.fail("challenges must list the questions, by slug", table, index,
                             "challenges")
        for slug in slugs:
            if slug not in collecting:
                raise check.fail(f"{name!r} names {slug!r}, which collects no exams; questions "
                                 f"with an [challenges.inclusion] table: "
                                 f"{', '.join(sorted(collecting)) or 'none'}",
                                 table, index, "challenges")
        if len(set(slugs)) != len(slugs):
            raise check.fail("a challenge is listed twice", table, index, "challenges")
        token = _token(check, entry, table, index, "token")
        members.append(read(check, entry, index, name, tuple(slugs), token))
    return members


def _center(check: _Checker, entry: dict[str, Any], index: int, name: str,
            slugs: tuple[str, ...], token: str | None) -> CenterSpec:
    ae_title = check.string(entry, "centers", "ae_title", index, required=False)
    if ae_title is not None:
        ae_title = ae_title.strip()
        if not AE_TITLE_RE.match(ae_title) or "\\" in ae_title:
            raise check.fail(f"ae_title must be 1 to 16 printable ASCII characters without a "
                             f"backslash (DICOM's AE), got {ae_title!r}", "centers", index,
                             "ae_title")
    raw = entry.get("email", [])
    addresses = [raw] if isinstance(raw, str) else raw
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise check.fail("email must be an address or a list of addresses", "centers", index,
                         "email")
    emails = tuple(a.strip() for a in addresses)
    for address in emails:
        if not EMAIL_RE.match(address):
            raise check.fail(f"email must be an address such as imaging@chu.example, got "
                             f"{address!r}", "centers", index, "email")
    return CenterSpec(name=name, challenges=slugs, token=token, ae_title=ae_title,
                      email=emails)


def _reviewer(check: _Checker, entry: dict[str, Any], index: int, name: str,
              slugs: tuple[str, ...], token: str | None) -> ReviewerSpec:
    return ReviewerSpec(name=name, challenges=slugs, token=token)


def _registration(check: _Checker, doc: dict[str, Any], base: Path, timezone: str
                  ) -> RegistrationSpec | None:
    """`[registration]`: None when teams do not register themselves."""
    if "registration" not in doc:
        return None
    table = "registration"
    raw = doc["registration"]
    if not isinstance(raw, dict):
        raise check.fail("registration must be a table: [registration]", table)
    check.table(raw, table, REGISTRATION_KEYS)
    opens = _moment(check, raw, "opens", timezone)
    closes = _moment(check, raw, "closes", timezone)
    if closes <= opens:
        raise check.fail("closes must be after opens", table, None, "closes")
    counts: dict[str, int] = {}
    for key, default in (("min_members", 3), ("max_members", 15)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise check.fail(f"{key} must be a whole number of members from 1 to 100, got "
                             f"{value!r}", table, None, key)
        counts[key] = value
    if counts["max_members"] < counts["min_members"]:
        raise check.fail("max_members must be at least min_members", table, None, "max_members")
    choices = {"required_roles": MEMBER_ROLES, "required_affiliations": AFFILIATION_KINDS}
    lists: dict[str, tuple[str, ...]] = {}
    defaults: dict[str, list[str]] = {"required_roles": ["radiologist", "data-scientist"],
                                      "required_affiliations": ["lab", "company"]}
    for key, fallback in defaults.items():
        listed = raw.get(key, fallback)
        if (not isinstance(listed, list) or len(set(listed)) != len(listed)
                or not all(isinstance(v, str) and v in choices[key] for v in listed)):
            raise check.fail(f"{key} must list values among {', '.join(choices[key])}, got "
                             f"{listed!r}", table, None, key)
        lists[key] = tuple(listed)
    charter = _registration_file(check, raw, "charter", base)
    version = check.string(raw, table, "charter_version")
    pages = raw.get("pages", [])
    if not isinstance(pages, list) or not all(isinstance(p, str) for p in pages):
        raise check.fail("pages must list Markdown files of the event folder", table, None,
                         "pages")
    return RegistrationSpec(
        opens=opens, closes=closes, charter=charter, charter_version=str(version).strip(),
        min_members=counts["min_members"], max_members=counts["max_members"],
        required_roles=lists["required_roles"],
        required_affiliations=lists["required_affiliations"],
        pages=tuple(_registration_file(check, {"pages": p}, "pages", base) for p in pages))


def _moment(check: _Checker, raw: dict[str, Any], key: str, timezone: str) -> datetime:
    """A TOML date-time; without an offset, on the event's wall clock."""
    if key not in raw:
        raise check.fail(f"missing required key {key!r}", "registration")
    value = raw[key]
    if not isinstance(value, datetime):
        raise check.fail(f"{key} must be a date and time such as 2019-09-01T09:00:00 (the "
                         f"event's time zone, {timezone}), got {value!r}", "registration", None,
                         key)
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(timezone))


def _registration_file(check: _Checker, raw: dict[str, Any], key: str, base: Path) -> Path:
    value = check.string(raw, "registration", key)
    path = (base / str(value)).resolve()
    if not path.is_relative_to(base.resolve()):
        raise check.fail(f"{key} {value!r} must be inside the event folder", "registration",
                         None, key)
    if path.suffix.lower() != ".md" or not path.is_file():
        raise check.fail(f"{key} {value!r} must be a Markdown file (.md) of the event folder "
                         f"(looked for {path})", "registration", None, key)
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise check.fail(f"{key} {value!r} is not UTF-8", "registration", None, key) from None
    return path
