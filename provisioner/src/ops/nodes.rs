//! The cluster's operations (Swarm mode): `node list`, `node drain`, `node
//! activate`, `capacity` (which also gives the Cassandra clusters', in any
//! mode: [`super::clusters`]), and the N+1 gate a `start` passes first. The
//! arithmetic is [`crate::domain::capacity`]; the nodes come from the
//! backend's [`crate::backend::Cluster`].

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Provisioner;
use crate::backend::Cluster;
use crate::domain::capacity::{self, Availability, NodeInventory, NodeLoss, Reservation};
use crate::domain::spec::tenant_reservations;
use crate::domain::{Desired, Health, ProviderId};
use crate::error::{Error, Result};

/// The most tenants `capacity` counts (Ganeti's hspace stops too).
const MORE_TENANTS_LIMIT: usize = 10_000;
/// How often a drain looks at the tasks again.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// What `provision capacity` answers: the Cassandra clusters in every
/// mode; in Swarm mode also the nodes and N+1 (else those are null or
/// empty).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityReport {
    /// Each Cassandra cluster's tenants, tables and room.
    pub clusters: Vec<super::clusters::ClusterCapacity>,
    /// If any one node fails, the other nodes' free reservations hold all
    /// of its tasks (null on one engine).
    pub n_plus_one: Option<bool>,
    /// The nodes whose loss would not fit elsewhere (empty when N+1).
    pub losses_not_absorbed: Vec<NodeLoss>,
    /// What one tenant of today's size reserves (its three apps).
    pub tenant_reservations: Vec<Reservation>,
    pub tenant_memory_bytes: i64,
    /// How many more such tenants fit while the cluster stays N+1 (null
    /// on one engine).
    pub more_tenants: Option<usize>,
    pub nodes: Vec<NodeInventory>,
}

/// What `provision node drain` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainReport {
    pub node: String,
    /// Tenants that had apps on the node and now run elsewhere.
    pub moved: Vec<ProviderId>,
    pub secs: f64,
}

/// What `provision node activate` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeChanged {
    pub node: String,
    pub availability: String,
}

impl Provisioner {
    fn cluster(&self, what: &'static str) -> Result<&dyn Cluster> {
        self.backend.cluster().ok_or(Error::NotSwarmMode(what))
    }

    /// `provision node list`.
    pub async fn node_list(&self) -> Result<Vec<NodeInventory>> {
        Ok(self.cluster("provision node list")?.nodes().await?)
    }

    /// `provision capacity`: each Cassandra cluster's room; in Swarm mode
    /// N+1 now, and the tenants that still fit.
    pub async fn capacity(&self) -> Result<CapacityReport> {
        let clusters = self.cluster_capacity().await?;
        let tenant = tenant_reservations(&self.config);
        let tenant_memory_bytes = tenant.iter().map(|r| r.memory_bytes).sum();
        let Some(cluster) = self.backend.cluster() else {
            return Ok(CapacityReport {
                clusters,
                n_plus_one: None,
                losses_not_absorbed: Vec::new(),
                tenant_memory_bytes,
                more_tenants: None,
                tenant_reservations: tenant,
                nodes: Vec::new(),
            });
        };
        let nodes = cluster.nodes().await?;
        let losses = capacity::losses_not_absorbed(&nodes);
        Ok(CapacityReport {
            clusters,
            n_plus_one: Some(losses.is_empty()),
            losses_not_absorbed: losses,
            tenant_memory_bytes,
            more_tenants: Some(capacity::more_tenants(&nodes, &tenant, MORE_TENANTS_LIMIT)),
            tenant_reservations: tenant,
            nodes,
        })
    }

    /// The N+1 gate of `start` in Swarm mode: with the apps of `id` that do
    /// not exist yet placed as the Swarm would, every node's loss must
    /// still fit on the others. Nothing is changed when it refuses.
    pub(super) async fn check_n_plus_one(
        &self,
        id: &ProviderId,
        missing: &[Reservation],
    ) -> Result<()> {
        let Some(cluster) = self.backend.cluster() else {
            return Ok(());
        };
        if missing.is_empty() {
            return Ok(());
        }
        let nodes = cluster.nodes().await?;
        let losses: Vec<String> = match capacity::with_tenant(&nodes, missing) {
            None => vec!["any node (no node has room for its apps)".to_owned()],
            Some(placed) => capacity::losses_not_absorbed(&placed)
                .into_iter()
                .map(|l| l.node)
                .collect(),
        };
        if losses.is_empty() {
            return Ok(());
        }
        Err(Error::NotNPlusOne {
            tenant: id.clone(),
            losses,
        })
    }

    /// `provision node activate`: the node takes tasks again.
    pub async fn node_activate(&self, node: &str) -> Result<NodeChanged> {
        let cluster = self.cluster("provision node activate")?;
        cluster.set_availability(node, Availability::Active).await?;
        self.changed();
        Ok(NodeChanged {
            node: node.to_owned(),
            availability: "active".to_owned(),
        })
    }

    /// `provision node drain`: the Swarm moves the node's tasks; this waits
    /// until none of ours is left on it and every tenant that should run
    /// is healthy, or says which is not within `timeout`.
    pub async fn node_drain(&self, node: &str, timeout: Duration) -> Result<DrainReport> {
        let started = Instant::now();
        let cluster = self.cluster("provision node drain")?;
        let before = cluster.nodes().await?;
        let target = before
            .iter()
            .find(|n| n.hostname == node || n.id == node)
            .ok_or_else(|| crate::backend::BackendError::NodeUnknown {
                node: node.to_owned(),
            })?;
        let (hostname, moved) = (target.hostname.clone(), target.tenants.clone());
        cluster.set_availability(node, Availability::Drain).await?;
        self.changed();
        let deadline = started + timeout;
        loop {
            let why = self.drain_left(cluster, &hostname).await?;
            let Some(why) = why else {
                return Ok(DrainReport {
                    node: hostname,
                    moved,
                    secs: started.elapsed().as_secs_f64(),
                });
            };
            if Instant::now() >= deadline {
                return Err(Error::DrainIncomplete {
                    node: hostname,
                    why: format!("after {} s, {why}", timeout.as_secs()),
                });
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// What keeps the drain of `node` from being done, if anything.
    async fn drain_left(&self, cluster: &dyn Cluster, node: &str) -> Result<Option<String>> {
        let nodes = cluster.nodes().await?;
        if let Some(n) = nodes.iter().find(|n| n.hostname == node) {
            if n.tasks > 0 {
                let tenants: Vec<String> = n.tenants.iter().map(|t| t.to_string()).collect();
                return Ok(Some(format!(
                    "{} task(s) still on {node} (tenants {})",
                    n.tasks,
                    tenants.join(", ")
                )));
            }
        }
        let observed = self.backend.observe_containers(None).await?;
        let mut unhealthy = Vec::new();
        for record in self.store.tenants().await? {
            if record.desired != Desired::Running {
                continue;
            }
            for c in observed
                .iter()
                .filter(|c| c.tenant.as_ref() == Some(&record.id))
            {
                if !(c.running() && c.health == Health::Healthy) {
                    unhealthy.push(format!("{} ({}, {})", c.name, c.state, c.health));
                }
            }
        }
        Ok((!unhealthy.is_empty()).then(|| format!("not healthy yet: {}", unhealthy.join(", "))))
    }
}
