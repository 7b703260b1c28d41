-- A request an operator queued to retry a failed one (开户失败 fixed and
-- retried from the console): the failed request's ref.
ALTER TABLE acct_requests ADD COLUMN retry_of TEXT NOT NULL DEFAULT '';
CREATE INDEX acct_requests_retry ON acct_requests (retry_of);
