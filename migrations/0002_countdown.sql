-- The countdown's history: every organizer action (and every automatic closing), append-only.
-- The current state lives on the challenge row; each change writes both in one transaction.

CREATE TABLE countdown_log (
    id           bigserial PRIMARY KEY,
    challenge_id integer NOT NULL REFERENCES challenge (id),
    action       text NOT NULL
        CHECK (action IN ('start', 'pause', 'resume', 'extend', 'close', 'auto-close')),
    seconds      double precision,
    team_id      integer REFERENCES team (id),
    actor        text NOT NULL,          -- 'organizer (name)' or 'server'
    state_after  text NOT NULL,
    deadline_after timestamptz,
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX countdown_log_challenge ON countdown_log (challenge_id, id);

CREATE RULE countdown_log_no_update AS ON UPDATE TO countdown_log DO INSTEAD NOTHING;
CREATE RULE countdown_log_no_delete AS ON DELETE TO countdown_log DO INSTEAD NOTHING;

-- Extra time for one team after an incident at its table.
CREATE TABLE team_extension (
    challenge_id integer NOT NULL REFERENCES challenge (id),
    team_id      integer NOT NULL REFERENCES team (id),
    extra        interval NOT NULL,
    PRIMARY KEY (challenge_id, team_id)
);

ALTER TABLE challenge ADD COLUMN closed_by text;  -- 'organizer' or 'deadline'
