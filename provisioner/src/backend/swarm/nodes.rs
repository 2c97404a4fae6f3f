//! The Swarm's nodes: what each has (memory, CPU), what our tenant
//! services reserve on it and which tenants run there; drain and
//! activate; the node events the daemon's watcher follows.

use std::collections::{BTreeSet, HashMap};

use bollard::models::{Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState, TaskState};
use bollard::query_parameters::{ListNodesOptions, ListTasksOptions, UpdateNodeOptions};
use bollard::Docker;
use futures::StreamExt;

use crate::backend::docker::{api, is_status};
use crate::backend::{BackendError, ContainerEvent, Result};
use crate::config::Config;
use crate::domain::capacity::{Availability, NodeInventory, Reservation};
use crate::domain::ProviderId;
use crate::labels;

/// What the endpoints need of a node.
#[derive(Debug, Clone)]
pub(super) struct NodeAddress {
    pub hostname: Option<String>,
    pub addr: Option<String>,
    pub state: Option<NodeState>,
}

async fn list(docker: &Docker) -> Result<Vec<Node>> {
    docker
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(|e| api("list nodes", e))
}

/// Every node by id: hostname, address, state.
pub(super) async fn addresses(docker: &Docker) -> Result<HashMap<String, NodeAddress>> {
    Ok(list(docker)
        .await?
        .into_iter()
        .filter_map(|n| {
            let status = n.status.unwrap_or_default();
            Some((
                n.id?,
                NodeAddress {
                    hostname: n.description.and_then(|d| d.hostname),
                    addr: status.addr,
                    state: status.state,
                },
            ))
        })
        .collect())
}

fn lowercase<T: serde::Serialize>(value: &Option<T>) -> String {
    value
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Every node, with the reservations and the tenants of our tasks that
/// the Swarm wants running there.
pub(super) async fn inventory(docker: &Docker, config: &Config) -> Result<Vec<NodeInventory>> {
    let nodes = list(docker).await?;
    let options = ListTasksOptions {
        filters: Some(HashMap::from([
            ("label".to_owned(), vec![labels::TENANT.to_owned()]),
            ("desired-state".to_owned(), vec!["running".to_owned()]),
        ])),
    };
    let tasks = docker
        .list_tasks(Some(options))
        .await
        .map_err(|e| api("list tasks", e))?;
    let mut out: Vec<NodeInventory> = nodes
        .into_iter()
        .map(|n| {
            let id = n.id.clone().unwrap_or_default();
            let spec = n.spec.clone().unwrap_or_default();
            let description = n.description.clone().unwrap_or_default();
            let resources = description.resources.unwrap_or_default();
            let memory_bytes = resources.memory_bytes.unwrap_or(0);
            let status = n.status.clone().unwrap_or_default();
            let mut tenants = BTreeSet::new();
            let mut reservations = Vec::new();
            for t in tasks.iter().filter(|t| t.node_id.as_deref() == Some(&id)) {
                if matches!(
                    t.status.as_ref().and_then(|s| s.state),
                    Some(TaskState::FAILED | TaskState::REJECTED | TaskState::SHUTDOWN)
                ) {
                    continue;
                }
                let reserved = t
                    .spec
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.reservations.as_ref());
                reservations.push(Reservation {
                    memory_bytes: reserved.and_then(|r| r.memory_bytes).unwrap_or(0),
                    nano_cpus: reserved.and_then(|r| r.nano_cpus).unwrap_or(0),
                });
                let tenant = t
                    .spec
                    .as_ref()
                    .and_then(|s| s.container_spec.as_ref())
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(labels::TENANT))
                    .and_then(|t| ProviderId::parse(t).ok());
                tenants.extend(tenant);
            }
            NodeInventory {
                id,
                hostname: description.hostname.unwrap_or_default(),
                role: lowercase(&spec.role),
                manager: spec.role == Some(NodeSpecRoleEnum::MANAGER),
                availability: lowercase(&spec.availability),
                state: lowercase(&status.state),
                address: status.addr,
                memory_bytes,
                nano_cpus: resources.nano_cpus.unwrap_or(0),
                usable_memory_bytes: match config.swarm.node_memory_mb {
                    Some(mb) => memory_bytes.min(mb * 1024 * 1024),
                    None => memory_bytes,
                },
                reserved_memory_bytes: reservations.iter().map(|r| r.memory_bytes).sum(),
                reserved_nano_cpus: reservations.iter().map(|r| r.nano_cpus).sum(),
                tasks: reservations.len(),
                tenants: tenants.into_iter().collect(),
                reservations,
            }
        })
        .collect();
    out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(out)
}

/// Finds a node by hostname or id.
async fn find(docker: &Docker, node: &str) -> Result<Node> {
    list(docker)
        .await?
        .into_iter()
        .find(|n| {
            n.id.as_deref() == Some(node)
                || n.description.as_ref().and_then(|d| d.hostname.as_deref()) == Some(node)
        })
        .ok_or_else(|| BackendError::NodeUnknown {
            node: node.to_owned(),
        })
}

/// Sets a node's availability (its own spec, its version).
pub(super) async fn set_availability(
    docker: &Docker,
    node: &str,
    availability: Availability,
) -> Result<()> {
    let found = find(docker, node).await?;
    let id = found.id.clone().unwrap_or_default();
    let mut spec = found.spec.unwrap_or_default();
    spec.availability = Some(match availability {
        Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
        Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
    });
    let version = found.version.and_then(|v| v.index).unwrap_or(0);
    match docker
        .update_node(
            &id,
            spec,
            UpdateNodeOptions {
                version: version as i64,
            },
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Err(BackendError::NodeUnknown {
            node: node.to_owned(),
        }),
        Err(e) => Err(api(format!("update node {node}"), e)),
    }
}

/// The tenant a service name belongs to: `<prefix>-<tenant>-<role>`.
fn tenant_of_service(config: &Config, name: &str) -> Option<ProviderId> {
    let rest = name.strip_prefix(&format!("{}-", config.docker.container_prefix))?;
    let (tenant, _role) = rest.rsplit_once('-')?;
    ProviderId::parse(tenant).ok()
}

/// The Swarm's events the watcher acts on: a node down or back (`node
/// down`, `node ready`: every tenant is looked at, their endpoints may
/// have moved) and a tenant service removed (`destroy`).
pub(super) fn events(
    docker: &Docker,
    config: &Config,
) -> impl futures::Stream<Item = Result<ContainerEvent>> {
    let filters = HashMap::from([(
        "type".to_owned(),
        vec!["node".to_owned(), "service".to_owned()],
    )]);
    let options = bollard::query_parameters::EventsOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let config = config.clone();
    docker.events(Some(options)).filter_map(move |item| {
        let event = item.map_err(|e| api("events", e));
        let out = match event {
            Err(e) => Some(Err(e)),
            Ok(event) => {
                let kind = event.typ.map(|t| format!("{t:?}").to_lowercase());
                let action = event.action.unwrap_or_default();
                let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
                let name = attributes.get("name").cloned().unwrap_or_default();
                match (kind.as_deref(), action.as_str()) {
                    (Some("node"), "update") => attributes.get("state.new").map(|state| {
                        Ok(ContainerEvent {
                            container: name,
                            tenant: None,
                            action: format!("node {state}"),
                        })
                    }),
                    (Some("service"), "remove") => Some(Ok(ContainerEvent {
                        tenant: tenant_of_service(&config, &name),
                        container: name,
                        action: "destroy".to_owned(),
                    })),
                    _ => None,
                }
            }
        };
        futures::future::ready(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_name_gives_its_tenant() {
        let config = Config::default();
        let t = tenant_of_service(&config, "provision-acme-ingest").unwrap();
        assert_eq!(t.to_string(), "acme");
        let t = tenant_of_service(&config, "provision-solar_north-admin").unwrap();
        assert_eq!(t.to_string(), "solar_north");
        assert!(tenant_of_service(&config, "other-acme-ingest").is_none());
    }
}
