-- Heartbeat of the scheduled job: one row per service instance, updated every beat.
CREATE TABLE heartbeat (
    instance_id  TEXT        PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    last_beat_at TIMESTAMPTZ NOT NULL,
    beats        BIGINT      NOT NULL
);
