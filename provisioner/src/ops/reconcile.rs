//! `reconcile`: every known tenant to its desired state (recreating missing
//! or drifted containers, among them those whose image was rebuilt under
//! the same tag, restarting stopped ones), each under its own lock and
//! logged as its own operation, several tenants at once. A failing tenant is reported and the rest
//! go on. Containers with our labels that no tenant owns are reported.

use futures::{stream, StreamExt};

use super::executor::Execution;
use super::report::{ReconcileReport, TenantReconcile, TenantResult};
use super::{Provisioner, StartOptions};
use crate::domain::planner;
use crate::domain::state::TenantRecord;
use crate::domain::{Desired, Plan, ProviderId};
use crate::error::ErrorInfo;
use crate::error::Result;
use crate::lock;

/// Tenants reconciled at once, each under its own lock, reported in the
/// store's order: each mostly waits on the engine, and one at a time a
/// pass that changed nothing took 17-23 s over 200 tenants here
/// (BENCHMARKS.md, "Tenants per host").
const RECONCILE_AT_ONCE: usize = 8;

impl Provisioner {
    /// Every known tenant to its desired state, and the orphans. Run as the
    /// daemon's queued operation, the whole run is that operation (each
    /// tenant's changes are logged as their own operations too).
    pub async fn reconcile(&self, dry_run: bool) -> Result<ReconcileReport> {
        match self.queued_waiting() {
            true => {
                let text = match dry_run {
                    true => "reconcile --dry-run".to_owned(),
                    false => "reconcile".to_owned(),
                };
                self.logged(None, "reconcile", text, self.reconcile_all(dry_run))
                    .await
            }
            false => self.reconcile_all(dry_run).await,
        }
    }

    async fn reconcile_all(&self, dry_run: bool) -> Result<ReconcileReport> {
        let records = self.store.tenants().await?;
        // Asked once per run: a CQL login attempt per tenant would cost the
        // node for nothing.
        let mut default_login = self.observe_infra(None).await?.default_superuser_login;
        let mut report = ReconcileReport {
            dry_run,
            plan: Vec::new(),
            tenants: Vec::new(),
            orphans: Vec::new(),
            plan_text: String::new(),
        };
        // While the managed node's default superuser still logs in, one
        // tenant at a time: the first that gets through retires it.
        let mut outcomes = Vec::with_capacity(records.len());
        let mut rest = records.iter();
        while default_login {
            let Some(record) = rest.next() else { break };
            let outcome = self.reconcile_one(&record.id, dry_run, true).await;
            if outcome.0.result == TenantResult::Ok {
                default_login = false;
            }
            outcomes.push(outcome);
        }
        // Owned ids: a stream of futures borrowing the records is not
        // `Send` for every lifetime, which the daemon's jobs need.
        let ids: Vec<ProviderId> = rest.map(|r| r.id.clone()).collect();
        let more: Vec<_> = stream::iter(ids)
            .map(|id| async move { self.reconcile_one(&id, dry_run, default_login).await })
            .buffered(RECONCILE_AT_ONCE)
            .collect()
            .await;
        outcomes.extend(more);
        for (tenant, text) in outcomes {
            report.plan.extend(
                tenant
                    .plan
                    .iter()
                    .map(|s| format!("{}: {s}", tenant.provider)),
            );
            report.plan_text.push_str(&text);
            report.tenants.push(tenant);
        }
        let orphans = self.orphans(&records).await?;
        if !orphans.is_empty() {
            report.orphans = orphans.lines();
            report.plan.extend(orphans.lines());
            report.plan_text.push_str(&orphans.to_string());
        }
        Ok(report)
    }

    /// Whether the managed node's default superuser still logs in (asked
    /// once per watcher pass, not once per tenant).
    pub async fn default_superuser_logs_in(&self) -> Result<bool> {
        Ok(self.observe_infra(None).await?.default_superuser_login)
    }

    /// One tenant to its desired state (the daemon's watcher), given what
    /// [`Provisioner::default_superuser_logs_in`] answered.
    pub async fn reconcile_tenant(&self, id: &ProviderId, default_login: bool) -> TenantReconcile {
        self.reconcile_one(id, false, default_login).await.0
    }

    /// Observes, plans and applies one tenant under its lock; an operation
    /// is logged only for a plan that changes something. Returns the
    /// tenant's result and what `reconcile` prints of it.
    async fn reconcile_one(
        &self,
        id: &ProviderId,
        dry_run: bool,
        default_login: bool,
    ) -> (TenantReconcile, String) {
        let (plan, outcome) = match lock::acquire(self.data_dir(), id.as_str()).await {
            Err(e) => (Plan::default(), Err(e)),
            Ok(_lock) => match self.plan_reconcile(id, default_login).await {
                Ok(plan) if dry_run || !plan.changes() => (plan, Ok(())),
                Ok(plan) => {
                    let applied = self
                        .logged(
                            Some(id),
                            "reconcile",
                            format!("reconcile ({id})"),
                            Execution::new(self, id).apply(&plan),
                        )
                        .await;
                    (plan, applied)
                }
                Err(e) => (Plan::default(), Err(e)),
            },
        };
        let mut text = plan.to_string();
        let result = match (&outcome, dry_run, plan.changes()) {
            (Err(_), _, _) => TenantResult::Failed,
            (Ok(()), _, false) => TenantResult::Unchanged,
            (Ok(()), true, true) => TenantResult::Planned,
            (Ok(()), false, true) => TenantResult::Ok,
        };
        if let Err(e) = &outcome {
            text.push_str(&format!("error: tenant {id}: {e}\n"));
        }
        let tenant = TenantReconcile {
            provider: id.clone(),
            result,
            plan: plan.lines(),
            error: outcome.as_ref().err().map(ErrorInfo::from),
        };
        (tenant, text)
    }

    /// One tenant's reconcile plan, observed now.
    async fn plan_reconcile(&self, id: &ProviderId, default_login: bool) -> Result<Plan> {
        let record = self.known(id).await?;
        let mut infra = self.observe_backend_infra(Some(id)).await?;
        infra.default_superuser_login = default_login;
        let observed = self.backend.observe_containers(Some(id)).await?;
        self.observe_front(&mut infra, id, &observed).await?;
        let target = match record.desired {
            Desired::Running => Some(self.start_target(id, &StartOptions::default()).await?),
            _ => None,
        };
        Ok(planner::plan_reconcile_tenant(
            &self.view(id, Some(record)),
            target.as_ref(),
            &infra,
            &observed,
        ))
    }

    /// Containers named like ours whose tenant the store does not know
    /// (another provisioner on the same engine, with another prefix, is
    /// not an orphan).
    async fn orphans(&self, records: &[TenantRecord]) -> Result<Plan> {
        let prefix = format!("{}-", self.config.docker.container_prefix);
        let observed: Vec<_> = self
            .backend
            .observe_containers(None)
            .await?
            .into_iter()
            .filter(|c| c.name.starts_with(&prefix))
            .collect();
        let known: Vec<&ProviderId> = records.iter().map(|r| &r.id).collect();
        Ok(planner::orphans(&known, &observed))
    }
}
