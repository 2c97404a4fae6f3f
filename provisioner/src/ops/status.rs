//! `status`, `list` and `logs`: read-only views of tenants, from the store
//! and the backend.

use futures::future::join_all;
use futures::StreamExt;

use tenant_schema::health::{IngestHealth, NotifierHealth};

use super::report::{GatewayConnections, NotifierStatus, TenantState};
use super::{ContainerStatus, Provisioner, TenantStatus};
use crate::backend::LogChunk;
use crate::domain::state::TenantRecord;
use crate::domain::{ContainerState, Desired, Health, ProviderId, Role};
use crate::error::{Error, Result};

/// How many containers a tenant runs: ingest, admin, notifier.
const APPS: usize = Role::ALL.len();

/// A tenant's state in one word, from its desired state and how many of
/// its three containers run, are healthy, and fail their health check (a
/// tenant whose Cassandra is down runs, and is degraded; one that has yet
/// to get its notifier, too).
fn summarize(desired: Desired, running: usize, healthy: usize, unhealthy: usize) -> TenantState {
    match (desired, running, healthy, unhealthy) {
        (Desired::Destroyed, 0, _, _) => TenantState::Destroyed,
        (_, APPS, APPS, _) => TenantState::Running,
        (_, 0, _, _) => TenantState::Stopped,
        (Desired::Running, APPS, _, 0) => TenantState::Starting,
        _ => TenantState::Degraded,
    }
}

/// The notifier's newest health line, as `status` shows it.
fn notifier_status(health: &NotifierHealth) -> NotifierStatus {
    NotifierStatus {
        mail: if health.mail_on { "on" } else { "off" }.to_owned(),
        rules: health.rules,
        firing: health.firing,
        pending: health.pending,
        failed: health.failed,
    }
}

impl Provisioner {
    /// `status` of one tenant, or of every tenant (`list`).
    pub async fn status(&self, id: Option<&ProviderId>) -> Result<Vec<TenantStatus>> {
        let records = match id {
            Some(id) => vec![self.known(id).await?],
            None => self.store.tenants().await?,
        };
        join_all(records.into_iter().map(|r| self.tenant_status(r)))
            .await
            .into_iter()
            .collect()
    }

    async fn tenant_status(&self, record: TenantRecord) -> Result<TenantStatus> {
        let network = self.config.tenant_network(&record.id);
        // The three containers at once: a stats sample takes the engine
        // a second or more, whatever else it does.
        let container = |role: Role| {
            let (name, network) = (self.config.container_name(&record.id, role), &network);
            async move {
                let Some(details) = self.backend.details(&name, network).await? else {
                    return Ok(None);
                };
                // from the details' look, not a second one
                let usage = match details.state {
                    ContainerState::Running => self.backend.usage_of(&details).await?,
                    _ => None,
                };
                Ok::<_, Error>(Some(ContainerStatus {
                    role,
                    details,
                    usage,
                }))
            }
        };
        let containers: Vec<ContainerStatus> = join_all(Role::ALL.map(container))
            .await
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<_>>()?;
        let running = containers
            .iter()
            .filter(|c| c.details.state.is_running())
            .count();
        let health = |h: Health| containers.iter().filter(|c| c.details.health == h).count();
        let (healthy, unhealthy) = (health(Health::Healthy), health(Health::Unhealthy));
        let connections = containers
            .iter()
            .filter(|c| c.role == Role::Ingest && c.details.state.is_running())
            .find_map(|c| c.details.health_log.as_deref())
            .and_then(IngestHealth::parse)
            .map(|h| GatewayConnections {
                plain: h.plain,
                tls: h.tls,
            });
        let notifier = containers
            .iter()
            .filter(|c| c.role == Role::Notifier && c.details.state.is_running())
            .find_map(|c| c.details.health_log.as_deref())
            .and_then(NotifierHealth::parse)
            .as_ref()
            .map(notifier_status);
        let (gateway_endpoint, admin_url) = self.endpoints(&record, &containers);
        Ok(TenantStatus {
            gateway_endpoint,
            mode: self.config.docker.mode,
            notifier,
            mail_configured: self.config.mail.is_some(),
            keyspace: record.id.keyspace(),
            cluster: record.cluster.clone(),
            max_readings_per_sec: record.limits.max_readings_per_sec.map(|n| n.get()),
            max_gateways: record.limits.max_gateways.map(|n| n.get()),
            connections,
            state: summarize(record.desired, running, healthy, unhealthy),
            desired: record.desired,
            gateway_port: record.gateway_port,
            gateway_tls: record.gateway_tls,
            admin_port: record.admin_port,
            admin_url,
            provider: record.id,
            containers,
            backoff: None,
        })
    }

    /// Where the tenant's gateways and staff connect: on one engine the
    /// public host and the leased ports; in Swarm mode the endpoints of
    /// the nodes its ingest and admin tasks run on (none while no task
    /// runs), unless the front binds the leased ports on every node.
    pub(super) fn endpoints(
        &self,
        record: &TenantRecord,
        containers: &[ContainerStatus],
    ) -> (Option<String>, Option<String>) {
        if !self.config.swarm() || self.config.front.enabled {
            let host = &self.config.ports.public_host;
            return (
                record.gateway_port.map(|p| format!("{host}:{p}")),
                self.admin_url(record.admin_port),
            );
        }
        let endpoint = |role: Role| {
            containers
                .iter()
                .find(|c| c.role == role)
                .and_then(|c| c.details.endpoint.clone())
        };
        (
            endpoint(Role::Ingest),
            endpoint(Role::Admin).map(|e| format!("http://{e}/")),
        )
    }

    /// `logs`: the log stream of a tenant's app.
    pub async fn logs(
        &self,
        id: &ProviderId,
        role: Role,
        follow: bool,
        tail: Option<u64>,
        mut out: impl FnMut(LogChunk),
    ) -> Result<()> {
        self.known(id).await?;
        let name = self.config.container_name(id, role);
        let mut stream = self.backend.logs(&name, follow, tail).await?;
        while let Some(chunk) = stream.next().await {
            out(chunk.map_err(Error::from)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_running_only_when_its_three_apps_are_healthy() {
        assert_eq!(summarize(Desired::Running, 3, 3, 0), TenantState::Running);
        assert_eq!(summarize(Desired::Running, 3, 2, 0), TenantState::Starting);
        assert_eq!(summarize(Desired::Running, 3, 2, 1), TenantState::Degraded);
        // a tenant from before the notifier, until start or reconcile
        assert_eq!(summarize(Desired::Running, 2, 2, 0), TenantState::Degraded);
        assert_eq!(summarize(Desired::Stopped, 1, 1, 0), TenantState::Degraded);
        assert_eq!(summarize(Desired::Stopped, 0, 0, 0), TenantState::Stopped);
        assert_eq!(
            summarize(Desired::Destroyed, 0, 0, 0),
            TenantState::Destroyed
        );
    }
}
