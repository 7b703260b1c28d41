-- The outbox goes through the routes (configs/routes/portal*.yaml): each
-- batch is published under a bus key stored on its rows (bkey), so a
-- restart publishes it again under the same key and the route's delivery
-- ledger delivers it once; sent_at is when the batch was first published.
ALTER TABLE portal_outbox ADD COLUMN bkey TEXT NOT NULL DEFAULT '';
ALTER TABLE portal_outbox ADD COLUMN sent_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX portal_outbox_bkey ON portal_outbox (bkey);
