//! The `notifier` table's rows as everyone outside the notifier's check
//! loop reads and writes them: the `provision alert` and `provision report`
//! CLI (with the provisioner's session), the admin panel's Alerts page and
//! dashboard (with the tenant's role), and the notifier itself at start.
//!
//! One definition of each row's kind, bucket, id and body (see
//! [`crate::schema`] for the layout), so a rule written by the CLI is the
//! rule the panel edits and the notifier evaluates. Rows are small and few
//! (tens of rules, rules × gateways states, a handful of pending mails), so
//! these calls use unprepared statements and page through every read.

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use scylla::client::session::Session;
use serde::{Deserialize, Serialize};

use crate::evaluate::PairState;
use crate::outbox::OutboxEntry;
use crate::rules::{AlertRule, RuleError, RuleId};

/// The `kind` of each row.
pub mod kind {
    pub const RULE: &str = "rule";
    pub const STATE: &str = "state";
    pub const REQUEST: &str = "request";
    pub const OUTBOX: &str = "outbox";
    pub const SENT: &str = "sent";
}

/// The bucket of the single-partition kinds (`rule`, `state`, `request`).
pub const NO_BUCKET: &str = "";
/// The bucket of the mails not yet sent or failed.
pub const PENDING: &str = "pending";

/// Why a read or write of the `notifier` table failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not {what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stored rule {id:?} is unreadable: {source}")]
    Rule {
        id: String,
        #[source]
        source: RuleError,
    },
    #[error("stored {kind} row {id:?} is unreadable: {reason}")]
    Row {
        kind: &'static str,
        id: String,
        reason: String,
    },
}

fn query_err<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Query {
        what,
        source: Box::new(e),
    }
}

/// The state of one (rule, gateway) pair, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    pub rule_id: RuleId,
    pub gateway_id: String,
    pub state: PairState,
}

/// A mail in the outbox or in a day's record: its bookkeeping and bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMail {
    pub entry: OutboxEntry,
    pub message: Vec<u8>,
}

/// A report asked for now (`provision report send`), which the notifier
/// turns into a mail at its next look (every few seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRequest {
    /// Random, so two requests for one day are two mails.
    pub id: String,
    /// The local day to report.
    pub day: NaiveDate,
    /// The recipients; empty: the tenant's report recipients.
    #[serde(default)]
    pub to: Vec<lettre::Address>,
    pub requested_at: DateTime<Utc>,
}

/// The `notifier` table of one tenant keyspace, through one session.
pub struct AlertStore<'a> {
    session: &'a Session,
    keyspace: String,
}

impl<'a> AlertStore<'a> {
    pub fn new(session: &'a Session, keyspace: &str) -> Self {
        Self {
            session,
            keyspace: keyspace.to_owned(),
        }
    }

    fn statement(&self, template: &str) -> String {
        template.replace("{keyspace}", &self.keyspace)
    }

    /// Every `(id, body)` of one kind and bucket.
    async fn bodies(
        &self,
        kind: &str,
        bucket: &str,
        what: &'static str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.session
            .query_iter(self.statement(crate::schema::SELECT_KIND), (kind, bucket))
            .await
            .map_err(query_err(what))?
            .rows_stream::<(String, Option<String>)>()
            .map_err(query_err(what))?
            .map_ok(|(id, body)| (id, body.unwrap_or_default()))
            .try_collect()
            .await
            .map_err(query_err(what))
    }

    async fn put_body(
        &self,
        kind: &str,
        id: &str,
        body: &str,
        what: &'static str,
    ) -> Result<(), StoreError> {
        self.session
            .query_unpaged(
                self.statement(crate::schema::UPSERT_BODY),
                (kind, NO_BUCKET, id, body),
            )
            .await
            .map_err(query_err(what))?;
        Ok(())
    }

    /// Every rule, sorted by id. An unreadable row is an error naming it.
    pub async fn rules(&self) -> Result<Vec<AlertRule>, StoreError> {
        let mut rules = self
            .bodies(kind::RULE, NO_BUCKET, "read the alert rules")
            .await?
            .into_iter()
            .map(|(id, body)| {
                AlertRule::decode(&body).map_err(|source| StoreError::Rule { id, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(rules)
    }

    /// One rule, if it exists.
    pub async fn rule(&self, id: &RuleId) -> Result<Option<AlertRule>, StoreError> {
        Ok(self.rules().await?.into_iter().find(|r| &r.id == id))
    }

    /// Writes a rule (new or edited: an edit keeps the id).
    pub async fn put_rule(&self, rule: &AlertRule) -> Result<(), StoreError> {
        self.put_body(
            kind::RULE,
            rule.id.as_str(),
            &rule.encode(),
            "write the alert rule",
        )
        .await
    }

    /// Removes a rule and its pairs' states; `false` if there was no such
    /// rule. Its mails already queued still go out.
    pub async fn remove_rule(&self, id: &RuleId) -> Result<bool, StoreError> {
        if self.rule(id).await?.is_none() {
            return Ok(false);
        }
        let what = "remove the alert rule";
        self.session
            .query_unpaged(
                self.statement(crate::schema::DELETE_ROW),
                (kind::RULE, NO_BUCKET, id.as_str()),
            )
            .await
            .map_err(query_err(what))?;
        // The states `<id>/…`: one range tombstone ('0' follows '/').
        self.session
            .query_unpaged(
                self.statement(crate::schema::DELETE_ID_RANGE),
                (kind::STATE, NO_BUCKET, format!("{id}/"), format!("{id}0")),
            )
            .await
            .map_err(query_err(what))?;
        Ok(true)
    }

    /// Every pair's state, sorted by rule then gateway. Rows that are not
    /// a pair (the report's bookkeeping) are skipped.
    pub async fn states(&self) -> Result<Vec<StoredState>, StoreError> {
        let mut states = Vec::new();
        for (id, body) in self
            .bodies(kind::STATE, NO_BUCKET, "read the alert states")
            .await?
        {
            let Some((rule, gateway)) = id.split_once('/') else {
                continue;
            };
            let rule_id = RuleId::parse(rule).map_err(|e| StoreError::Row {
                kind: kind::STATE,
                id: id.clone(),
                reason: e.to_string(),
            })?;
            let state: PairState = serde_json::from_str(&body).map_err(|e| StoreError::Row {
                kind: kind::STATE,
                id: id.clone(),
                reason: e.to_string(),
            })?;
            states.push(StoredState {
                rule_id,
                gateway_id: gateway.to_owned(),
                state,
            });
        }
        Ok(states)
    }

    /// The mails in one bucket of one kind: the pending ones, or a UTC
    /// day's record of those that ended.
    async fn mails(&self, kind: &str, bucket: &str) -> Result<Vec<StoredMail>, StoreError> {
        let what = "read the outbox";
        let rows: Vec<(String, Option<String>, Option<Vec<u8>>)> = self
            .session
            .query_iter(self.statement(crate::schema::SELECT_MAILS), (kind, bucket))
            .await
            .map_err(query_err(what))?
            .rows_stream::<(String, Option<String>, Option<Vec<u8>>)>()
            .map_err(query_err(what))?
            .try_collect()
            .await
            .map_err(query_err(what))?;
        rows.into_iter()
            .map(|(id, body, message)| {
                let entry: OutboxEntry = serde_json::from_str(body.as_deref().unwrap_or(""))
                    .map_err(|e| StoreError::Row {
                        kind: "outbox",
                        id,
                        reason: e.to_string(),
                    })?;
                Ok(StoredMail {
                    entry,
                    message: message.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The mails not yet sent or failed.
    pub async fn pending_mails(&self) -> Result<Vec<StoredMail>, StoreError> {
        self.mails(kind::OUTBOX, PENDING).await
    }

    /// The mails that ended (sent or failed) on a UTC day; kept 30 days.
    pub async fn finished_mails(&self, day: NaiveDate) -> Result<Vec<StoredMail>, StoreError> {
        self.mails(kind::SENT, &day.to_string()).await
    }

    /// Asks the notifier for a report now.
    pub async fn request_report(&self, request: &ReportRequest) -> Result<(), StoreError> {
        // Serializing plain data with string keys cannot fail.
        let body = serde_json::to_string(request).unwrap_or_default();
        self.put_body(kind::REQUEST, &request.id, &body, "request the report")
            .await
    }

    /// The report requests not yet taken.
    pub async fn report_requests(&self) -> Result<Vec<ReportRequest>, StoreError> {
        self.bodies(kind::REQUEST, NO_BUCKET, "read the report requests")
            .await?
            .into_iter()
            .map(|(id, body)| {
                serde_json::from_str(&body).map_err(|e| StoreError::Row {
                    kind: kind::REQUEST,
                    id,
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}
