//! The notifier of one tenant: alert rules over what its gateways report,
//! mailed on every transition, and a daily report by mail.
//!
//! The pure core (`rules` to `store` below) has no Cassandra, SMTP or
//! clock of its own; [`app`] runs it: [`cassandra`] executes the plans,
//! [`smtp`] sends, [`clock`] is injected (a manual clock in tests), and
//! [`http`] and [`metrics`] say how it goes. [`store`] is the table's rows
//! as the CLI, the panel and the notifier share them.
//!
//! ```text
//!  every 30 s:  latest (last_seen, newest values) ──┐
//!               rules, pair states (memory) ────────┼─▶ evaluate ─▶ new state + Transition?
//!               now (injected) ─────────────────────┘                 │
//!                                          mail::alert_message ◀──────┘
//!                                                   │ formatted bytes, MailKey
//!                        notifier table: state + outbox row, one logged batch
//!                                                   │
//!                        outbox: Queued ─▶ Sending (lease) ─▶ Sent | Failed | Queued (backoff)
//!  once a day:  timezone::report_due ─▶ mail::report_message (summary + the panel's CSV)
//! ```
//!
//! - [`rules`]: the rules, their parsing (`10m`, `08:00-18:00`, recipient
//!   lists) and their stored text.
//! - [`evaluate`]: the state machine of a (rule, gateway) pair, with the
//!   sampling semantics and what a closing window does.
//! - [`check`]: one check planned, pure: the snapshot of `latest` and the
//!   registry, the rules and states → the pairs to write, with their
//!   transitions, and the states to drop.
//! - [`mail`]: the alert mails and the daily report, built with lettre.
//! - [`outbox`]: a queued mail's life, retries with backoff, the idempotency
//!   key, and the at-least-once trade-off.
//! - [`timezone`]: the tenant's `timezone` setting and when the report is
//!   due.
//! - [`schema`]: the one table (schema version 3) and its queries.
//! - [`store`]: rules, states, report requests and mails, read and written
//!   for the CLI, the panel and the notifier.
//! - [`app`]: the [`app::Notifier`] and its loop; [`cassandra`]: the
//!   executor; [`smtp`]: the relay; [`config`]: the environment;
//!   [`clock`]: the injected clock; [`http`] and [`metrics`]: `/healthz`
//!   and `/metrics`.

pub mod app;
pub mod cassandra;
pub mod check;
pub mod clock;
pub mod config;
pub mod evaluate;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod outbox;
pub mod rules;
pub mod schema;
pub mod smtp;
pub mod store;
pub mod timezone;
