-- Approvals: statements that wait for people, then run at most once.
--
-- Ids are hyphenated UUIDv7 text and list columns JSON text, as on PostgreSQL, so both
-- stores share one SQL text. Timestamps are RFC 3339 text in UTC, written by sqlx with one
-- fixed offset, so they compare as times. `params` keeps the typed parameters as
-- JSON text, exactly as asked.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('pending', 'approved', 'rejected', 'expired', 'executing', 'executed', 'failed')),
    requester_sub TEXT NOT NULL,
    requester_kind TEXT NOT NULL,
    requester_groups TEXT NOT NULL,
    requester_on_behalf_of TEXT,
    datasource TEXT NOT NULL,
    environment TEXT NOT NULL,
    statement TEXT NOT NULL,
    params TEXT NOT NULL,
    -- Hex SHA-256 of requester, datasource, environment, statement and params.
    fingerprint TEXT NOT NULL,
    policies TEXT NOT NULL,
    reasons TEXT NOT NULL,
    approver_groups TEXT NOT NULL,
    min_approvals INTEGER NOT NULL CHECK (min_approvals >= 1),
    -- Approve votes so far; the vote that reaches min_approvals approves.
    approvals_count INTEGER NOT NULL DEFAULT 0,
    request_id TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    decided_at TEXT,
    claimed_at TEXT,
    executed_at TEXT,
    rows_affected INTEGER,
    rows_returned INTEGER,
    error_code TEXT
);

-- The expiry sweep looks only at open approvals.
CREATE INDEX approvals_open_by_expiry ON approvals (expires_at)
    WHERE status IN ('pending', 'approved');
CREATE INDEX approvals_by_requester ON approvals (requester_sub, created_at);
CREATE INDEX approvals_by_on_behalf_of ON approvals (requester_on_behalf_of, created_at)
    WHERE requester_on_behalf_of IS NOT NULL;

-- Who may decide, one row per group, so listing "what I may approve" is an index lookup.
CREATE TABLE approval_approver_groups (
    approval_id TEXT NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (group_name, approval_id)
);

-- One vote per approver and approval: the primary key refuses a second.
CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    approver_sub TEXT NOT NULL,
    approver_kind TEXT NOT NULL,
    approver_on_behalf_of TEXT,
    verdict TEXT NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment TEXT,
    voted_at TEXT NOT NULL,
    PRIMARY KEY (approval_id, approver_sub)
);
