"""The seed's Tables 2 and 3, live (docs/centers.md): what each center sent for each question and
what became of it, and each question's progress to its target.

An exam counts once, as its latest version: one replaced by a resend (excluded as `resent`) is
not counted, its replacement is. Each table is one SQL statement, whatever the number of centers.

- Table 2 (`center_table`): per center and question, received, kept, excluded (by reason, and
  the criteria exclusions by the code of the violation rejected), still in the flow, kept by
  class A–D.
- Table 3 (`question_table`): the same per question, with the target, the target with its
  margin (`InclusionSpec.wanted`), and the best inclusion center: the one with the most exams
  kept; a tie goes to the center that reached that count first (its last kept exam was kept
  earlier), then to the name in alphabetical order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from server.event import GRADES, InclusionSpec

REASONS = ("deidentification", "criteria", "quality", "withdrawn")

# Exams as counted: a resent exam is its replacement.
_COUNTED = "SELECT * FROM exam WHERE NOT (stage = 'excluded' AND exclusion = 'resent')"
_TALLY = """count(e.id) AS received,
            count(*) FILTER (WHERE e.stage = 'kept') AS kept,
            count(*) FILTER (WHERE e.stage = 'excluded') AS excluded,
            count(*) FILTER (WHERE e.exclusion = 'deidentification') AS deidentification,
            count(*) FILTER (WHERE e.exclusion = 'criteria') AS criteria,
            count(*) FILTER (WHERE e.exclusion = 'quality') AS quality,
            count(*) FILTER (WHERE e.exclusion = 'withdrawn') AS withdrawn,
            count(*) FILTER (WHERE e.stage = 'kept' AND e.grade = 'A') AS kept_a,
            count(*) FILTER (WHERE e.stage = 'kept' AND e.grade = 'B') AS kept_b,
            count(*) FILTER (WHERE e.stage = 'kept' AND e.grade = 'C') AS kept_c,
            count(*) FILTER (WHERE e.stage = 'kept' AND e.grade = 'D') AS kept_d"""
# Criteria exclusions by the code of the violation rejected (an exam rejected for two codes
# counts under each).
_CODES = """codes AS (
    SELECT e.center_id, e.challenge_id, v.code, count(DISTINCT e.id) AS n
    FROM counted e JOIN violation v ON v.exam_id = e.id AND v.state = 'rejected'
    WHERE e.exclusion = 'criteria' GROUP BY 1, 2, 3)"""


@dataclass(frozen=True)
class Tally:
    received: int = 0
    kept: int = 0
    excluded: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)   # REASONS, each present
    by_code: dict[str, int] = field(default_factory=dict)     # criteria exclusions
    by_class: dict[str, int] = field(default_factory=dict)    # kept, per grade A–D

    @property
    def pending(self) -> int:
        """Still on their way: being de-identified, checked, or with the experts."""
        return self.received - self.kept - self.excluded

    @property
    def kept_percent(self) -> int | None:
        return round(100 * self.kept / self.received) if self.received else None

    @classmethod
    def of(cls, row: asyncpg.Record, by_code: Any) -> Tally:
        codes = json.loads(by_code) if isinstance(by_code, str) else (by_code or {})
        return cls(received=row["received"], kept=row["kept"], excluded=row["excluded"],
                   by_reason={r: row[r] for r in REASONS},
                   by_code=dict(sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))),
                   by_class={g: row[f"kept_{g.lower()}"] for g in GRADES})

    def to_json(self) -> dict[str, Any]:
        return {"received": self.received, "kept": self.kept, "excluded": self.excluded,
                "pending": self.pending, "kept_percent": self.kept_percent,
                "excluded_by_reason": self.by_reason, "excluded_by_code": self.by_code,
                "kept_by_class": self.by_class}


def add(tallies: list[Tally]) -> Tally:
    codes: dict[str, int] = {}
    for t in tallies:
        for code, n in t.by_code.items():
            codes[code] = codes.get(code, 0) + n
    return Tally(received=sum(t.received for t in tallies), kept=sum(t.kept for t in tallies),
                 excluded=sum(t.excluded for t in tallies),
                 by_reason={r: sum(t.by_reason.get(r, 0) for t in tallies) for r in REASONS},
                 by_code=dict(sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))),
                 by_class={g: sum(t.by_class.get(g, 0) for t in tallies) for g in GRADES})


@dataclass(frozen=True)
class CenterRow:
    """Table 2: one center's exams for one question."""

    center_id: int
    center: str
    challenge: str
    tally: Tally

    def to_json(self) -> dict[str, Any]:
        return {"center_id": self.center_id, "center": self.center,
                "challenge": self.challenge, **self.tally.to_json()}


@dataclass(frozen=True)
class QuestionRow:
    """Table 3: one question's exams, its progress and its best inclusion center."""

    challenge: str
    title: str
    tally: Tally
    target: int
    wanted: int                 # the target with its margin
    best_center: str | None     # None until a center has an exam kept
    best_kept: int

    @property
    def progress(self) -> float:
        """Kept exams as a fraction of the target with its margin (may pass 1)."""
        return self.tally.kept / self.wanted if self.wanted else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"challenge": self.challenge, "title": self.title, **self.tally.to_json(),
                "target": self.target, "wanted": self.wanted,
                "target_percent": round(100 * self.tally.kept / self.target)
                if self.target else None,
                "wanted_percent": round(100 * self.progress),
                "best_center": self.best_center, "best_center_kept": self.best_kept}


async def center_table(conn: asyncpg.Connection, *, center_id: int | None = None
                       ) -> list[CenterRow]:
    """Table 2: every (center, question) pair the event declares or an exam was sent for;
    by question, then most exams received first (as the seed lists them)."""
    rows = await conn.fetch(
        f"""WITH counted AS ({_COUNTED}), {_CODES},
            by_code AS (SELECT center_id, challenge_id, jsonb_object_agg(code, n) AS by_code
                        FROM codes GROUP BY 1, 2),
            pairs AS (SELECT center_id, challenge_id FROM center_question
                      UNION SELECT center_id, challenge_id FROM counted)
            SELECT p.center_id, ce.name AS center, c.slug, bc.by_code, {_TALLY}
            FROM pairs p JOIN center ce ON ce.id = p.center_id
            JOIN challenge c ON c.id = p.challenge_id
            LEFT JOIN counted e ON e.center_id = p.center_id AND e.challenge_id = p.challenge_id
            LEFT JOIN by_code bc ON bc.center_id = p.center_id
                                AND bc.challenge_id = p.challenge_id
            WHERE $1::int IS NULL OR p.center_id = $1
            GROUP BY p.center_id, ce.name, c.id, c.slug, bc.by_code
            ORDER BY c.id, count(e.id) DESC, ce.name""",  # noqa: S608
        center_id)
    return [CenterRow(r["center_id"], r["center"], r["slug"], Tally.of(r, r["by_code"]))
            for r in rows]


async def question_table(conn: asyncpg.Connection) -> list[QuestionRow]:
    """Table 3: every question that collects exams, in the event's order."""
    rows = await conn.fetch(
        f"""WITH counted AS ({_COUNTED}), {_CODES},
            by_code AS (SELECT challenge_id, jsonb_object_agg(code, n) AS by_code
                        FROM (SELECT challenge_id, code, sum(n) AS n FROM codes GROUP BY 1, 2) s
                        GROUP BY 1),
            per_center AS (
                SELECT e.challenge_id, ce.name, count(*) AS kept, max(e.updated_at) AS reached
                FROM counted e JOIN center ce ON ce.id = e.center_id
                WHERE e.stage = 'kept' GROUP BY 1, 2),
            best AS (
                SELECT DISTINCT ON (challenge_id) challenge_id, name, kept FROM per_center
                ORDER BY challenge_id, kept DESC, reached, name)
            SELECT c.slug, c.title, c.inclusion, bc.by_code, b.name AS best, b.kept AS best_kept,
                   {_TALLY}
            FROM challenge c LEFT JOIN counted e ON e.challenge_id = c.id
            LEFT JOIN by_code bc ON bc.challenge_id = c.id
            LEFT JOIN best b ON b.challenge_id = c.id
            WHERE c.inclusion IS NOT NULL
            GROUP BY c.id, c.slug, c.title, c.inclusion, bc.by_code, b.name, b.kept
            ORDER BY c.id""")  # noqa: S608
    found = []
    for r in rows:
        declared = json.loads(r["inclusion"])
        spec = InclusionSpec(target=int(declared["target"]),
                             margin=float(declared.get("margin", InclusionSpec.margin)))
        found.append(QuestionRow(r["slug"], r["title"], Tally.of(r, r["by_code"]),
                                 spec.target, spec.wanted, r["best"], r["best_kept"] or 0))
    return found


def tables_json(centers: list[CenterRow], questions: list[QuestionRow]) -> dict[str, Any]:
    """Both tables as GET /api/v1/inclusion/tables answers them, with the totals row."""
    return {"table2": [c.to_json() for c in centers],
            "table3": [q.to_json() for q in questions],
            "total": add([q.tally for q in questions]).to_json()}
