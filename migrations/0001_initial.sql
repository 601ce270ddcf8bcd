-- The event, its challenges and teams, and who may do what.
-- Loading the event file upserts these rows; nothing here is ever deleted by a reload, so
-- submissions (added by a later migration) always keep their team and challenge.

CREATE TABLE event (
    id          integer PRIMARY KEY CHECK (id = 1),   -- one event per database
    name        text NOT NULL,
    timezone    text NOT NULL,
    source_path text NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE challenge (
    id                   serial PRIMARY KEY,
    slug                 text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]+$'),
    position             integer NOT NULL,
    in_event             boolean NOT NULL DEFAULT true,  -- false once removed from the file
    title                text NOT NULL,
    kind                 text NOT NULL
        CHECK (kind IN ('segmentation-surface', 'binary-probability', 'regression')),
    duration             interval NOT NULL CHECK (duration > interval '0'),
    truth_path           text NOT NULL,
    release_path         text,
    counts               text NOT NULL CHECK (counts IN ('last', 'best')),
    max_submissions      integer CHECK (max_submissions > 0),
    team_feedback        text NOT NULL CHECK (team_feedback IN ('status', 'score')),
    leaderboard          text NOT NULL CHECK (leaderboard IN ('jury', 'teams', 'public')),
    freeze_window        interval NOT NULL,
    upload_grace         interval NOT NULL,
    hu_low               double precision,
    hu_high              double precision,
    -- The countdown (SPEC §5). `deadline` is set while running; `remaining` while paused.
    state                text NOT NULL DEFAULT 'waiting'
        CHECK (state IN ('waiting', 'running', 'paused', 'closed')),
    started_at           timestamptz,
    deadline             timestamptz,
    remaining            interval,
    closed_at            timestamptz
);

CREATE TABLE team (
    id        serial PRIMARY KEY,
    name      text NOT NULL,
    in_event  boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX team_name_key ON team (lower(name));

CREATE TABLE registration (
    team_id      integer NOT NULL REFERENCES team (id),
    challenge_id integer NOT NULL REFERENCES challenge (id),
    PRIMARY KEY (team_id, challenge_id)
);

-- Only the SHA-256 of each token is stored (see server/access.py).
CREATE TABLE credential (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    role       text NOT NULL CHECK (role IN ('organizer', 'jury', 'team')),
    team_id    integer REFERENCES team (id),
    CHECK ((role = 'team') = (team_id IS NOT NULL))
);
