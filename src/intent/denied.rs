//! Functions no statement may call, whatever the policy says about its tables.
//!
//! Each reaches past the rows a policy reasons about: the server's file system, other
//! processes or the network; session settings (with `set_config` a caller could switch the
//! read-only setting of a pooled connection off); locks that outlive the statement; sleep
//! (an easy denial of service); SQL text run from inside a function (`query_to_xml`,
//! `ts_stat`, `ts_rewrite`: the tables it reads never appear in the statement); large
//! objects. A call is
//! matched on its unqualified, lower-cased name, so `PG_SLEEP`, `"pg_sleep"` and
//! `pg_catalog.pg_sleep` are all `pg_sleep`. A trailing `*` matches a prefix.
//!
//! The list is a wall, not a proof: a user-defined function can wrap any of these. The
//! read-only pool (and a SELECT-only account) are the backstop for what it cannot know.

const DENIED_FUNCTIONS: &[&str] = &[
    // PostgreSQL: files and directories.
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_*",
    "pg_stat_file",
    "pg_file_*",
    "lo_*",
    // PostgreSQL: other servers, SQL text run by name, other backends.
    "dblink*",
    "query_to_xml*",
    "query_to_xmlschema",
    "cursor_to_xml*",
    "table_to_xml*",
    "schema_to_xml*",
    "database_to_xml*",
    "ts_stat",
    // `ts_rewrite(query, 'SELECT …')` runs its second argument as SQL.
    "ts_rewrite",
    "pg_terminate_backend",
    "pg_cancel_backend",
    // PostgreSQL: settings, server administration, replication.
    "set_config",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_*",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_wal_replay_*",
    "pg_stat_reset*",
    "pg_create_*_replication_slot",
    "pg_copy_*_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_replication_origin_*",
    "pg_logical_slot_*",
    "pg_logical_emit_message",
    "pg_import_system_collations",
    // PostgreSQL: sleep, locks, notifications.
    "pg_sleep*",
    "pg_advisory*",
    "pg_try_advisory*",
    "pg_notify",
    // MariaDB / MySQL.
    "load_file",
    "sleep",
    "benchmark",
    "get_lock",
    "release_lock",
    "release_all_locks",
    "is_free_lock",
    "is_used_lock",
    "master_pos_wait",
    "master_gtid_wait",
    "source_pos_wait",
    "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids",
    "sys_exec",
    "sys_eval",
    // SQLite (extensions and the CLI's helpers).
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fsdir",
    "zipfile",
    "fts3_tokenizer",
];

/// Whether a function with this unqualified name (any case) is on the deny list.
pub(super) fn is_denied(name: &str) -> bool {
    let name = name.to_lowercase();
    DENIED_FUNCTIONS
        .iter()
        .any(|pattern| match pattern.split_once('*') {
            Some((prefix, suffix)) => {
                name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            }
            None => name == *pattern,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_prefixes_match_in_any_case() {
        for name in [
            "pg_sleep",
            "PG_SLEEP_FOR",
            "pg_ls_dir",
            "lo_export",
            "dblink_exec",
            "pg_advisory_xact_lock",
            "pg_try_advisory_lock",
            "pg_create_logical_replication_slot",
            "Sleep",
            "load_extension",
            "ts_rewrite",
        ] {
            assert!(is_denied(name), "{name}");
        }
    }

    #[test]
    fn ordinary_functions_pass() {
        for name in [
            "count",
            "lower",
            "now",
            "sleepy",
            "pg_size_pretty",
            "slot",
            "lo",
            "coalesce",
            "pg_create",
        ] {
            assert!(!is_denied(name), "{name}");
        }
    }
}
