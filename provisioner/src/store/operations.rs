//! The operations log behind `provision history`: what was asked, when, by
//! whom, and how it ended. Each row names the process that ran it (boot id,
//! pid and the process's start time), so a row left unfinished by a
//! process that died reads as [`Outcome::Interrupted`], one whose process
//! still runs as [`Outcome::Running`].

use serde::Serialize;
use sqlx::Row;

use super::{now, Result, Store};
use crate::domain::ProviderId;

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    /// Its process still runs.
    Running,
    /// Its process ended without finishing it (killed, crashed, rebooted).
    Interrupted,
}

/// One operation as `provision history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OperationRecord {
    pub id: i64,
    pub provider: Option<String>,
    pub action: String,
    /// The request as given (e.g. `start acme --gateway-port 6100`).
    pub request: Option<String>,
    pub requested_by: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Outcome,
    /// The error, for a failed operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an operation was asked to do, and by whom.
#[derive(Debug, Clone)]
pub struct Request {
    pub provider: Option<ProviderId>,
    pub action: &'static str,
    pub text: String,
    pub requested_by: String,
}

impl Store {
    /// Logs the start of an operation; returns its id for
    /// [`Store::finish_operation`].
    pub async fn begin_operation(&self, request: &Request) -> Result<i64> {
        let id = sqlx::query(
            "INSERT INTO operations (provider, action, request, requested_by, process, started_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(request.provider.as_ref().map(ProviderId::as_str))
        .bind(request.action)
        .bind(&request.text)
        .bind(&request.requested_by)
        .bind(this_process())
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .last_insert_rowid();
        Ok(id)
    }

    /// Records how the operation ended (`error` is `None` for success).
    pub async fn finish_operation(&self, op: i64, error: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE operations SET finished_at = ?, outcome = ?, detail = ? WHERE id = ?")
            .bind(now())
            .bind(if error.is_some() { "failed" } else { "ok" })
            .bind(error.unwrap_or(""))
            .bind(op)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// The operations, oldest first, of one tenant or of all.
    pub async fn history(&self, provider: Option<&ProviderId>) -> Result<Vec<OperationRecord>> {
        let rows = sqlx::query(
            "SELECT id, provider, action, request, requested_by, process, started_at, \
             finished_at, outcome, detail FROM operations \
             WHERE ?1 IS NULL OR provider = ?1 ORDER BY id",
        )
        .bind(provider.map(ProviderId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| {
                let outcome = match r.get::<Option<String>, _>("outcome").as_deref() {
                    Some("ok") => Outcome::Ok,
                    Some(_) => Outcome::Failed,
                    None if process_alive(r.get::<Option<String>, _>("process").as_deref()) => {
                        Outcome::Running
                    }
                    None => Outcome::Interrupted,
                };
                OperationRecord {
                    id: r.get("id"),
                    provider: r.get("provider"),
                    action: r.get("action"),
                    request: r.get("request"),
                    requested_by: r.get("requested_by"),
                    started_at: r.get("started_at"),
                    finished_at: r.get("finished_at"),
                    outcome,
                    error: r
                        .get::<Option<String>, _>("detail")
                        .filter(|d| !d.is_empty()),
                }
            })
            .collect())
    }
}

/// This boot's id (a new one after every reboot).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A process's start time in clock ticks since boot (`/proc/<pid>/stat`,
/// field 22), which tells a process from a later one with the same pid.
fn start_time(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19).map(str::to_owned)
}

/// `boot id:pid:start time` of this process.
fn this_process() -> String {
    let pid = std::process::id().to_string();
    let start = start_time(&pid).unwrap_or_default();
    format!("{}:{pid}:{start}", boot_id())
}

/// Whether the process a row names still runs.
fn process_alive(process: Option<&str>) -> bool {
    let Some(mut parts) = process.map(|p| p.split(':')) else {
        return false;
    };
    let (Some(boot), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    boot == boot_id() && start_time(pid).as_deref() == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let me = this_process();
        assert!(process_alive(Some(&me)), "{me}");
        let pid = std::process::id();
        let other = me.replace(&format!(":{pid}:"), ":999999999:");
        assert!(!process_alive(Some(&other)));
        assert!(!process_alive(None));
    }
}
