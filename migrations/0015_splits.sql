-- Before the final day (docs/datasets.md): a question's kept exams split into named sets.

-- One split of a question, as an organizer made it. `current`: the split in force; a redo
-- (allowed until a set is released) makes the old one not current, kept for the record.
CREATE TABLE split (
    id           serial PRIMARY KEY,
    challenge_id integer NOT NULL REFERENCES challenge (id),
    seed         bigint NOT NULL,
    declared     jsonb NOT NULL,          -- the [challenges.splits] table it was made from
    made_by      text NOT NULL,
    made_at      timestamptz NOT NULL DEFAULT podium_now(),
    current      boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX split_current ON split (challenge_id) WHERE current;

-- Its sets in order; `released_at`: when the set first went out to the teams (a batch, the
-- final day's release). Once any set of a split is released, the split cannot be redone.
CREATE TABLE split_set (
    split_id    integer NOT NULL REFERENCES split (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    position    smallint NOT NULL,
    size        integer NOT NULL CHECK (size >= 0),
    released_at timestamptz,
    PRIMARY KEY (split_id, name),
    UNIQUE (split_id, position)
);

-- The kept exams the split was made from, and the set each is in (NULL: left out, when the
-- sizes ask for fewer exams than were kept).
CREATE TABLE split_exam (
    split_id integer NOT NULL,
    exam_id  bigint NOT NULL REFERENCES exam (id),
    set_name text,
    PRIMARY KEY (split_id, exam_id),
    FOREIGN KEY (split_id, set_name) REFERENCES split_set (split_id, name) ON DELETE CASCADE
);
CREATE INDEX split_exam_set ON split_exam (split_id, set_name);
