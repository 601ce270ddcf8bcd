-- Teams that register themselves on the public page (docs/registration.md). An application
-- waits for an organizer; approval creates the team (`registered`: the event file's loader
-- never renames, retires or strips such a team, its questions or its token).
ALTER TABLE team ADD COLUMN registered boolean NOT NULL DEFAULT false;

CREATE TABLE team_application (
    id                  serial PRIMARY KEY,
    team_name           text NOT NULL,
    members             jsonb NOT NULL,           -- [{name, email, role, affiliation, kind}]
    challenges          text[] NOT NULL,          -- slugs, as chosen
    charter_version     text NOT NULL,
    charter_text        text NOT NULL,            -- the charter as it read when accepted
    charter_accepted_at timestamptz NOT NULL,
    state               text NOT NULL DEFAULT 'waiting'
                        CHECK (state IN ('waiting', 'approved', 'rejected')),
    decided_at          timestamptz,
    decided_by          text,
    reason              text,
    team_id             integer REFERENCES team (id),
    CHECK ((state = 'approved') = (team_id IS NOT NULL))
);
-- One name per team, among the applications still standing (a rejected name may come back).
CREATE UNIQUE INDEX team_application_name ON team_application (lower(team_name))
    WHERE state <> 'rejected';

-- One person (by e-mail, lower-cased) in one team per question: a seat is held from the
-- application until its rejection.
CREATE TABLE team_application_seat (
    application_id integer NOT NULL REFERENCES team_application (id) ON DELETE CASCADE,
    email          text NOT NULL CHECK (email = lower(email)),
    challenge_id   integer NOT NULL REFERENCES challenge (id),
    PRIMARY KEY (email, challenge_id)
);
