-- fer-tune's study store, version 2: every trial and rung row carries the study `seq` of the
-- transaction that last wrote it, so that a worker reads only the rows written since its last
-- claim instead of the whole study (claims stay cheap with thousands of trials).
ALTER TABLE fer_trial ADD COLUMN updated_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fer_rung ADD COLUMN recorded_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS fer_trial_updated ON fer_trial (study, updated_seq);
CREATE INDEX IF NOT EXISTS fer_rung_recorded ON fer_rung (study, recorded_seq);
