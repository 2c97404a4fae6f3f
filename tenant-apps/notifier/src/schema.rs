//! The notifier's storage: one table for rules, pair states, report
//! requests and the outbox, and the queries that read and write it. The
//! table is `tenant_schema::MIGRATIONS` version 3 (the provisioner applies
//! it); [`crate::store`] holds the calls that the CLI, the panel and the
//! notifier share.
//!
//! # One table
//!
//! Each table costs every node about 1 MiB of heap per tenant, so rules,
//! pair states and mails share the `notifier` table, told apart by `kind`:
//!
//! | kind     | bucket       | id                          | body (JSON)             | message | due |
//! |----------|--------------|-----------------------------|-------------------------|---------|-----|
//! | `rule`   | `''`         | rule id                     | `AlertRule::encode`     |         |     |
//! | `state`  | `''`         | `<rule id>/<gateway id>`    | `PairState`             |         |     |
//! | `state`  | `''`         | `report`                    | `{"day":"2026-12-01"}`  |         |     |
//! | `request`| `''`         | random id                   | `store::ReportRequest`  |         |     |
//! | `outbox` | `pending`    | `MailKey::as_text`          | `OutboxEntry`           | bytes   | yes |
//! | `sent`   | UTC day      | `MailKey::as_text`          | `OutboxEntry` (final)   | bytes   |     |
//!
//! - `rule` and `state` are one partition each: a tenant has tens of rules
//!   and rules × gateways pairs (10 × 1000 pairs of ~200 bytes is 2 MB, far
//!   under Cassandra's partition guidance). Both are read whole at start;
//!   rules again at every check (the CLI writes them), states never again
//!   (one notifier per tenant: its own writes keep its copy current).
//! - `outbox/pending` holds the mails not yet sent or failed, a handful, read
//!   whole every check. A mail that ends (`Sent` or `Failed`) is moved to
//!   `sent/<UTC day>`, written `USING TTL` 30 days, so the record of what
//!   went out (and what failed, for the CLI) expires a day at a time
//!   without tombstones in a live partition. The move is two steps: first a
//!   logged batch writes the final entry to both rows, then the pending row
//!   is deleted; a pending row brought back by a lost delete is final, so it
//!   is ignored and deleted again, never resent. `gc_grace_seconds` is one
//!   day so these deletes' tombstones do not pile up in the pending
//!   partition (a resurrected row is harmless, as said).
//! - The `message` column is the formatted mail (`Message::formatted`), so
//!   every attempt sends the same bytes with the same `Message-ID`, and a
//!   rule edited or removed after a transition does not change its mail.
//!
//! # One check (every 30 s)
//!
//! Cassandra work proportional to gateways, never to readings:
//!
//! 1. [`SELECT_LAST_SEEN`] when only silent rules exist: one static cell per
//!    gateway partition of `latest` (`SELECT DISTINCT` may select partition
//!    key and static columns).
//! 2. [`SELECT_LATEST`] when a value rule exists: every row of `latest`,
//!    paged, which is gateways × sensors × names, each row with the static
//!    `last_seen` too (so step 1 is not needed as well). A rule for one
//!    gateway reads [`SELECT_LATEST_ONE`] instead.
//! 3. [`SELECT_PENDING`]: the outbox's pending partition.
//! 4. Writes only on change: a transition is one logged batch of
//!    [`UPSERT_ROW`] for the pair's state and for its outbox row (keyed by
//!    the transition, so a retried batch rewrites the same row); a pending
//!    timer that starts or resets is one [`UPSERT_ROW`] of the state alone.
//!    An unchanged pair costs nothing.
//! 5. Every check: [`SELECT_KIND`] of `rule`, and `settings` (display
//!    name, timezone, report time and recipients): two small reads, so an
//!    edit shows within one check.
//!
//! The daily report reads `readings` once a day, as the panel's report does.

/// Every gateway's `last_seen`, one static cell per partition.
pub const SELECT_LAST_SEEN: &str = "SELECT DISTINCT gateway_id, last_seen FROM {keyspace}.latest";

/// Every newest value, with its gateway's `last_seen`.
pub const SELECT_LATEST: &str =
    "SELECT gateway_id, last_seen, sensor, name, ts, value, unit FROM {keyspace}.latest";

/// One gateway's newest values, for a rule scoped to it.
pub const SELECT_LATEST_ONE: &str = "SELECT gateway_id, last_seen, sensor, name, ts, value, unit FROM {keyspace}.latest WHERE gateway_id = ?";

/// All rows of one kind and bucket (`rule`/`''`, `state`/`''`).
pub const SELECT_KIND: &str =
    "SELECT id, body FROM {keyspace}.notifier WHERE kind = ? AND bucket = ?";

/// The mails not yet sent or failed.
pub const SELECT_PENDING: &str = "SELECT id, body, message, due FROM {keyspace}.notifier WHERE kind = 'outbox' AND bucket = 'pending'";

/// Writes one row (a rule, a state, an outbox entry). A rule or state row
/// binds `message` and `due` *unset*, not null: a null writes a tombstone.
pub const UPSERT_ROW: &str = "INSERT INTO {keyspace}.notifier (kind, bucket, id, body, message, due) VALUES (?, ?, ?, ?, ?, ?)";

/// Writes a finished mail's record for its day, kept 30 days.
pub const INSERT_SENT: &str = "INSERT INTO {keyspace}.notifier (kind, bucket, id, body, message) VALUES ('sent', ?, ?, ?, ?) USING TTL 2592000";

/// Writes a row without a message or due time (a rule, a state, a
/// request): `(kind, bucket, id, body)`.
pub const UPSERT_BODY: &str =
    "INSERT INTO {keyspace}.notifier (kind, bucket, id, body) VALUES (?, ?, ?, ?)";

/// The mails of one kind and bucket (`outbox`/`pending`, `sent`/day).
pub const SELECT_MAILS: &str =
    "SELECT id, body, message FROM {keyspace}.notifier WHERE kind = ? AND bucket = ?";

/// Removes the rows whose id is in `[from, to)` (a removed rule's states).
pub const DELETE_ID_RANGE: &str =
    "DELETE FROM {keyspace}.notifier WHERE kind = ? AND bucket = ? AND id >= ? AND id < ?";

/// Removes a row (a finished pending mail, a removed rule's states).
pub const DELETE_ROW: &str =
    "DELETE FROM {keyspace}.notifier WHERE kind = ? AND bucket = ? AND id = ?";

/// The statements above, for the tests that check their shape.
pub const STATEMENTS: &[&str] = &[
    SELECT_LAST_SEEN,
    SELECT_LATEST,
    SELECT_LATEST_ONE,
    SELECT_KIND,
    SELECT_PENDING,
    UPSERT_ROW,
    INSERT_SENT,
    DELETE_ROW,
    UPSERT_BODY,
    SELECT_MAILS,
    DELETE_ID_RANGE,
];

/// The id of a pair's state row.
pub fn state_id(rule_id: &str, gateway_id: &str) -> String {
    format!("{rule_id}/{gateway_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_names_the_keyspace() {
        for statement in STATEMENTS {
            assert!(statement.contains("{keyspace}."), "{statement}");
        }
    }

    #[test]
    fn the_notifier_is_one_table() {
        let notifier = tenant_schema::MIGRATIONS
            .iter()
            .find(|m| m.name == "notifier")
            .expect("the notifier migration");
        assert_eq!(notifier.statements_for("k").len(), 1);
        for statement in STATEMENTS {
            assert!(
                statement.contains(".notifier") || statement.contains(".latest"),
                "{statement}"
            );
        }
    }

    #[test]
    fn state_ids_cannot_collide() {
        // Rule ids are [a-z0-9], gateway ids never contain '/': one split.
        let id = state_id("r1", "gw-1");
        assert_eq!(id.split_once('/'), Some(("r1", "gw-1")));
        assert_ne!(state_id("r1", "gw-1"), "report");
    }
}
