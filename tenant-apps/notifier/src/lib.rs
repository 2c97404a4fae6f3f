//! The notifier of one tenant: alert rules over what its gateways report,
//! mailed on every transition, and a daily report by mail. The pure core
//! so far: no Cassandra, no SMTP, no clock.

pub mod evaluate;
pub mod mail;
pub mod outbox;
pub mod rules;
pub mod timezone;
