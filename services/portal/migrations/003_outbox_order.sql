-- Senders take the due rows of a kind in id order, a batch at a time: an
-- index in that order spares sorting every pending row per batch.
CREATE INDEX portal_outbox_pending ON portal_outbox (kind, state, id);
