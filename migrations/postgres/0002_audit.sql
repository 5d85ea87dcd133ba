-- The audit trail: one row per event, appended by the audit writer and never changed.
--
-- `body` is the canonical JSON of the whole event (see src/audit/event.rs) and `hash` the
-- hex SHA-256 of exactly those bytes; `body` is TEXT, not JSONB, because JSONB would
-- reorder and respace it. The other columns repeat fields of the body so that listings can
-- filter with indexes; the verifier checks they still agree with the body.
CREATE TABLE IF NOT EXISTS audit_events (
    seq           BIGINT PRIMARY KEY,
    id            UUID NOT NULL UNIQUE,
    time          TIMESTAMPTZ NOT NULL,
    kind          TEXT NOT NULL,
    request_id    UUID NOT NULL,
    principal_sub TEXT,
    datasource    TEXT,
    environment   TEXT,
    effect        TEXT,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    body          TEXT NOT NULL
);

-- Filters page by seq, so each filter column is indexed together with seq.
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time);
CREATE INDEX IF NOT EXISTS audit_events_request ON audit_events (request_id);
CREATE INDEX IF NOT EXISTS audit_events_kind ON audit_events (kind, seq);
CREATE INDEX IF NOT EXISTS audit_events_principal ON audit_events (principal_sub, seq);
CREATE INDEX IF NOT EXISTS audit_events_datasource ON audit_events (datasource, seq);
CREATE INDEX IF NOT EXISTS audit_events_environment ON audit_events (environment, seq);
CREATE INDEX IF NOT EXISTS audit_events_effect ON audit_events (effect, seq);

-- Append-only: refuse UPDATE, DELETE and TRUNCATE. This stops mistakes, not the table's
-- owner (who can drop the triggers); the hash chain is what exposes deliberate tampering.
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP;
END
$$;

CREATE TRIGGER audit_events_no_change
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
