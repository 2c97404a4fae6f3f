//! Cluster capacity, Ganeti's way, as pure functions over the nodes'
//! inventory: whether the cluster is N+1 (if any one node fails, the other
//! nodes' free reservations hold all of its tasks), and how many more
//! tenants of a given size fit while it stays N+1 (Ganeti's `hspace`).
//!
//! Placement is simulated task by task, largest first, each on the
//! eligible node with the most free memory (the Swarm spreads, and never
//! places a task whose reservation a node cannot hold). A node is
//! eligible when it is ready and active; its room is what
//! [`NodeInventory::usable_memory_bytes`] allows less what is reserved.

use serde::{Deserialize, Serialize};

use super::ProviderId;

/// A node's availability for new tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Active,
    Drain,
}

/// What one task reserves.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reservation {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
}

/// One node of the cluster, as `provision node list` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeInventory {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    #[serde(default)]
    pub manager: bool,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    /// The node's address: where the apps it runs publish their ports.
    pub address: Option<String>,
    /// What the node has.
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    /// What tenant apps may reserve on it: its memory, or less with
    /// `[swarm] node_memory_mb`.
    #[serde(default)]
    pub usable_memory_bytes: i64,
    /// What our tenant tasks reserve on it now.
    pub reserved_memory_bytes: i64,
    pub reserved_nano_cpus: i64,
    /// Our tenant tasks on it, and the tenants they belong to.
    pub tasks: usize,
    pub tenants: Vec<ProviderId>,
    /// Each task's reservation (for the N+1 simulation).
    #[serde(default)]
    pub reservations: Vec<Reservation>,
}

impl NodeInventory {
    /// Whether new tasks may land on it.
    pub fn eligible(&self) -> bool {
        self.state == "ready" && self.availability == "active"
    }

    fn free(&self) -> Room {
        Room {
            memory: self.usable_memory_bytes - self.reserved_memory_bytes,
            cpus: if self.nano_cpus > 0 {
                self.nano_cpus - self.reserved_nano_cpus
            } else {
                i64::MAX
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Room {
    memory: i64,
    cpus: i64,
}

impl Room {
    fn holds(&self, r: &Reservation) -> bool {
        self.memory >= r.memory_bytes && self.cpus >= r.nano_cpus
    }

    fn take(&mut self, r: &Reservation) {
        self.memory -= r.memory_bytes;
        self.cpus -= r.nano_cpus;
    }
}

/// Places `tasks` (largest first) on `rooms`, each on the room with the
/// most free memory that holds it; `false` when one does not fit.
fn place(rooms: &mut [Room], tasks: &[Reservation]) -> bool {
    let mut tasks = tasks.to_vec();
    tasks.sort_by_key(|t| std::cmp::Reverse((t.memory_bytes, t.nano_cpus)));
    for task in &tasks {
        let Some(room) = rooms
            .iter_mut()
            .filter(|r| r.holds(task))
            .max_by_key(|r| r.memory)
        else {
            return false;
        };
        room.take(task);
    }
    true
}

/// Why the cluster is not N+1: a node whose tasks would not fit elsewhere.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoss {
    pub node: String,
    pub tasks: usize,
    pub memory_bytes: i64,
}

/// The nodes whose loss the others could not absorb (empty: N+1).
pub fn losses_not_absorbed(nodes: &[NodeInventory]) -> Vec<NodeLoss> {
    let mut out = Vec::new();
    for (i, lost) in nodes.iter().enumerate() {
        if lost.reservations.is_empty() {
            continue;
        }
        let mut rooms: Vec<Room> = nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != i && n.eligible())
            .map(|(_, n)| n.free())
            .collect();
        if !place(&mut rooms, &lost.reservations) {
            out.push(NodeLoss {
                node: lost.hostname.clone(),
                tasks: lost.reservations.len(),
                memory_bytes: lost.reservations.iter().map(|r| r.memory_bytes).sum(),
            });
        }
    }
    out
}

/// The nodes with one more tenant placed as the Swarm would, or `None`
/// when its apps do not fit at all.
pub fn with_tenant(nodes: &[NodeInventory], tenant: &[Reservation]) -> Option<Vec<NodeInventory>> {
    let mut nodes = nodes.to_vec();
    let mut tasks = tenant.to_vec();
    tasks.sort_by_key(|t| std::cmp::Reverse((t.memory_bytes, t.nano_cpus)));
    for task in &tasks {
        let node = nodes
            .iter_mut()
            .filter(|n| n.eligible() && n.free().holds(task))
            .max_by_key(|n| n.free().memory)?;
        node.reserved_memory_bytes += task.memory_bytes;
        node.reserved_nano_cpus += task.nano_cpus;
        node.reservations.push(*task);
        node.tasks += 1;
    }
    Some(nodes)
}

/// How many more tenants of `tenant`'s size fit while the cluster stays
/// N+1 (counted up to `limit`).
pub fn more_tenants(nodes: &[NodeInventory], tenant: &[Reservation], limit: usize) -> usize {
    let mut nodes = nodes.to_vec();
    for n in 0..limit {
        match with_tenant(&nodes, tenant) {
            Some(next) if losses_not_absorbed(&next).is_empty() => nodes = next,
            _ => return n,
        }
    }
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1 << 20;

    fn node(name: &str, usable_mib: i64, tasks_mib: &[i64]) -> NodeInventory {
        let reservations: Vec<Reservation> = tasks_mib
            .iter()
            .map(|m| Reservation {
                memory_bytes: m * MIB,
                nano_cpus: 0,
            })
            .collect();
        NodeInventory {
            hostname: name.into(),
            availability: "active".into(),
            state: "ready".into(),
            memory_bytes: 24 << 30,
            usable_memory_bytes: usable_mib * MIB,
            reserved_memory_bytes: reservations.iter().map(|r| r.memory_bytes).sum(),
            tasks: reservations.len(),
            reservations,
            ..NodeInventory::default()
        }
    }

    fn tenant() -> Vec<Reservation> {
        [128, 128, 32]
            .iter()
            .map(|m| Reservation {
                memory_bytes: m * MIB,
                nano_cpus: 0,
            })
            .collect()
    }

    #[test]
    fn a_cluster_whose_any_node_loss_fits_elsewhere_is_n_plus_one() {
        let nodes = [
            node("a", 1024, &[128, 128, 32]),
            node("b", 1024, &[128, 32]),
            node("c", 1024, &[128]),
        ];
        assert!(losses_not_absorbed(&nodes).is_empty());
    }

    #[test]
    fn a_node_whose_tasks_do_not_fit_on_the_others_breaks_n_plus_one() {
        let nodes = [
            node("a", 512, &[128, 128, 128, 128]),
            node("b", 512, &[128, 128, 128]),
            node("c", 512, &[128, 128, 128]),
        ];
        let losses = losses_not_absorbed(&nodes);
        // a's four tasks need 512 MiB; b and c have 128 each
        assert_eq!(losses.len(), 3, "{losses:?}");
        assert_eq!(losses[0].node, "a");
        assert_eq!(losses[0].memory_bytes, 512 * MIB);
    }

    #[test]
    fn a_drained_or_down_node_takes_nothing() {
        let mut nodes = vec![
            node("a", 1024, &[128]),
            node("b", 1024, &[]),
            node("c", 1024, &[]),
        ];
        assert!(losses_not_absorbed(&nodes).is_empty());
        nodes[1].availability = "drain".into();
        nodes[2].state = "down".into();
        assert_eq!(losses_not_absorbed(&nodes).len(), 1);
    }

    #[test]
    fn hspace_counts_the_tenants_that_keep_the_cluster_n_plus_one() {
        let empty = [
            node("a", 1024, &[]),
            node("b", 1024, &[]),
            node("c", 1024, &[]),
        ];
        let n = more_tenants(&empty, &tenant(), 100);
        // 3 × 1024 MiB, 288 MiB a tenant: losing any node must fit in the
        // other two, so about 2/3 of 3072 MiB holds tenants
        assert!((6..=7).contains(&n), "{n}");
        let mut nodes = empty.to_vec();
        for _ in 0..n {
            nodes = with_tenant(&nodes, &tenant()).unwrap();
        }
        assert!(losses_not_absorbed(&nodes).is_empty());
        let over = with_tenant(&nodes, &tenant()).unwrap();
        assert!(!losses_not_absorbed(&over).is_empty(), "one more breaks it");
        assert_eq!(more_tenants(&nodes, &tenant(), 100), 0);
    }

    #[test]
    fn placement_spreads_a_tenant_over_the_emptiest_nodes() {
        let nodes = [
            node("a", 1024, &[128]),
            node("b", 1024, &[]),
            node("c", 1024, &[]),
        ];
        let placed = with_tenant(&nodes, &tenant()).unwrap();
        let counts: Vec<usize> = placed.iter().map(|n| n.tasks).collect();
        // the two 128 MiB apps go to the empty nodes, the small one to
        // whichever then has the most room
        assert_eq!(counts.iter().sum::<usize>(), 4);
        assert!(counts.iter().all(|c| (1..=2).contains(c)), "{counts:?}");
        assert_eq!(
            placed[1].tasks + placed[2].tasks,
            3 - (placed[0].tasks - 1),
            "{counts:?}"
        );
        let full = [node("a", 100, &[])];
        assert!(with_tenant(&full, &tenant()).is_none());
    }
}
