//! The `provision alert` and `provision report` calls on a tenant's
//! keyspace, through the superuser session as [`super::gateways`] does:
//! the `notifier` table's rules, states, report requests and mails through
//! [`notifier::store::AlertStore`] (one definition of each row for the CLI,
//! the panel and the notifier), and the daily report's keys of the
//! `settings` table ([`tenant_schema::settings`]).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::TryStreamExt;
use notifier::rules::{AlertRule, RuleId};
use notifier::store::{AlertStore, ReportRequest, StoredMail, StoredState};
use scylla::client::session::Session;
use tenant_schema::settings;

use super::{statement_error, CqlError, Result};
use crate::domain::ProviderId;

fn store<'a>(session: &'a Session, id: &ProviderId) -> AlertStore<'a> {
    AlertStore::new(session, &id.keyspace())
}

fn failed(id: &ProviderId, e: notifier::store::StoreError) -> CqlError {
    CqlError::Alerts {
        tenant: id.to_string(),
        source: e,
    }
}

/// Every rule of the tenant, by id, and every (rule, gateway) state.
pub async fn list(
    session: &Session,
    id: &ProviderId,
) -> Result<(Vec<AlertRule>, Vec<StoredState>)> {
    let store = store(session, id);
    let rules = store.rules().await.map_err(|e| failed(id, e))?;
    let states = store.states().await.map_err(|e| failed(id, e))?;
    Ok((rules, states))
}

/// Writes a new rule.
pub async fn add(session: &Session, id: &ProviderId, rule: &AlertRule) -> Result<()> {
    store(session, id)
        .put_rule(rule)
        .await
        .map_err(|e| failed(id, e))
}

/// Removes a rule and its pairs' states; an unknown id is an error.
pub async fn remove(session: &Session, id: &ProviderId, rule: &RuleId) -> Result<()> {
    match store(session, id).remove_rule(rule).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(CqlError::UnknownRule {
            tenant: id.to_string(),
            rule: rule.to_string(),
        }),
        Err(e) => Err(failed(id, e)),
    }
}

/// Asks the tenant's notifier for a report now.
pub async fn request_report(
    session: &Session,
    id: &ProviderId,
    request: &ReportRequest,
) -> Result<()> {
    store(session, id)
        .request_report(request)
        .await
        .map_err(|e| failed(id, e))
}

/// The mails not yet sent or failed, and those that ended on a UTC day.
pub async fn mails(
    session: &Session,
    id: &ProviderId,
    finished_on: NaiveDate,
) -> Result<(Vec<StoredMail>, Vec<StoredMail>)> {
    let store = store(session, id);
    let pending = store.pending_mails().await.map_err(|e| failed(id, e))?;
    let finished = store
        .finished_mails(finished_on)
        .await
        .map_err(|e| failed(id, e))?;
    Ok((pending, finished))
}

/// Every setting of the tenant (all pages).
pub async fn settings(session: &Session, id: &ProviderId) -> Result<BTreeMap<String, String>> {
    let what = |e: &dyn std::fmt::Display| statement_error(id, "read the settings", e);
    let rows: Vec<(String, Option<String>)> = session
        .query_iter(settings::select_all(&id.keyspace()), ())
        .await
        .map_err(|e| what(&e))?
        .rows_stream::<(String, Option<String>)>()
        .map_err(|e| what(&e))?
        .try_collect()
        .await
        .map_err(|e| what(&e))?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect())
}

/// Sets a setting, or removes it (`None`).
pub async fn set_setting(
    session: &Session,
    id: &ProviderId,
    name: &str,
    value: Option<&str>,
) -> Result<()> {
    let keyspace = id.keyspace();
    let result = match value {
        Some(value) => {
            session
                .query_unpaged(settings::upsert(&keyspace), (name, value))
                .await
        }
        None => {
            session
                .query_unpaged(settings::delete(&keyspace), (name,))
                .await
        }
    };
    result
        .map(|_| ())
        .map_err(|e| statement_error(id, &format!("write the setting {name}"), e))
}
