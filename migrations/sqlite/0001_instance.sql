-- Facts about this control store: when it was created and by which version. Later
-- migrations add the audit trail and approvals.
CREATE TABLE IF NOT EXISTS gatehouse_instance (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
