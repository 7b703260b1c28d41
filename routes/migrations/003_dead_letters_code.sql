-- The class of a dead letter's failure: in_doubt (the partner may have the
-- message: a replay asks its status first), permanent or exhausted.
ALTER TABLE routes_dead_letters ADD COLUMN code TEXT NOT NULL DEFAULT '';
