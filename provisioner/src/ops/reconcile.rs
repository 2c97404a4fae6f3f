//! `reconcile`: every known tenant to its desired state (recreating missing
//! or drifted containers, among them those whose image was rebuilt under
//! the same tag, restarting stopped ones), each logged as its own
//! operation, several tenants at once. A failing tenant is reported and the
//! rest go on. Containers with our labels that no tenant owns are reported.
//!
//! A pass observes the backend once for all tenants ([`PassObservation`]:
//! one container list, one network list, each image's id once) and plans
//! every tenant from that. A tenant whose plan changes nothing is done
//! there, without its lock; only one whose plan changes something is
//! observed again under its lock, planned from that and applied, so what a
//! concurrent operation did meanwhile is seen before anything is changed.

use std::collections::HashMap;

use futures::{stream, StreamExt};

use super::executor::Execution;
use super::report::{ReconcileReport, TenantReconcile, TenantResult};
use super::{ImageIds, Provisioner, StartOptions};
use crate::domain::planner;
use crate::domain::state::{NetworkObserved, ObservedContainer, ObservedInfra, TenantRecord};
use crate::domain::{Desired, Plan, ProviderId};
use crate::error::ErrorInfo;
use crate::error::Result;
use crate::lock;

/// Tenants reconciled at once, reported in the store's order: a tenant
/// with drift mostly waits on the engine while it is observed again and
/// changed.
const RECONCILE_AT_ONCE: usize = 8;

/// What one reconcile pass saw of the backend, for all tenants at once.
struct PassObservation {
    /// The shared infrastructure (no tenant's network in it).
    infra: ObservedInfra,
    /// Each tenant's network, and the Cassandra container that joins it
    /// (if its cluster has one). A tenant missing here (its cluster could
    /// not be told) is observed on its own, under its lock.
    networks: HashMap<ProviderId, (NetworkObserved, Option<String>)>,
    /// Every tenant container of ours.
    containers: Vec<ObservedContainer>,
    /// The images' ids, each asked once in the pass.
    images: ImageIds,
}

impl PassObservation {
    /// What observing `id` on its own (its infrastructure and containers)
    /// would have seen.
    fn tenant(&self, id: &ProviderId) -> Option<(ObservedInfra, Vec<ObservedContainer>)> {
        let (network, attach) = self.networks.get(id)?;
        let mut infra = self.infra.clone();
        infra.tenant_network = *network;
        infra.attach_container = attach.clone();
        let containers = self
            .containers
            .iter()
            .filter(|c| c.tenant.as_ref() == Some(id))
            .cloned()
            .collect();
        Some((infra, containers))
    }
}

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
        let infra = self.observe_infra(None).await?;
        let mut default_login = infra.default_superuser_login;
        let pass = self.observe_pass(infra, &records).await?;
        let pass = &pass;
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
            let outcome = self
                .reconcile_one(&record.id, dry_run, true, Some(pass))
                .await;
            if outcome.0.result == TenantResult::Ok {
                default_login = false;
            }
            outcomes.push(outcome);
        }
        // Owned ids: a stream of futures borrowing the records is not
        // `Send` for every lifetime, which the daemon's jobs need.
        let ids: Vec<ProviderId> = rest.map(|r| r.id.clone()).collect();
        let more: Vec<_> = stream::iter(ids)
            .map(|id| async move {
                self.reconcile_one(&id, dry_run, default_login, Some(pass))
                    .await
            })
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
        let orphans = self.orphans(&records, &pass.containers);
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
        self.reconcile_one(id, false, default_login, None).await.0
    }

    /// One observation of the backend for a whole pass over `records`,
    /// around the shared `infra` already observed.
    async fn observe_pass(
        &self,
        infra: ObservedInfra,
        records: &[TenantRecord],
    ) -> Result<PassObservation> {
        let mut wanted = Vec::with_capacity(records.len());
        for record in records {
            // A tenant whose cluster cannot be told is left to its own
            // observation, which reports why.
            if let Ok(cluster) = self.cluster_config(&record.id).await {
                let attach = cluster.attached_cassandra().map(str::to_owned);
                wanted.push((record.id.clone(), attach));
            }
        }
        let networks = self.backend.observe_tenant_networks(&wanted).await?;
        Ok(PassObservation {
            infra,
            networks: wanted
                .into_iter()
                .zip(networks)
                .map(|((id, attach), network)| (id, (network, attach)))
                .collect(),
            containers: self.backend.observe_containers(None).await?,
            images: ImageIds::default(),
        })
    }

    /// Plans one tenant from `pass` (if given): a plan that changes
    /// nothing is the answer. Otherwise observes, plans and applies the
    /// tenant under its lock; an operation is logged only for a plan that
    /// changes something. Returns the tenant's result and what `reconcile`
    /// prints of it.
    async fn reconcile_one(
        &self,
        id: &ProviderId,
        dry_run: bool,
        default_login: bool,
        pass: Option<&PassObservation>,
    ) -> (TenantReconcile, String) {
        if let Some(pass) = pass {
            if let Ok(plan) = self.plan_reconcile(id, default_login, Some(pass)).await {
                if !plan.changes() {
                    let tenant = TenantReconcile {
                        provider: id.clone(),
                        result: TenantResult::Unchanged,
                        plan: plan.lines(),
                        error: None,
                    };
                    return (tenant, plan.to_string());
                }
            }
        }
        let (plan, outcome) = match lock::acquire(self.data_dir(), id.as_str()).await {
            Err(e) => (Plan::default(), Err(e)),
            Ok(_lock) => match self.plan_reconcile(id, default_login, None).await {
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

    /// One tenant's reconcile plan, from what `pass` saw of it, or (none
    /// given, or the pass could not tell) observed now.
    async fn plan_reconcile(
        &self,
        id: &ProviderId,
        default_login: bool,
        pass: Option<&PassObservation>,
    ) -> Result<Plan> {
        let record = self.known(id).await?;
        let own_images;
        let (mut infra, observed, images) = match pass.and_then(|p| Some((p.tenant(id)?, p))) {
            Some(((infra, observed), pass)) => (infra, observed, &pass.images),
            None => {
                own_images = ImageIds::default();
                let infra = self.observe_backend_infra(Some(id)).await?;
                let observed = self.backend.observe_containers(Some(id)).await?;
                (infra, observed, &own_images)
            }
        };
        infra.default_superuser_login = default_login;
        self.observe_front(&mut infra, id, &observed).await?;
        let target = match record.desired {
            Desired::Running => Some(
                self.start_target(id, &StartOptions::default(), images)
                    .await?,
            ),
            _ => None,
        };
        Ok(planner::plan_reconcile_tenant(
            &self.view(id, Some(record)),
            target.as_ref(),
            &infra,
            &observed,
        ))
    }

    /// Containers named like ours, among `observed`, whose tenant the store
    /// does not know (another provisioner on the same engine, with another
    /// prefix, is not an orphan).
    fn orphans(&self, records: &[TenantRecord], observed: &[ObservedContainer]) -> Plan {
        let prefix = format!("{}-", self.config.docker.container_prefix);
        let ours: Vec<_> = observed
            .iter()
            .filter(|c| c.name.starts_with(&prefix))
            .cloned()
            .collect();
        let known: Vec<&ProviderId> = records.iter().map(|r| &r.id).collect();
        planner::orphans(&known, &ours)
    }
}
