-- Cursor of each pulled feed of the platform's API: a restarted pull
-- resumes from here.
CREATE TABLE datasea_cursors (
    feed       TEXT NOT NULL PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- 入海: one push of the month's recipients list and the platform's receipt.
CREATE TABLE datasea_pushes (
    period     TEXT NOT NULL PRIMARY KEY,
    records    BIGINT NOT NULL,
    total_fen  BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    state      TEXT NOT NULL,
    receipt    TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '',
    pushed_ms  BIGINT NOT NULL
);
