-- Batch releases of training sets (docs/datasets.md, "Batches"). A batch is declared in the
-- event file; a row here says it was packed (its archive, and for a sealed one its key) and,
-- for one an organizer opens, when it was opened.

CREATE TABLE batch (
    challenge_id integer NOT NULL REFERENCES challenge (id),
    name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    set_name     text NOT NULL,
    exams        integer[] NOT NULL,        -- the exams packed, by id
    path         text NOT NULL,
    file_name    text NOT NULL,
    size         bigint NOT NULL,
    sha256       text NOT NULL,
    sealed       boolean NOT NULL,
    key          text,                      -- a sealed batch's key, shown from its opening
    packed_at    timestamptz NOT NULL DEFAULT podium_now(),
    opened_at    timestamptz,               -- opened by an organizer (else its `opens` time)
    opened_by    text,
    PRIMARY KEY (challenge_id, name)
);

-- Every download of a batch's archive, whole or a range of it.
CREATE TABLE batch_download (
    id           bigserial PRIMARY KEY,
    challenge_id integer NOT NULL,
    batch        text NOT NULL,
    team_id      integer NOT NULL REFERENCES team (id),
    range_start  bigint NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL,
    complete     boolean NOT NULL,
    at           timestamptz NOT NULL DEFAULT podium_now(),
    FOREIGN KEY (challenge_id, batch) REFERENCES batch (challenge_id, name)
);
CREATE INDEX batch_download_team ON batch_download (challenge_id, batch, team_id);
