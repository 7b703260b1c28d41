-- Cursor of each pulled feed of the card center.
CREATE TABLE cardcenter_cursors (
    feed       TEXT NOT NULL PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
