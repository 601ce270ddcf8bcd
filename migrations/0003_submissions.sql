-- Uploaded submissions and their scoring queue, and the validation-set downloads.

CREATE TABLE submission (
    id               bigserial PRIMARY KEY,
    challenge_id     integer NOT NULL REFERENCES challenge (id),
    team_id          integer NOT NULL REFERENCES team (id),
    request_began_at timestamptz NOT NULL,   -- database clock when the upload request arrived
    received_at      timestamptz NOT NULL,   -- database clock when its last byte was on disk
    sha256           text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size             bigint NOT NULL CHECK (size >= 0),
    filename         text NOT NULL,
    stored_path      text NOT NULL,
    status           text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'scoring', 'scored', 'invalid')),
    metrics          jsonb,
    errors           jsonb,
    scorer_version   text,
    attempts         integer NOT NULL DEFAULT 0,
    claimed_by       text,
    claimed_at       timestamptz,
    scored_at        timestamptz
);
CREATE INDEX submission_queue ON submission (id) WHERE status IN ('queued', 'scoring');
CREATE INDEX submission_team ON submission (challenge_id, team_id, id);

CREATE TABLE dataset_download (
    id           bigserial PRIMARY KEY,
    challenge_id integer NOT NULL REFERENCES challenge (id),
    team_id      integer NOT NULL REFERENCES team (id),
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    range_start  bigint NOT NULL,
    bytes        bigint NOT NULL,
    complete     boolean NOT NULL
);
CREATE INDEX dataset_download_challenge ON dataset_download (challenge_id, team_id);

-- Largest upload accepted, per challenge (from the event file, or the kind's default).
ALTER TABLE challenge ADD COLUMN max_upload_bytes bigint NOT NULL DEFAULT 10485760
    CHECK (max_upload_bytes > 0);
