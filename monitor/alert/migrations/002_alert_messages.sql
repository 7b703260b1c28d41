-- What an alert says as a console message key with JSON parameters (shown
-- in the reader's language; summary stays English for logs and the API),
-- and why the monitor resolved it by itself (resolved_by system:monitor).
-- Rows from before keep msg_key '' and are shown by their summary.
ALTER TABLE monitor_alerts ADD COLUMN msg_key TEXT NOT NULL DEFAULT '';
ALTER TABLE monitor_alerts ADD COLUMN msg_args TEXT NOT NULL DEFAULT '';
ALTER TABLE monitor_alerts ADD COLUMN resolve_key TEXT NOT NULL DEFAULT '';
ALTER TABLE monitor_alerts ADD COLUMN resolve_args TEXT NOT NULL DEFAULT '';
