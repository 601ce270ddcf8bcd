-- The warnings that go with a submission's result (truth-free notices, shown to its team under
-- every feedback policy), beside its errors.

ALTER TABLE submission ADD COLUMN warnings jsonb;
