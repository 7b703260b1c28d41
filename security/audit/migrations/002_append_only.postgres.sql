-- The database itself refuses to change or remove audit records: UPDATE is
-- never allowed, DELETE only below the pruning base (Prune moves the base
-- first, in the same transaction). A superuser can drop these triggers;
-- Verify still finds what they then change. EXECUTE PROCEDURE (not
-- FUNCTION) keeps the DDL valid on openGauss and older servers.
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT base_seq FROM audit_state WHERE id = 1) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE PROCEDURE audit_log_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE PROCEDURE audit_log_append_only();
