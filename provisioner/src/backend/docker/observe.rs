//! Observing the engine: tenant containers by label, the shared network,
//! a tenant's network (found by exact name, duplicates from racing creates
//! removed), and the managed Cassandra container with its drift.

use std::collections::HashMap;

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use bollard::Docker;

use super::{api, is_status};
use crate::backend::Result;
use crate::config::Config;
use crate::domain::state::{
    CassandraObserved, FrontObserved, NetworkObserved, ObservedContainer, ObservedInfra,
};
use crate::domain::{ContainerState, Health, ProviderId};
use crate::labels;

fn label_filter(pairs: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), pairs.to_vec())])
}

fn summary_state(s: ContainerSummaryStateEnum) -> ContainerState {
    match s {
        ContainerSummaryStateEnum::CREATED => ContainerState::Created,
        ContainerSummaryStateEnum::RUNNING => ContainerState::Running,
        ContainerSummaryStateEnum::PAUSED => ContainerState::Paused,
        ContainerSummaryStateEnum::RESTARTING => ContainerState::Restarting,
        ContainerSummaryStateEnum::REMOVING => ContainerState::Removing,
        ContainerSummaryStateEnum::EXITED => ContainerState::Exited,
        ContainerSummaryStateEnum::DEAD => ContainerState::Dead,
        _ => ContainerState::Unknown,
    }
}

/// Every tenant container (ours, by label), optionally of one tenant.
pub(super) async fn observe_containers(
    docker: &Docker,
    tenant: Option<&ProviderId>,
) -> Result<Vec<ObservedContainer>> {
    let mut filter = vec![labels::TENANT.to_owned()];
    if let Some(t) = tenant {
        filter = vec![format!("{}={t}", labels::TENANT)];
    }
    let options = ListContainersOptions {
        all: true,
        filters: Some(label_filter(&filter)),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| api("list containers", e))?;
    let mut out: Vec<ObservedContainer> = list
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let status = c.status.unwrap_or_default();
            let state = c.state.map_or(ContainerState::Unknown, summary_state);
            let running = state.is_running();
            let health = if !running {
                Health::Unknown
            } else if status.contains("(healthy)") {
                Health::Healthy
            } else if status.contains("(unhealthy)") {
                Health::Unhealthy
            } else if status.contains("starting") {
                Health::Starting
            } else {
                Health::Unknown
            };
            ObservedContainer {
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned(),
                tenant: labels
                    .get(labels::TENANT)
                    .and_then(|t| ProviderId::parse(t).ok()),
                state,
                health,
                spec_hash: labels.get(labels::CONFIG_HASH).cloned(),
                address: c
                    .network_settings
                    .and_then(|n| n.networks)
                    .into_iter()
                    .flat_map(|n| n.into_values())
                    .filter_map(|e| e.ip_address)
                    .find_map(|ip| ip.parse().ok())
                    .filter(|_| running),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The shared network, (managed mode) the Cassandra container, and the
/// network of `tenant` with whether `attach` is on it.
pub(super) async fn observe_infra(
    docker: &Docker,
    config: &Config,
    tenant: Option<&ProviderId>,
    attach: Option<&str>,
) -> Result<ObservedInfra> {
    let network = config.docker.network.clone();
    let network_exists = observe_network(docker, &network, None).await?.exists;
    let attach_container = attach.map(str::to_owned);
    let tenant_network = match tenant {
        Some(t) => {
            observe_network(
                docker,
                &config.tenant_network(t),
                attach_container.as_deref(),
            )
            .await?
        }
        None => NetworkObserved::default(),
    };
    let container = config.cassandra.container.clone();
    let mut cassandra_outdated = false;
    let mut cassandra_unhardened = false;
    let cassandra = match config.runs_managed_node() {
        false => CassandraObserved::External,
        true => match docker
            .inspect_container(&container, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => {
                cassandra_outdated = built_from_other_image(
                    docker,
                    i.image.as_deref(),
                    &config.platform_image(&config.cassandra.image),
                )
                .await?;
                // Created before the container was hardened (a read-only
                // root stands for the rest of it).
                cassandra_unhardened =
                    i.host_config.as_ref().and_then(|h| h.readonly_rootfs) != Some(true);
                if i.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
                    CassandraObserved::Running
                } else {
                    CassandraObserved::Stopped
                }
            }
            Err(e) if is_status(&e, 404) => CassandraObserved::Missing,
            Err(e) => return Err(api(format!("inspect container {container}"), e)),
        },
    };
    let front = match config.front.enabled {
        false => FrontObserved::Off,
        true => match docker
            .inspect_container(&config.front.container, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) if i.state.as_ref().and_then(|s| s.running).unwrap_or(false) => {
                FrontObserved::Running {
                    routes_current: false,
                }
            }
            Ok(_) => FrontObserved::Stopped,
            Err(e) if is_status(&e, 404) => FrontObserved::Missing,
            Err(e) => {
                return Err(api(
                    format!("inspect container {}", config.front.container),
                    e,
                ))
            }
        },
    };
    Ok(ObservedInfra {
        front,
        network,
        network_exists,
        cassandra_container: container,
        cassandra,
        cassandra_outdated,
        cassandra_unhardened,
        default_superuser_login: false,
        attach_container,
        tenant_network,
    })
}

/// The ids of the networks named exactly `name`, the one to keep first.
///
/// The engine (API 1.41) lets two creates of one name both succeed, and a
/// create still in flight when its provisioner was killed can race the
/// next run's; every later call by name then fails as "ambiguous". The
/// oldest network (then the smallest id) is the one every caller keeps.
pub(super) async fn networks_named(docker: &Docker, name: &str) -> Result<Vec<String>> {
    let options = bollard::query_parameters::ListNetworksOptions {
        filters: Some(HashMap::from([("name".to_owned(), vec![name.to_owned()])])),
    };
    let mut found: Vec<(String, String)> = docker
        .list_networks(Some(options))
        .await
        .map_err(|e| api(format!("list networks named {name}"), e))?
        .into_iter()
        // the filter matches substrings
        .filter(|n| n.name.as_deref() == Some(name))
        .filter_map(|n| Some((n.created.unwrap_or_default(), n.id?)))
        .collect();
    Ok(oldest_first(&mut found))
}

/// Ids of same-named networks, `(created, id)` pairs, the one to keep
/// first: the oldest, then the smallest id.
fn oldest_first(found: &mut [(String, String)]) -> Vec<String> {
    found.sort();
    found.iter().map(|(_, id)| id.clone()).collect()
}

/// Removes every network named `name` but the one to keep; returns its id.
/// A duplicate that something uses already stays (its removal fails); it is
/// tried again next time.
pub(super) async fn dedupe_network(docker: &Docker, name: &str) -> Result<Option<String>> {
    let mut ids = networks_named(docker, name).await?.into_iter();
    let keep = ids.next();
    for extra in ids {
        match docker.remove_network(&extra).await {
            Ok(()) => tracing::info!(network = name, id = %extra, "removed a duplicate network"),
            Err(e) => {
                tracing::warn!(network = name, id = %extra, error = %e, "cannot remove a duplicate network")
            }
        }
    }
    Ok(keep)
}

/// Whether network `name` exists, and whether `container` is attached.
pub(super) async fn observe_network(
    docker: &Docker,
    name: &str,
    container: Option<&str>,
) -> Result<NetworkObserved> {
    let Some(id) = networks_named(docker, name).await?.into_iter().next() else {
        return Ok(NetworkObserved::default());
    };
    match docker.inspect_network(&id, None).await {
        Ok(n) => Ok(NetworkObserved {
            exists: true,
            cassandra_attached: container.is_some_and(|c| {
                n.containers
                    .unwrap_or_default()
                    .values()
                    .any(|e| e.name.as_deref() == Some(c))
            }),
        }),
        Err(e) if is_status(&e, 404) => Ok(NetworkObserved::default()),
        Err(e) => Err(api(format!("inspect network {name}"), e)),
    }
}

/// [`observe_network`] of many networks in a few calls: one list of every
/// network, and one inspect of each distinct container asked about (the
/// networks it is on). `wanted` pairs a network's name with the container
/// to look for on it.
pub(super) async fn observe_networks(
    docker: &Docker,
    wanted: &[(String, Option<String>)],
) -> Result<Vec<NetworkObserved>> {
    let mut by_name: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for n in docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .map_err(|e| api("list networks", e))?
    {
        if let (Some(name), Some(id)) = (n.name, n.id) {
            by_name
                .entry(name)
                .or_default()
                .push((n.created.unwrap_or_default(), id));
        }
    }
    let kept: HashMap<String, String> = by_name
        .into_iter()
        .filter_map(|(name, mut found)| Some((name, oldest_first(&mut found).into_iter().next()?)))
        .collect();
    let mut on_networks: HashMap<&str, Vec<String>> = HashMap::new();
    for container in wanted.iter().filter_map(|(_, c)| c.as_deref()) {
        if on_networks.contains_key(container) {
            continue;
        }
        let ids = match docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => i
                .network_settings
                .and_then(|n| n.networks)
                .into_iter()
                .flat_map(|n| n.into_values())
                .filter_map(|e| e.network_id)
                .collect(),
            Err(e) if is_status(&e, 404) => Vec::new(),
            Err(e) => return Err(api(format!("inspect container {container}"), e)),
        };
        on_networks.insert(container, ids);
    }
    Ok(wanted
        .iter()
        .map(|(name, container)| match kept.get(name) {
            None => NetworkObserved::default(),
            Some(id) => NetworkObserved {
                exists: true,
                cassandra_attached: container
                    .as_deref()
                    .and_then(|c| on_networks.get(c))
                    .is_some_and(|ids| ids.contains(id)),
            },
        })
        .collect())
}

/// Whether a container whose image id is `container_image` was created from
/// another build than the one `image` (a name) points at now. An image name
/// that no longer resolves is not a drift to report: `start` says it is
/// missing when it needs it.
async fn built_from_other_image(
    docker: &Docker,
    container_image: Option<&str>,
    image: &str,
) -> Result<bool> {
    let Some(container_image) = container_image else {
        return Ok(false);
    };
    match docker.inspect_image(image).await {
        Ok(current) => Ok(current
            .id
            .as_deref()
            .is_some_and(|id| id != container_image)),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(api(format!("inspect image {image}"), e)),
    }
}
