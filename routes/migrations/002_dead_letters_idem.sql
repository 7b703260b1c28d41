-- The console acts on a dead letter by its exchange id (the message's
-- idempotency key): look it up by index, not by scanning.
CREATE INDEX routes_dead_letters_idem ON routes_dead_letters (idem, state);
