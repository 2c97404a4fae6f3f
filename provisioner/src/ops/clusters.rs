//! The tenants' Cassandra clusters: the config as a tenant's cluster sees
//! it (what its storage steps, its registry calls and its containers'
//! environment use), the placement of a new tenant by its first `start`
//! ([`crate::store::placements`]), and each cluster's line of `provision
//! capacity`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Provisioner;
use crate::config::{CassandraMode, Config};
use crate::domain::placement;
use crate::domain::ProviderId;
use crate::error::{Error, Result};
use crate::store::placements::Placed;

/// The longest `capacity` waits for a cluster to answer.
const CAPACITY_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One Cassandra cluster in `provision capacity`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterCapacity {
    pub name: String,
    /// `managed` (the provisioner's own node) or `external`.
    pub mode: String,
    /// Where the provisioner reaches it.
    pub contact_points: Vec<String>,
    /// Tenants it takes at most; null: no limit.
    pub capacity: Option<u32>,
    /// Tenants placed on it.
    pub tenants: usize,
    /// Tenants it still takes; null: no limit.
    pub room: Option<u64>,
    /// Tables on it outside Cassandra's own keyspaces; null when it could
    /// not be asked (see `error`).
    pub tables: Option<usize>,
    /// Why the tables could not be counted.
    pub error: Option<String>,
}

impl Provisioner {
    /// The config as `id`'s cluster sees it: the cluster it is placed on,
    /// or (not placed yet: a plan before its first start) the one it would
    /// go to now.
    pub(crate) async fn cluster_config(&self, id: &ProviderId) -> Result<Config> {
        let name = match self.store.placement(id).await? {
            Some(name) => name,
            None => {
                let placed = self.store.placed_per_cluster().await?;
                let slots = self.config.clusters();
                placement::choose(&slots, &placed)
                    .map(str::to_owned)
                    .ok_or_else(|| self.all_full(id, &placed))?
            }
        };
        self.config
            .for_cluster(&name)
            .ok_or_else(|| Error::UnknownCluster {
                tenant: id.clone(),
                cluster: name,
            })
    }

    /// Places `id` on the cluster with the most room, unless it is placed
    /// already (its first `start`, before anything of it exists).
    pub(super) async fn place(&self, id: &ProviderId) -> Result<String> {
        match self.store.place(id, &self.config.clusters()).await? {
            Placed::On(name) => Ok(name),
            Placed::Full(placed) => Err(self.all_full(id, &placed)),
        }
    }

    fn all_full(
        &self,
        id: &ProviderId,
        placed: &std::collections::BTreeMap<String, usize>,
    ) -> Error {
        let clusters = self
            .config
            .clusters()
            .iter()
            .map(|s| {
                let on = placed.get(&s.name).copied().unwrap_or(0);
                format!("{} {on}/{}", s.name, s.capacity.unwrap_or(0))
            })
            .collect::<Vec<_>>()
            .join(", ");
        Error::ClustersFull {
            tenant: id.clone(),
            clusters,
        }
    }

    /// Each cluster's tenants, tables and room.
    pub async fn cluster_capacity(&self) -> Result<Vec<ClusterCapacity>> {
        let placed = self.store.placed_per_cluster().await?;
        let mut out = Vec::new();
        for slot in self.config.clusters() {
            let mut config = self
                .config
                .for_cluster(&slot.name)
                .expect("a configured cluster");
            config.cassandra.connect_timeout_secs = config
                .cassandra
                .connect_timeout_secs
                .min(CAPACITY_CONNECT_TIMEOUT.as_secs());
            let tables = match crate::cql::session::admin_session(&config, &self.store).await {
                Ok(session) => crate::cql::tenant::user_tables(&session)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let tenants = placed.get(&slot.name).copied().unwrap_or(0);
            let managed = config.cassandra.mode == CassandraMode::Managed;
            out.push(ClusterCapacity {
                mode: match managed {
                    true => "managed",
                    false => "external",
                }
                .to_owned(),
                contact_points: crate::cql::session::host_points(&config),
                capacity: slot.capacity,
                tenants,
                room: slot.room(tenants),
                error: tables.as_ref().err().cloned(),
                tables: tables.ok(),
                name: slot.name,
            });
        }
        Ok(out)
    }
}
