CREATE TABLE verif_requests (
	id TEXT PRIMARY KEY,
	origin TEXT NOT NULL,
	reference TEXT NOT NULL,
	household TEXT NOT NULL,
	body {{BYTES}} NOT NULL,
	status TEXT NOT NULL,
	calls INTEGER NOT NULL,
	created_ms BIGINT NOT NULL,
	received_ms BIGINT NOT NULL,
	deadline_ms BIGINT NOT NULL,
	final_ms BIGINT NOT NULL DEFAULT 0,
	returned_ms BIGINT NOT NULL DEFAULT 0,
	UNIQUE (origin, reference)
);
CREATE INDEX verif_requests_status ON verif_requests (status, origin, returned_ms);
CREATE INDEX verif_requests_created ON verif_requests (created_ms);
CREATE TABLE verif_calls (
	id {{AUTO_ID}},
	request_id TEXT NOT NULL REFERENCES verif_requests (id),
	partner TEXT NOT NULL,
	scope TEXT NOT NULL,
	idem_key TEXT NOT NULL UNIQUE,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	asks INTEGER NOT NULL DEFAULT 0,
	lookups INTEGER NOT NULL DEFAULT 0,
	next_ms BIGINT NOT NULL,
	deadline_ms BIGINT NOT NULL,
	created_ms BIGINT NOT NULL,
	sent_ms BIGINT NOT NULL DEFAULT 0,
	answered_ms BIGINT NOT NULL DEFAULT 0,
	partner_ref TEXT NOT NULL DEFAULT '',
	answer {{BYTES}},
	quality TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT '',
	sampled INTEGER NOT NULL DEFAULT 0,
	reviewer TEXT NOT NULL DEFAULT '',
	reviewed_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX verif_calls_due ON verif_calls (partner, state, next_ms);
CREATE INDEX verif_calls_deadline ON verif_calls (state, deadline_ms);
CREATE INDEX verif_calls_request ON verif_calls (request_id);
CREATE INDEX verif_calls_created ON verif_calls (created_ms, partner);
