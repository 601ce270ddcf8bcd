-- A center's resumable web upload of one exam's zip (docs/inclusion-platform.md), in the
-- manner of the tus protocol: the center declares the length, then appends chunks at the
-- offset the server reports; the bytes live in DATA_DIR/inclusion/uploads/<id>.zip, and the
-- offset is that file's length, fsynced before each chunk is acknowledged.
--   state: receiving (chunks still to come) → unpacking (every byte here, the zip being
--   opened and handed to the intake) → received (the exam exists: exam_id) | refused (the
--   zip could not be used: error, in the center's words).
CREATE TABLE inclusion_upload (
    id           bigserial PRIMARY KEY,
    center_id    integer NOT NULL REFERENCES center (id),
    challenge_id integer NOT NULL REFERENCES challenge (id),
    name         text NOT NULL,            -- the file's name as the center gave it
    length       bigint NOT NULL CHECK (length > 0),
    state        text NOT NULL DEFAULT 'receiving'
                 CHECK (state IN ('receiving', 'unpacking', 'received', 'refused')),
    -- Known once unpacked: the exam the study will become is found by it after a restart.
    source_key   text,
    exam_id      bigint REFERENCES exam (id),
    error_code   text,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT podium_now(),
    updated_at   timestamptz NOT NULL DEFAULT podium_now(),
    CHECK ((state = 'received') = (exam_id IS NOT NULL)),
    CHECK ((state = 'refused') = (error IS NOT NULL))
);
CREATE INDEX inclusion_upload_center ON inclusion_upload (center_id, created_at);
