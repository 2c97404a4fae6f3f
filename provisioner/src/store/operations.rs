//! The operations log behind `provision history` and the daemon's
//! `/v1/operations`: what was asked, when, by whom, what it answered (a
//! report) or how it failed, and the steps done so far. An operation the
//! daemon accepted waits as `queued` until its turn. Each row names the
//! process that ran it (boot id, pid and the process's start time), so a
//! row left unfinished by a process that died reads as
//! [`OperationState::Interrupted`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{now, Result, Store};
use crate::domain::{ErrorInfo, ErrorKind, ProviderId};

/// Where an operation is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationState {
    /// Accepted by the daemon, waiting for its tenant's earlier operations.
    Queued,
    /// Its process runs it now.
    Running,
    Succeeded,
    Failed,
    /// Its process ended without finishing it (killed, crashed, rebooted).
    Interrupted,
}

impl OperationState {
    /// Whether the operation will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, OperationState::Queued | OperationState::Running)
    }
}

impl std::fmt::Display for OperationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self).expect("a state serializes");
        f.pad(text.as_str().unwrap_or_default())
    }
}

/// One operation, as `provision history --json` and `/v1/operations` show
/// it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// The operation's id (digits), as in `/v1/operations/{id}`.
    pub id: String,
    /// What was asked: `start`, `stop`, `destroy`, `reconcile`, ...
    pub kind: String,
    /// The tenant it is about (none for a reconcile of all).
    pub tenant: Option<String>,
    pub state: OperationState,
    /// The request as given (e.g. `start acme --gateway-port 6100`).
    pub request: Option<String>,
    pub requested_by: Option<String>,
    /// When the daemon accepted it (none for one the CLI ran itself).
    #[serde(default)]
    pub queued_at: Option<String>,
    /// When it began to run (none while queued).
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What the operation answered: the same document as the CLI's
    /// `--json` for that command.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<ErrorInfo>,
    /// The steps done so far, as printed.
    #[serde(default)]
    pub progress: Vec<String>,
}

/// What an operation was asked to do, and by whom.
#[derive(Debug, Clone)]
pub struct Request {
    pub provider: Option<ProviderId>,
    pub action: &'static str,
    pub text: String,
    pub requested_by: String,
}

const COLUMNS: &str = "id, provider, action, request, requested_by, process, state, queued_at, \
                       started_at, finished_at, outcome, detail, result, error, progress";

impl Store {
    /// Logs an operation that starts now; returns its id for
    /// [`Store::finish_operation`].
    pub async fn begin_operation(&self, request: &Request) -> Result<i64> {
        self.insert_operation(request, "running").await
    }

    /// Logs an operation that waits for its turn ([`Store::run_operation`]
    /// starts it).
    pub async fn enqueue_operation(&self, request: &Request) -> Result<i64> {
        self.insert_operation(request, "queued").await
    }

    async fn insert_operation(&self, request: &Request, state: &str) -> Result<i64> {
        let now = now();
        let id = sqlx::query(
            "INSERT INTO operations (provider, action, request, requested_by, process, state, \
             queued_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(request.provider.as_ref().map(ProviderId::as_str))
        .bind(request.action)
        .bind(&request.text)
        .bind(&request.requested_by)
        .bind(this_process())
        .bind(state)
        .bind((state == "queued").then(|| now.clone()))
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .last_insert_rowid();
        Ok(id)
    }

    /// A queued operation's turn: it runs now, in this process, as
    /// `request` says (the library's words for what the daemon queued).
    pub async fn run_operation(&self, op: i64, request: &Request) -> Result<()> {
        sqlx::query(
            "UPDATE operations SET state = 'running', started_at = ?, process = ?, \
             request = ?, requested_by = ? WHERE id = ?",
        )
        .bind(now())
        .bind(this_process())
        .bind(&request.text)
        .bind(&request.requested_by)
        .bind(op)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// One more step done.
    pub async fn record_progress(&self, op: i64, step: &str) -> Result<()> {
        sqlx::query(
            "UPDATE operations SET progress = json_insert(coalesce(progress, '[]'), '$[#]', ?) \
             WHERE id = ?",
        )
        .bind(step)
        .bind(op)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// Records how the operation ended: its answer, its error, or both (a
    /// reconcile answers a report and fails with a tenant's error).
    pub async fn finish_operation(
        &self,
        op: i64,
        result: Option<&Value>,
        error: Option<&ErrorInfo>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE operations SET finished_at = ?, outcome = ?, detail = ?, result = ?, \
             error = ? WHERE id = ?",
        )
        .bind(now())
        .bind(if error.is_some() { "failed" } else { "ok" })
        .bind(error.map_or("", |e| e.message.as_str()))
        .bind(result.map(Value::to_string))
        .bind(error.map(|e| serde_json::to_string(e).expect("an error serializes")))
        .bind(op)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// Replaces what a finished operation answered (to forget what is
    /// shown once).
    pub async fn replace_result(&self, op: i64, result: &Value) -> Result<()> {
        sqlx::query("UPDATE operations SET result = ? WHERE id = ?")
            .bind(result.to_string())
            .bind(op)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// One operation.
    pub async fn operation(&self, op: i64) -> Result<Option<OperationRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM operations WHERE id = ?"))
            .bind(op)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(row.as_ref().map(record))
    }

    /// The operations, oldest first, of one tenant or of all.
    pub async fn history(&self, provider: Option<&ProviderId>) -> Result<Vec<OperationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM operations WHERE ?1 IS NULL OR provider = ?1 ORDER BY id"
        ))
        .bind(provider.map(ProviderId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(rows.iter().map(record).collect())
    }

    /// How many operations of each (kind, state) the log holds, with the
    /// total seconds the finished ones took (the daemon's metrics).
    pub async fn operation_counts(&self) -> Result<Vec<(String, OperationState, u64, f64)>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM operations"))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        let mut counts: Vec<(String, OperationState, u64, f64)> = Vec::new();
        for record in rows.iter().map(record) {
            let secs = match (&record.started_at, &record.finished_at) {
                (Some(a), Some(b)) => seconds_between(a, b),
                _ => 0.0,
            };
            match counts
                .iter_mut()
                .find(|(k, s, _, _)| *k == record.kind && *s == record.state)
            {
                Some(entry) => {
                    entry.2 += 1;
                    entry.3 += secs;
                }
                None => counts.push((record.kind, record.state, 1, secs)),
            }
        }
        Ok(counts)
    }
}

fn seconds_between(a: &str, b: &str) -> f64 {
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => (b - a).num_milliseconds().max(0) as f64 / 1000.0,
        _ => 0.0,
    }
}

fn record(r: &SqliteRow) -> OperationRecord {
    let outcome: Option<String> = r.get("outcome");
    let state = match outcome.as_deref() {
        Some("ok") => OperationState::Succeeded,
        Some(_) => OperationState::Failed,
        None if !process_alive(r.get::<Option<String>, _>("process").as_deref()) => {
            OperationState::Interrupted
        }
        None if r.get::<Option<String>, _>("state").as_deref() == Some("queued") => {
            OperationState::Queued
        }
        None => OperationState::Running,
    };
    let detail = r
        .get::<Option<String>, _>("detail")
        .filter(|d| !d.is_empty());
    // Rows older than the error column have only its message.
    let error = r
        .get::<Option<String>, _>("error")
        .and_then(|e| serde_json::from_str(&e).ok())
        .or_else(|| detail.map(|d| ErrorInfo::new(ErrorKind::Other, d)));
    let queued = r.get::<Option<String>, _>("state").as_deref() == Some("queued");
    OperationRecord {
        id: r.get::<i64, _>("id").to_string(),
        kind: r.get("action"),
        tenant: r.get("provider"),
        state,
        request: r.get("request"),
        requested_by: r.get("requested_by"),
        queued_at: r.get("queued_at"),
        started_at: (!queued).then(|| r.get("started_at")),
        finished_at: r.get("finished_at"),
        result: r
            .get::<Option<String>, _>("result")
            .and_then(|v| serde_json::from_str(&v).ok()),
        error,
        progress: r
            .get::<Option<String>, _>("progress")
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default(),
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

    #[tokio::test]
    async fn an_operation_goes_from_queued_through_its_steps_to_its_answer() {
        let dir = std::env::temp_dir().join(format!("pv-ops-{}", std::process::id()));
        let store = Store::open(&dir.join("state.db")).await.unwrap();
        let request = Request {
            provider: Some(ProviderId::parse("acme").unwrap()),
            action: "start",
            text: "start acme".into(),
            requested_by: "token:ci".into(),
        };
        let op = store.enqueue_operation(&request).await.unwrap();
        let queued = store.operation(op).await.unwrap().unwrap();
        assert_eq!(
            (queued.state, queued.started_at.as_deref()),
            (OperationState::Queued, None)
        );
        store.run_operation(op, &request).await.unwrap();
        store.record_progress(op, "create network").await.unwrap();
        store.record_progress(op, "lease port").await.unwrap();
        let running = store.operation(op).await.unwrap().unwrap();
        assert_eq!(running.state, OperationState::Running);
        assert_eq!(running.progress, ["create network", "lease port"]);
        let error = ErrorInfo::new(ErrorKind::PortTaken, "taken");
        store
            .finish_operation(op, Some(&serde_json::json!({"a": 1})), Some(&error))
            .await
            .unwrap();
        let done = store.operation(op).await.unwrap().unwrap();
        assert_eq!(done.state, OperationState::Failed);
        assert_eq!(done.error, Some(error));
        assert_eq!(done.result, Some(serde_json::json!({"a": 1})));
        assert_eq!(done.id, op.to_string());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
