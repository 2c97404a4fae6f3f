//! The Cassandra clusters tenants are placed on. Without any
//! `[[cassandra.clusters]]` there is one, `default`: the `[cassandra]`
//! section itself (the managed node, or an external cluster). With them,
//! each entry is a cluster, and the `[cassandra]` section gives the
//! managed node's settings (for an entry with `mode = "managed"`) and the
//! defaults of every entry's credentials, replication and write
//! consistency.
//!
//! Everything that talks to a tenant's Cassandra (its storage steps, its
//! gateway registry, the contact points in its containers' environment,
//! the node attached to its network) takes the tenant's cluster's view of
//! the config ([`Config::for_cluster`]): the same [`Config`] with its
//! `[cassandra]` section replaced by that cluster's.

use serde::Deserialize;

use super::{CassandraMode, Config, ReplicationConfig};
use crate::domain::placement::ClusterSlot;

/// The tenants the managed node takes when no capacity is set: the
/// Cassandra image's guardrail refuses a 400th user table, and a tenant's
/// schema has 7 tables (README, "How many tenants one node holds").
pub const MANAGED_NODE_CAPACITY: u32 = 57;

/// The name of the one cluster a config without `[[cassandra.clusters]]`
/// has, and of the cluster tenants placed before clusters existed are on.
pub const DEFAULT_CLUSTER: &str = "default";

/// `[[cassandra.clusters]]`: one cluster tenants may be placed on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    /// Its name, as `status` and `capacity` show it and the state store
    /// keeps each tenant's placement (lowercase letters, digits, `-`, `_`).
    pub name: String,
    /// `external` (the default): a cluster the operator runs, reached at
    /// `contact_points`. `managed`: the provisioner's own node, as
    /// `[cassandra]` describes it (at most one entry).
    #[serde(default = "external")]
    pub mode: CassandraMode,
    /// How many tenants it takes at most (unset: no limit, or for the
    /// managed node [`MANAGED_NODE_CAPACITY`]; 0: closed to new tenants).
    /// A new tenant goes to the cluster with the most room.
    pub capacity: Option<u32>,
    /// External: where the provisioner reaches CQL.
    #[serde(default)]
    pub contact_points: Vec<String>,
    /// External: where tenant containers reach CQL (default:
    /// `contact_points`).
    #[serde(default)]
    pub container_contact_points: Vec<String>,
    /// External: the single contact point is a published port of a node
    /// that advertises another address (see `[cassandra] published`).
    #[serde(default)]
    pub published: bool,
    /// External: a one-node cluster running as a container on this engine,
    /// attached to the network of each tenant placed on it.
    pub attach_container: Option<String>,
    /// External: a superuser (default: `[cassandra]`'s).
    pub admin_user: Option<String>,
    pub admin_password: Option<String>,
    /// The tenants' keyspaces' replication (default: `[cassandra]`'s).
    pub replication: Option<ReplicationConfig>,
    /// The consistency ingest writes at (default: `[cassandra]`'s).
    pub write_consistency: Option<String>,
}

fn external() -> CassandraMode {
    CassandraMode::External
}

/// A cluster's capacity: as configured, else the managed node's table
/// limit, else none.
fn capacity(mode: CassandraMode, configured: Option<u32>) -> Option<u32> {
    match (configured, mode) {
        (Some(n), _) => Some(n),
        (None, CassandraMode::Managed) => Some(MANAGED_NODE_CAPACITY),
        (None, CassandraMode::External) => None,
    }
}

impl Config {
    /// The clusters tenants may be placed on, in the config's order.
    pub fn clusters(&self) -> Vec<ClusterSlot> {
        if self.cassandra.clusters.is_empty() {
            return vec![ClusterSlot {
                name: DEFAULT_CLUSTER.to_owned(),
                capacity: capacity(self.cassandra.mode, self.cassandra.capacity),
            }];
        }
        self.cassandra
            .clusters
            .iter()
            .map(|c| ClusterSlot {
                name: c.name.clone(),
                capacity: capacity(c.mode, c.capacity),
            })
            .collect()
    }

    /// The config as the tenants of cluster `name` see it: its
    /// `[cassandra]` section is that cluster's. `None`: no such cluster.
    pub fn for_cluster(&self, name: &str) -> Option<Config> {
        if self.cassandra.clusters.is_empty() {
            return (name == DEFAULT_CLUSTER).then(|| self.clone());
        }
        let entry = self.cassandra.clusters.iter().find(|c| c.name == name)?;
        let mut config = self.clone();
        let c = &mut config.cassandra;
        c.clusters = Vec::new();
        c.capacity = entry.capacity;
        c.mode = entry.mode;
        c.contact_points = entry.contact_points.clone();
        c.container_contact_points = entry.container_contact_points.clone();
        c.published = entry.published;
        c.attach_container = entry.attach_container.clone();
        if let Some(user) = &entry.admin_user {
            c.admin_user = user.clone();
        }
        if let Some(password) = &entry.admin_password {
            c.admin_password = password.clone();
        }
        if let Some(replication) = &entry.replication {
            c.replication = replication.clone();
        }
        if let Some(consistency) = &entry.write_consistency {
            c.write_consistency = consistency.clone();
        }
        Some(config)
    }

    /// The config of the managed node's cluster, if one is managed.
    pub fn managed_cluster(&self) -> Option<Config> {
        if self.cassandra.clusters.is_empty() {
            return (self.cassandra.mode == CassandraMode::Managed).then(|| self.clone());
        }
        let entry = self
            .cassandra
            .clusters
            .iter()
            .find(|c| c.mode == CassandraMode::Managed)?;
        self.for_cluster(&entry.name)
    }

    /// Whether the provisioner runs the managed node.
    pub fn runs_managed_node(&self) -> bool {
        match self.cassandra.clusters.is_empty() {
            true => self.cassandra.mode == CassandraMode::Managed,
            false => self
                .cassandra
                .clusters
                .iter()
                .any(|c| c.mode == CassandraMode::Managed),
        }
    }

    /// What a config's `[[cassandra.clusters]]` must be.
    pub(super) fn check_clusters(&self) -> std::result::Result<(), String> {
        let clusters = &self.cassandra.clusters;
        if clusters.is_empty() {
            return Ok(());
        }
        if !self.cassandra.contact_points.is_empty() {
            return Err(
                "[cassandra] contact_points and [[cassandra.clusters]] do not go together: \
                 move the contact points into a [[cassandra.clusters]] entry"
                    .into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in clusters {
            let valid = !c.name.is_empty()
                && c.name.len() <= 48
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_".contains(ch));
            if !valid {
                return Err(format!(
                    "[[cassandra.clusters]] name {:?}: 1 to 48 lowercase letters, digits, - or _",
                    c.name
                ));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(format!(
                    "[[cassandra.clusters]] name {:?} is given twice",
                    c.name
                ));
            }
            match c.mode {
                CassandraMode::External if c.contact_points.is_empty() => {
                    return Err(format!(
                        "[[cassandra.clusters]] {}: an external cluster needs contact_points",
                        c.name
                    ));
                }
                CassandraMode::Managed
                    if !c.contact_points.is_empty() || c.attach_container.is_some() =>
                {
                    return Err(format!(
                        "[[cassandra.clusters]] {}: the managed node is described by [cassandra]; \
                         give it no contact_points or attach_container",
                        c.name
                    ));
                }
                _ => {}
            }
            if let Some(level) = c.write_consistency.as_deref().filter(|l| *l != "auto") {
                tenant_schema::cql::parse_consistency(level).map_err(|why| {
                    format!(
                        "[[cassandra.clusters]] {}: write_consistency: {why}, or auto",
                        c.name
                    )
                })?;
            }
        }
        let managed = clusters
            .iter()
            .filter(|c| c.mode == CassandraMode::Managed)
            .count();
        if managed > 1 {
            return Err("[[cassandra.clusters]]: at most one cluster is the managed node".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("test.toml")).map_err(|e| e.why)
    }

    const TWO: &str = r#"
[cassandra]
admin_user = "root"
admin_password = "secret"

[[cassandra.clusters]]
name = "eu-1"
contact_points = ["10.0.0.1:9042"]
capacity = 2

[[cassandra.clusters]]
name = "eu-2"
contact_points = ["10.0.1.1:9042", "10.0.1.2:9042"]
container_contact_points = ["node-2:9042"]
attach_container = "node-2"
admin_user = "other"
replication = { class = "NetworkTopologyStrategy", datacenters = { dc1 = 3 } }
"#;

    #[test]
    fn without_clusters_the_one_cluster_is_the_cassandra_section() {
        assert_eq!(
            parse("").unwrap().clusters()[0].capacity,
            Some(MANAGED_NODE_CAPACITY)
        );
        let external = parse("[cassandra]\nmode = \"external\"\ncontact_points = [\"x:1\"]");
        assert_eq!(external.unwrap().clusters()[0].capacity, None);
        let c = parse("[cassandra]\ncapacity = 40").unwrap();
        assert_eq!(
            c.clusters(),
            vec![ClusterSlot {
                name: DEFAULT_CLUSTER.into(),
                capacity: Some(40)
            }]
        );
        let view = c.for_cluster(DEFAULT_CLUSTER).unwrap();
        assert_eq!(
            view.container_contact_points(),
            c.container_contact_points()
        );
        assert!(c.for_cluster("other").is_none());
        assert!(c.runs_managed_node());
        assert!(c.managed_cluster().is_some());
    }

    #[test]
    fn each_cluster_sees_its_own_points_and_the_section_s_defaults() {
        let c = parse(TWO).unwrap();
        let names: Vec<_> = c.clusters().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["eu-1", "eu-2"]);
        let one = c.for_cluster("eu-1").unwrap();
        assert_eq!(one.cassandra.mode, CassandraMode::External);
        assert_eq!(one.container_contact_points(), ["10.0.0.1:9042"]);
        assert_eq!(one.cassandra.admin_user, "root");
        assert_eq!(one.cassandra.admin_password, "secret");
        assert_eq!(one.attached_cassandra(), None);
        assert_eq!(one.ingest_write_consistency(), "one");
        let two = c.for_cluster("eu-2").unwrap();
        assert_eq!(two.container_contact_points(), ["node-2:9042"]);
        assert_eq!(two.attached_cassandra(), Some("node-2"));
        assert_eq!(two.cassandra.admin_user, "other");
        assert_eq!(two.cassandra.admin_password, "secret");
        assert_eq!(two.ingest_write_consistency(), "local_quorum");
        assert!(!c.runs_managed_node());
        assert!(c.managed_cluster().is_none());
        assert!(c.for_cluster(DEFAULT_CLUSTER).is_none());
    }

    #[test]
    fn a_managed_entry_is_the_managed_node() {
        let c = parse(
            "[[cassandra.clusters]]\nname = \"local\"\nmode = \"managed\"\ncapacity = 1\n\
             [[cassandra.clusters]]\nname = \"far\"\ncontact_points = [\"10.0.0.1:9042\"]",
        )
        .unwrap();
        assert!(c.runs_managed_node());
        let local = c.managed_cluster().unwrap();
        assert_eq!(local.cassandra.mode, CassandraMode::Managed);
        assert_eq!(
            local.container_contact_points(),
            ["provision-cassandra:9042"]
        );
        assert_eq!(local.attached_cassandra(), Some("provision-cassandra"));
    }

    #[test]
    fn bad_clusters_are_refused_with_the_reason() {
        for (text, why) in [
            (
                "[[cassandra.clusters]]\nname = \"a\"",
                "needs contact_points",
            ),
            (
                "[[cassandra.clusters]]\nname = \"A b\"\ncontact_points = [\"x:1\"]",
                "lowercase",
            ),
            (
                "[[cassandra.clusters]]\nname = \"a\"\ncontact_points = [\"x:1\"]\n\
                 [[cassandra.clusters]]\nname = \"a\"\ncontact_points = [\"y:1\"]",
                "given twice",
            ),
            (
                "[[cassandra.clusters]]\nname = \"a\"\nmode = \"managed\"\n\
                 [[cassandra.clusters]]\nname = \"b\"\nmode = \"managed\"",
                "at most one",
            ),
            (
                "[[cassandra.clusters]]\nname = \"a\"\nmode = \"managed\"\ncontact_points = [\"x:1\"]",
                "described by [cassandra]",
            ),
            (
                "[cassandra]\nmode = \"external\"\ncontact_points = [\"x:1\"]\n\
                 [[cassandra.clusters]]\nname = \"a\"\ncontact_points = [\"y:1\"]",
                "do not go together",
            ),
            (
                "[[cassandra.clusters]]\nname = \"a\"\ncontact_points = [\"x:1\"]\nwrite_consistency = \"most\"",
                "write_consistency",
            ),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
