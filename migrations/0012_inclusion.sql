-- Before the final day (docs/inclusion-platform.md): inclusion centers send exams for the
-- questions that collect them, Podium de-identifies and checks each one, experts grade them.

-- A question's [challenges.inclusion] table as the event file declares it; NULL: the question
-- collects no exams through Podium.
ALTER TABLE challenge ADD COLUMN inclusion jsonb;

CREATE TABLE center (
    id       serial PRIMARY KEY,
    name     text NOT NULL CHECK (name <> ''),
    ae_title text,
    in_event boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX center_name ON center (lower(name));

CREATE TABLE reviewer (
    id       serial PRIMARY KEY,
    name     text NOT NULL CHECK (name <> ''),
    in_event boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX reviewer_name ON reviewer (lower(name));

-- The questions a center includes for, and those a reviewer grades.
CREATE TABLE center_question (
    center_id    integer NOT NULL REFERENCES center (id),
    challenge_id integer NOT NULL REFERENCES challenge (id),
    PRIMARY KEY (center_id, challenge_id)
);
CREATE TABLE reviewer_question (
    reviewer_id  integer NOT NULL REFERENCES reviewer (id),
    challenge_id integer NOT NULL REFERENCES challenge (id),
    PRIMARY KEY (reviewer_id, challenge_id)
);

ALTER TABLE credential DROP CONSTRAINT credential_role_check;
ALTER TABLE credential DROP CONSTRAINT credential_check;
ALTER TABLE credential ADD COLUMN center_id integer REFERENCES center (id);
ALTER TABLE credential ADD COLUMN reviewer_id integer REFERENCES reviewer (id);
ALTER TABLE credential ADD CONSTRAINT credential_role_check
    CHECK (role IN ('organizer', 'jury', 'team', 'center', 'reviewer'));
ALTER TABLE credential ADD CONSTRAINT credential_member_check
    CHECK ((role = 'team') = (team_id IS NOT NULL)
           AND (role = 'center') = (center_id IS NOT NULL)
           AND (role = 'reviewer') = (reviewer_id IS NOT NULL));

-- One examination sent by a center for a question: a study and its annotation.
--   stage: received (files on disk, not yet de-identified) → deidentified → checked (criteria
--   found a violation still open) → review (with the experts) → kept | excluded.
--   exclusion: why an excluded exam is: 'deidentification' (a file that cannot be cleaned),
--   'criteria' (a violation rejected), 'quality' (a class not kept), 'resent' (replaced by
--   the center's new exam), 'withdrawn' (by an organizer).
CREATE TABLE exam (
    id           bigserial PRIMARY KEY,
    center_id    integer NOT NULL REFERENCES center (id),
    challenge_id integer NOT NULL REFERENCES challenge (id),
    channel      text NOT NULL CHECK (channel IN ('web', 'dicom')),
    -- What the center calls it: the uploaded file's name, or the study's date and
    -- description as its PACS sent them (never a patient's name).
    label        text NOT NULL,
    -- HMAC of the center and the original StudyInstanceUID under the event secret: the same
    -- study sent again is known without keeping its UID.
    source_key   text NOT NULL,
    pseudonym    text,            -- the patient's pseudonym (HMAC of the original PatientID)
    study_uid    text,            -- the replaced StudyInstanceUID
    folder       text,            -- the de-identified copy: series/ and annotation/
    files        integer NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    stage        text NOT NULL DEFAULT 'received'
                 CHECK (stage IN ('received', 'deidentified', 'checked', 'review', 'kept',
                                  'excluded')),
    exclusion    text CHECK (exclusion IN ('deidentification', 'criteria', 'quality', 'resent',
                                           'withdrawn')),
    outcome      text,            -- the reason, in the center's words
    grade        char(1) CHECK (grade IN ('A', 'B', 'C', 'D')),
    summary      jsonb NOT NULL DEFAULT '{}'::jsonb,   -- series chosen, slices, thickness, ...
    replaces     bigint REFERENCES exam (id),
    received_at  timestamptz NOT NULL DEFAULT podium_now(),
    updated_at   timestamptz NOT NULL DEFAULT podium_now(),
    CHECK ((stage = 'excluded') = (exclusion IS NOT NULL))
);
CREATE INDEX exam_center ON exam (center_id, received_at);
CREATE INDEX exam_question ON exam (challenge_id, stage);
CREATE UNIQUE INDEX exam_source ON exam (challenge_id, source_key)
    WHERE stage <> 'excluded' OR exclusion <> 'resent';

-- A finding of the criteria on an exam. A violation has a state, as LORIS resolves protocol
-- violations: open → notified (the center was shown it) → resent (the center sent a new
-- exam) | accepted (an organizer kept the exam anyway, with a reason) | rejected (the exam is
-- excluded). A warning never blocks: its state stays open.
CREATE TABLE violation (
    id         bigserial PRIMARY KEY,
    exam_id    bigint NOT NULL REFERENCES exam (id) ON DELETE CASCADE,
    code       text NOT NULL,
    rule       text,
    severity   text NOT NULL CHECK (severity IN ('violation', 'warning')),
    message    text NOT NULL,
    found      text,
    expected   text,
    series     text,
    state      text NOT NULL DEFAULT 'open'
               CHECK (state IN ('open', 'notified', 'resent', 'accepted', 'rejected')),
    reason     text,
    decided_by text,
    decided_at timestamptz,
    CHECK (state NOT IN ('accepted', 'rejected') OR reason IS NOT NULL)
);
CREATE INDEX violation_exam ON violation (exam_id);

-- An expert's grade. reading 1 and 2 are the blind double readings (1 only for single
-- reading); 3 settles a disagreement between 1 and 2.
CREATE TABLE review (
    id          bigserial PRIMARY KEY,
    exam_id     bigint NOT NULL REFERENCES exam (id) ON DELETE CASCADE,
    reviewer_id integer NOT NULL REFERENCES reviewer (id),
    reading     smallint NOT NULL CHECK (reading IN (1, 2, 3)),
    grade       char(1) NOT NULL CHECK (grade IN ('A', 'B', 'C', 'D')),
    comment     text NOT NULL DEFAULT '',
    graded_at   timestamptz NOT NULL DEFAULT podium_now(),
    UNIQUE (exam_id, reading),
    UNIQUE (exam_id, reviewer_id)
);

-- What happened to an exam, in the order it happened: the center's timeline and the digest's
-- source. kind: received, deidentified, rejected_file, criteria, violation_state, graded,
-- kept, excluded, resent.
CREATE TABLE exam_event (
    id      bigserial PRIMARY KEY,
    exam_id bigint NOT NULL REFERENCES exam (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT podium_now(),
    kind    text NOT NULL,
    message text NOT NULL
);
CREATE INDEX exam_event_exam ON exam_event (exam_id, id);
