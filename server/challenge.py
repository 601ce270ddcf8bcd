"""How a challenge is shown to clients (SPEC §5 fields), from its row and the database's now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from server.countdown import Countdown, phase_at

FORMATS: dict[str, dict[str, Any]] = {
    "segmentation-surface": {
        "files": [".zip"],
        "description": (
            "One .zip holding a binary mask per exam named by its id (<id>.dcm, <id>.png, "
            "<id>.nii, <id>.nii.gz or <id>.npy, in any folder of the archive), with the exam's "
            "rows x columns and two values (0 and one other; nonzero is muscle), plus "
            "surfaces.csv or surfaces.xlsx with columns id,surface_mm2."),
        "metrics": ["dice", "surface_mse"],
        "ranking": "rank(dice) + rank(surface_mse), lowest wins; tie -> higher dice",
    },
    "binary-probability": {
        "files": [".csv", ".xlsx"],
        "description": (
            "One .csv or .xlsx file, two columns: exam id, then the probability of the "
            "abnormal class in [0, 1]. Header optional; comma or semicolon; decimal point or "
            "comma. Every id of the validation set exactly once."),
        "metrics": ["auc"],
        "ranking": "ROC AUC, higher wins",
    },
    "regression": {
        "files": [".csv", ".xlsx"],
        "description": (
            "One .csv or .xlsx file, two columns: exam id, then the predicted value (EDSS in "
            "[0, 10]). Header optional; comma or semicolon; decimal point or comma. Every id "
            "of the validation set exactly once."),
        "metrics": ["mse"],
        "ranking": "mean squared error, lower wins",
    },
}


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, as every time in the API."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def countdown_of(row: asyncpg.Record) -> Countdown:
    return Countdown(state=row["state"], duration=row["duration"],
                     started_at=row["started_at"], deadline=row["deadline"],
                     remaining=row["remaining"])


def challenge_json(row: asyncpg.Record, now: datetime, *, detail: bool = False) -> dict[str, Any]:
    phase = phase_at(countdown_of(row), now)
    body: dict[str, Any] = {
        "slug": row["slug"],
        "title": row["title"],
        "kind": row["kind"],
        "duration_s": row["duration"].total_seconds(),
        "state": phase.state,
        "started_at": iso(phase.started_at),
        "deadline": iso(phase.deadline),
        "remaining_s": phase.remaining_s,
        "server_time": iso(now),
    }
    if detail:
        hu = [row["hu_low"], row["hu_high"]] if row["hu_low"] is not None else None
        body.update({
            "format": FORMATS[row["kind"]],
            "counts": row["counts"],
            "max_submissions": row["max_submissions"],
            "team_feedback": row["team_feedback"],
            "leaderboard": row["leaderboard"],
            "freeze_minutes": row["freeze_window"].total_seconds() / 60,
            "upload_grace_seconds": row["upload_grace"].total_seconds(),
            "hu_window": hu,
        })
    return body
