-- The database itself refuses to change or remove audit records: UPDATE is
-- never allowed, DELETE only below the pruning base (Prune moves the base
-- first, in the same transaction). Someone with file access can drop these
-- triggers; Verify still finds what they then change.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT base_seq FROM audit_state WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
