//! `reconcile`: every known tenant to its desired state (recreating missing
//! or drifted containers, among them those whose image was rebuilt under
//! the same tag, restarting stopped ones), each under its own lock and
//! logged as its own operation. A failing tenant is reported and the rest
//! go on. Containers with our labels that no tenant owns are reported.

use super::executor::Execution;
use super::report::{ErrorInfo, ReconcileReport, TenantReconcile, TenantResult};
use super::{Provisioner, StartOptions};
use crate::domain::planner;
use crate::domain::state::TenantRecord;
use crate::domain::{Desired, Plan, ProviderId};
use crate::error::Result;
use crate::lock;

impl Provisioner {
    pub async fn reconcile(&self, dry_run: bool) -> Result<ReconcileReport> {
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
        for record in &records {
            let id = &record.id;
            // Observed, planned and applied under the tenant's lock; an
            // operation is logged only for a plan that changes something.
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
                        default_login = false;
                        (plan, applied)
                    }
                    Err(e) => (Plan::default(), Err(e)),
                },
            };
            report
                .plan
                .extend(plan.lines().iter().map(|s| format!("{id}: {s}")));
            report.plan_text.push_str(&plan.to_string());
            let result = match (&outcome, dry_run, plan.changes()) {
                (Err(_), _, _) => TenantResult::Failed,
                (Ok(()), _, false) => TenantResult::Unchanged,
                (Ok(()), true, true) => TenantResult::Planned,
                (Ok(()), false, true) => TenantResult::Ok,
            };
            if let Err(e) = &outcome {
                report
                    .plan_text
                    .push_str(&format!("error: tenant {id}: {e}\n"));
            }
            report.tenants.push(TenantReconcile {
                provider: id.clone(),
                result,
                plan: plan.lines(),
                error: outcome.as_ref().err().map(ErrorInfo::from),
            });
        }
        let orphans = self.orphans(&records).await?;
        if !orphans.is_empty() {
            report.orphans = orphans.lines();
            report.plan.extend(orphans.lines());
            report.plan_text.push_str(&orphans.to_string());
        }
        Ok(report)
    }

    /// One tenant's reconcile plan, observed now.
    async fn plan_reconcile(&self, id: &ProviderId, default_login: bool) -> Result<Plan> {
        let record = self.known(id).await?;
        let mut infra = self.backend.observe_infra(Some(id)).await?;
        infra.default_superuser_login = default_login;
        let observed = self.backend.observe_containers(Some(id)).await?;
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
