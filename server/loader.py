"""Loads an event file into the database, idempotently.

Every statement only writes rows whose content differs, so reloading the same file leaves the
tables untouched (not even new row versions). A challenge or team that disappears from the file
is marked `in_event = false`, never deleted: its submissions stay where they were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from server.access import Credential, Role, hash_token
from server.errors import EventFileError
from server.event import EventSpec

LOAD_LOCK = 0x506F64_4C6F6164  # serialises two processes loading at once


@dataclass(frozen=True)
class LoadReport:
    challenges_changed: int
    teams_changed: int
    registrations_changed: int
    credentials_changed: int
    members_changed: int = 0

    @property
    def changed(self) -> bool:
        return any((self.challenges_changed, self.teams_changed, self.registrations_changed,
                    self.credentials_changed, self.members_changed))


def _count(status: str) -> int:
    # asyncpg returns the command tag, e.g. "INSERT 0 3" or "UPDATE 2".
    return int(status.rsplit(" ", 1)[-1])


async def load_event(conn: asyncpg.Connection, event: EventSpec,
                     credentials: list[Credential]) -> LoadReport:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOAD_LOCK)
        await conn.execute(
            """INSERT INTO event (id, name, timezone, source_path) VALUES (1, $1, $2, $3)
               ON CONFLICT (id) DO UPDATE
                 SET name = EXCLUDED.name, timezone = EXCLUDED.timezone,
                     source_path = EXCLUDED.source_path
                 WHERE (event.name, event.timezone, event.source_path)
                       IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.timezone, EXCLUDED.source_path)""",
            event.name, event.timezone, str(event.path))
        challenges = await _load_challenges(conn, event)
        teams, team_ids = await _load_teams(conn, event)
        registrations = await _load_registrations(conn, event, team_ids)
        members, center_ids, reviewer_ids = await _load_members(conn, event)
        creds = await _load_credentials(conn, credentials, team_ids, center_ids, reviewer_ids)
    return LoadReport(challenges, teams, registrations, creds, members)


async def _load_challenges(conn: asyncpg.Connection, event: EventSpec) -> int:
    changed = 0
    for position, c in enumerate(event.challenges):
        hu_low, hu_high = c.hu_window if c.hu_window else (None, None)
        status = await conn.execute(
            """INSERT INTO challenge AS old (slug, position, title, kind, duration, truth_path,
                   release_path, counts, max_submissions, team_feedback, leaderboard, freeze_window,
                   upload_grace, hu_low, hu_high, max_upload_bytes, ranking, options,
                   inclusion)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                       $17::jsonb, $18::jsonb, $19::jsonb)
               ON CONFLICT (slug) DO UPDATE SET
                   position = EXCLUDED.position, in_event = true, title = EXCLUDED.title,
                   kind = EXCLUDED.kind, duration = EXCLUDED.duration,
                   truth_path = EXCLUDED.truth_path, release_path = EXCLUDED.release_path,
                   counts = EXCLUDED.counts, max_submissions = EXCLUDED.max_submissions,
                   team_feedback = EXCLUDED.team_feedback, leaderboard = EXCLUDED.leaderboard,
                   freeze_window = EXCLUDED.freeze_window, upload_grace = EXCLUDED.upload_grace,
                   hu_low = EXCLUDED.hu_low, hu_high = EXCLUDED.hu_high,
                   max_upload_bytes = EXCLUDED.max_upload_bytes,
                   ranking = EXCLUDED.ranking, options = EXCLUDED.options,
                   inclusion = EXCLUDED.inclusion
               WHERE (old.position, old.in_event, old.title, old.kind, old.duration,
                      old.truth_path, old.release_path, old.counts, old.max_submissions,
                      old.team_feedback, old.leaderboard, old.freeze_window, old.upload_grace,
                      old.hu_low, old.hu_high, old.max_upload_bytes, old.ranking, old.options,
                      old.inclusion)
                 IS DISTINCT FROM
                     (EXCLUDED.position, true, EXCLUDED.title, EXCLUDED.kind, EXCLUDED.duration,
                      EXCLUDED.truth_path, EXCLUDED.release_path, EXCLUDED.counts,
                      EXCLUDED.max_submissions, EXCLUDED.team_feedback, EXCLUDED.leaderboard,
                      EXCLUDED.freeze_window, EXCLUDED.upload_grace, EXCLUDED.hu_low,
                      EXCLUDED.hu_high, EXCLUDED.max_upload_bytes, EXCLUDED.ranking,
                      EXCLUDED.options, EXCLUDED.inclusion)""",
            c.slug, position, c.title, c.kind, c.duration, str(c.truth),
            str(c.release) if c.release else None, c.counts, c.max_submissions,
            c.team_feedback, c.leaderboard, c.freeze_window, c.upload_grace, hu_low, hu_high,
            c.max_upload_bytes, json.dumps(c.ranking) if c.ranking is not None else None,
            json.dumps(dict(c.options)),
            json.dumps(dict(c.inclusion.declared), default=str) if c.inclusion else None)
        changed += _count(status)
    status = await conn.execute(
        "UPDATE challenge SET in_event = false WHERE in_event AND NOT (slug = ANY($1::text[]))",
        [c.slug for c in event.challenges])
    return changed + _count(status)


async def _load_teams(conn: asyncpg.Connection, event: EventSpec) -> tuple[int, dict[str, int]]:
    """The event file's teams. A team that registered itself (`registered`) lives in the
    database alone: never renamed, retired or taken over by a team of the file."""
    changed = 0
    taken = {r["key"]: r["name"] for r in await conn.fetch(
        "SELECT lower(name) AS key, name FROM team WHERE registered AND lower(name) = ANY($1)",
        [t.name.lower() for t in event.teams])}
    for index, team in enumerate(event.teams):
        if team.name.lower() in taken:
            raise EventFileError(str(event.path), f"team {team.name!r} is the name of a team "
                                 f"that registered ({taken[team.name.lower()]!r}); give the "
                                 "event file's team another name", key=f"teams[{index}].name")
    for team in event.teams:
        status = await conn.execute(
            """INSERT INTO team AS old (name) VALUES ($1)
               ON CONFLICT (lower(name)) DO UPDATE SET name = EXCLUDED.name, in_event = true
               WHERE (old.name, old.in_event) IS DISTINCT FROM (EXCLUDED.name, true)""",
            team.name)
        changed += _count(status)
    names = [t.name.lower() for t in event.teams]
    status = await conn.execute(
        """UPDATE team SET in_event = false
           WHERE in_event AND NOT registered AND NOT (lower(name) = ANY($1::text[]))""",
        names)
    changed += _count(status)
    rows = await conn.fetch("SELECT id, lower(name) AS key FROM team WHERE lower(name) = ANY($1)",
                            names)
    ids = {r["key"]: r["id"] for r in rows}
    return changed, {t.name: ids[t.name.lower()] for t in event.teams}


async def _load_registrations(conn: asyncpg.Connection, event: EventSpec,
                              team_ids: dict[str, int]) -> int:
    pairs = [(team_ids[t.name], slug) for t in event.teams for slug in t.challenges]
    team_col = [p[0] for p in pairs]
    slug_col = [p[1] for p in pairs]
    removed = await conn.execute(
        """DELETE FROM registration r USING challenge c
           WHERE r.challenge_id = c.id
             AND r.team_id NOT IN (SELECT id FROM team WHERE registered)
             AND (r.team_id, c.slug) NOT IN (SELECT * FROM unnest($1::int[], $2::text[]))""",
        team_col, slug_col)
    added = await conn.execute(
        """INSERT INTO registration (team_id, challenge_id)
           SELECT p.team_id, c.id FROM unnest($1::int[], $2::text[]) AS p (team_id, slug)
           JOIN challenge c ON c.slug = p.slug
           ON CONFLICT DO NOTHING""",
        team_col, slug_col)
    return _count(removed) + _count(added)


async def _load_members(conn: asyncpg.Connection, event: EventSpec
                        ) -> tuple[int, dict[str, int], dict[str, int]]:
    """Centers and reviewers, as teams are loaded (never deleted: their exams and grades stay),
    with the questions each one works on."""
    changed = 0
    ids: dict[str, dict[str, int]] = {}
    for table, members in (("center", event.centers), ("reviewer", event.reviewers)):
        for member in members:
            ae_title = getattr(member, "ae_title", None)
            if table == "center":
                status = await conn.execute(
                    """INSERT INTO center AS old (name, ae_title) VALUES ($1, $2)
                       ON CONFLICT (lower(name)) DO UPDATE
                         SET name = EXCLUDED.name, ae_title = EXCLUDED.ae_title, in_event = true
                       WHERE (old.name, old.ae_title, old.in_event)
                             IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.ae_title, true)""",
                    member.name, ae_title)
            else:
                status = await conn.execute(
                    """INSERT INTO reviewer AS old (name) VALUES ($1)
                       ON CONFLICT (lower(name)) DO UPDATE SET name = EXCLUDED.name,
                         in_event = true
                       WHERE (old.name, old.in_event) IS DISTINCT FROM (EXCLUDED.name, true)""",
                    member.name)
            changed += _count(status)
        names = [m.name.lower() for m in members]
        changed += _count(await conn.execute(
            f"UPDATE {table} SET in_event = false "  # noqa: S608 - a table name of ours
            "WHERE in_event AND NOT (lower(name) = ANY($1::text[]))", names))
        rows = await conn.fetch(
            f"SELECT id, lower(name) AS key FROM {table} WHERE lower(name) = ANY($1)",  # noqa: S608
            names)
        by_key = {r["key"]: r["id"] for r in rows}
        ids[table] = {m.name: by_key[m.name.lower()] for m in members}
        pairs = [(ids[table][m.name], slug) for m in members for slug in m.challenges]
        member_col, slug_col = [p[0] for p in pairs], [p[1] for p in pairs]
        changed += _count(await conn.execute(
            f"""DELETE FROM {table}_question q USING challenge c
                WHERE q.challenge_id = c.id AND (q.{table}_id, c.slug) NOT IN
                      (SELECT * FROM unnest($1::int[], $2::text[]))""",  # noqa: S608
            member_col, slug_col))
        changed += _count(await conn.execute(
            f"""INSERT INTO {table}_question ({table}_id, challenge_id)
                SELECT p.member, c.id FROM unnest($1::int[], $2::text[]) AS p (member, slug)
                JOIN challenge c ON c.slug = p.slug
                ON CONFLICT DO NOTHING""",  # noqa: S608
            member_col, slug_col))
    return changed, ids["center"], ids["reviewer"]


async def _load_credentials(conn: asyncpg.Connection, credentials: list[Credential],
                            team_ids: dict[str, int], center_ids: dict[str, int],
                            reviewer_ids: dict[str, int]) -> int:
    hashes = [hash_token(c.token) for c in credentials]
    roles = [str(c.role) for c in credentials]
    teams = [team_ids[c.team] if c.role is Role.TEAM and c.team else None for c in credentials]
    centers = [center_ids[c.team] if c.role is Role.CENTER and c.team else None
               for c in credentials]
    reviewers = [reviewer_ids[c.team] if c.role is Role.REVIEWER and c.team else None
                 for c in credentials]
    removed = await conn.execute(
        """DELETE FROM credential WHERE NOT (token_hash = ANY($1::bytea[]))
             AND (team_id IS NULL OR team_id NOT IN (SELECT id FROM team WHERE registered))""",
        hashes)
    upserted = await conn.execute(
        """INSERT INTO credential AS old (token_hash, role, team_id, center_id, reviewer_id)
           SELECT * FROM unnest($1::bytea[], $2::text[], $3::int[], $4::int[], $5::int[])
           ON CONFLICT (token_hash) DO UPDATE SET role = EXCLUDED.role,
             team_id = EXCLUDED.team_id, center_id = EXCLUDED.center_id,
             reviewer_id = EXCLUDED.reviewer_id
           WHERE (old.role, old.team_id, old.center_id, old.reviewer_id)
                 IS DISTINCT FROM (EXCLUDED.role, EXCLUDED.team_id, EXCLUDED.center_id,
                                   EXCLUDED.reviewer_id)""",
        hashes, roles, teams, centers, reviewers)
    return _count(removed) + _count(upserted)
