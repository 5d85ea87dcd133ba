-- The audit trail: one row per event, appended by the audit writer and never changed.
--
-- `body` is the canonical JSON of the whole event (see src/audit/event.rs) and `hash` the
-- hex SHA-256 of exactly those bytes. The other columns repeat fields of the body so that
-- listings can filter with indexes; the verifier checks they still agree with the body.
-- `id` and `request_id` are hyphenated lowercase UUIDs; `time` is UTC text with six
-- fractional digits (`2025-01-31T09:15:02.123456Z`), fixed width so text order is time order.
CREATE TABLE IF NOT EXISTS audit_events (
    seq           INTEGER PRIMARY KEY NOT NULL,
    id            TEXT NOT NULL UNIQUE,
    time          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    request_id    TEXT NOT NULL,
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

-- Append-only: refuse UPDATE and DELETE. This stops mistakes, not whoever can write the
-- file (they can drop the triggers); the hash chain is what exposes deliberate tampering.
CREATE TRIGGER IF NOT EXISTS audit_events_no_update
    BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only (UPDATE refused)');
END;

CREATE TRIGGER IF NOT EXISTS audit_events_no_delete
    BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only (DELETE refused)');
END;
