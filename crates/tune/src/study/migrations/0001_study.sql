-- fer-tune's study store, version 1: one schema for SQLite and PostgreSQL (types both accept;
-- flags are BIGINT 0/1, times are milliseconds on the database's clock).
-- A study is one tune run, keyed by its signature.
CREATE TABLE IF NOT EXISTS fer_study (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    params TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    -- seconds on the search's clock up to updated_ms (wall time while a worker was working)
    elapsed DOUBLE PRECISION NOT NULL,
    updated_ms BIGINT NOT NULL,
    -- bumped by every claim and save: the row lock that serializes them
    seq BIGINT NOT NULL
);
-- Trials, their configurations and state; `worker` holds a running trial.
CREATE TABLE IF NOT EXISTS fer_trial (
    study TEXT NOT NULL,
    id BIGINT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    epochs_run BIGINT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL,
    error TEXT,
    finished BIGINT NOT NULL,
    reused_from TEXT,
    worker TEXT,
    PRIMARY KEY (study, id)
);
-- Rung results: the key makes a rung recorded (trained to completion) at most once.
CREATE TABLE IF NOT EXISTS fer_rung (
    study TEXT NOT NULL,
    trial BIGINT NOT NULL,
    k BIGINT NOT NULL,
    epochs BIGINT NOT NULL,
    val_acc DOUBLE PRECISION NOT NULL,
    val_loss DOUBLE PRECISION NOT NULL,
    val_macro_f1 DOUBLE PRECISION,
    worker TEXT NOT NULL,
    recorded_ms BIGINT NOT NULL,
    PRIMARY KEY (study, trial, k)
);
-- Workers and their heartbeats.
CREATE TABLE IF NOT EXISTS fer_worker (
    study TEXT NOT NULL,
    id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (study, id)
);
-- Every claim (new trials and promotions), in claim order, and how it ended: rung, stopped,
-- failed, requeued (its worker stopped beating), lost (taken over while it still ran).
CREATE TABLE IF NOT EXISTS fer_job (
    study TEXT NOT NULL,
    seq BIGINT NOT NULL,
    trial BIGINT NOT NULL,
    rung BIGINT NOT NULL,
    last BIGINT NOT NULL,
    worker TEXT NOT NULL,
    claimed_ms BIGINT NOT NULL,
    outcome TEXT,
    ended_ms BIGINT,
    PRIMARY KEY (study, seq)
);
