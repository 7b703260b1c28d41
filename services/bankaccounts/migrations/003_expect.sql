-- Whether the monitor was told to expect the result file of a sent request
-- file (result_due_ms: by when). Files sent before this column existed are
-- not expected.
ALTER TABLE acct_files ADD COLUMN result_due_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE acct_files ADD COLUMN result_expected INTEGER NOT NULL DEFAULT 0;
UPDATE acct_files SET result_expected = 1;
