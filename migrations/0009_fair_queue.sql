-- The scoring queue serves teams round-robin: the claim looks up when each waiting team was
-- last served (server/submission.py, claim_next).
CREATE INDEX submission_served ON submission (team_id, claimed_at);

-- The board's version when its freeze was recorded: the version non-jury viewers see until
-- the reveal, however many live changes (uploads, results) the jury's board goes through.
ALTER TABLE challenge ADD COLUMN frozen_seq bigint;
UPDATE challenge SET frozen_seq = board_seq WHERE frozen_at IS NOT NULL;
