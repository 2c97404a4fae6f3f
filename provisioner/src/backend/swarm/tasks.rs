//! Observing tenant services: each service's current task (the one the
//! Swarm wants running, on a node that is up), what state that puts the
//! app in, its node and its endpoint; the service's logs.
//!
//! The Swarm marks a task `running` only once its health check passed
//! (`starting` until then), so a running task is a healthy app.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{NodeState, Service, Task, TaskState};
use bollard::query_parameters::{InspectContainerOptions, ListServicesOptions, ListTasksOptions};
use bollard::Docker;

use super::nodes::{self, NodeAddress};
use crate::backend::docker::{api, is_status, log_chunks, log_options};
use crate::backend::{AppEndpoint, BackendError, ContainerDetails, LogChunk, Probe, Result};
use crate::domain::state::ObservedContainer;
use crate::domain::{ContainerState, Health, ProviderId};
use crate::labels;

fn filters(key: &str, values: Vec<String>) -> Option<HashMap<String, Vec<String>>> {
    Some(HashMap::from([(key.to_owned(), values)]))
}

/// Our tenant services (by label), of one tenant or all.
async fn services(docker: &Docker, tenant: Option<&ProviderId>) -> Result<Vec<Service>> {
    let label = match tenant {
        Some(t) => format!("{}={t}", labels::TENANT),
        None => labels::TENANT.to_owned(),
    };
    let options = ListServicesOptions {
        filters: filters("label", vec![label]),
        ..Default::default()
    };
    docker
        .list_services(Some(options))
        .await
        .map_err(|e| api("list services", e))
}

/// The tasks of services whose name or id is in `services` (none for a
/// service that is gone).
async fn tasks_of(docker: &Docker, services: Vec<String>) -> Result<Vec<Task>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let options = ListTasksOptions {
        filters: filters("service", services),
    };
    match docker.list_tasks(Some(options)).await {
        Ok(tasks) => Ok(tasks),
        // A service removed meanwhile has no tasks left to list.
        Err(e) if is_status(&e, 404) => Ok(Vec::new()),
        Err(e) => Err(api("list tasks", e)),
    }
}

/// The tasks the Swarm still holds of the service with this id.
pub(super) async fn of_service_id(docker: &Docker, id: &str) -> Result<Vec<Task>> {
    Ok(tasks_of(docker, vec![id.to_owned()])
        .await?
        .into_iter()
        .filter(|t| t.service_id.as_deref() == Some(id))
        .collect())
}

/// The tasks the Swarm holds of the service named `name`.
pub(super) async fn of_service_name(docker: &Docker, name: &str) -> Result<Vec<Task>> {
    tasks_of(docker, vec![name.to_owned()]).await
}

fn service_name(s: &Service) -> String {
    s.spec
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_default()
}

fn replicas(s: &Service) -> i64 {
    s.spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
}

fn task_state(t: &Task) -> TaskState {
    t.status
        .as_ref()
        .and_then(|s| s.state)
        .unwrap_or(TaskState::NEW)
}

/// The app's state and health from its current task (none: stopped).
fn state_of(task: Option<&Task>, replicas: i64) -> (ContainerState, Health) {
    let Some(task) = task else {
        return if replicas == 0 {
            (ContainerState::Exited, Health::Unknown)
        } else {
            (ContainerState::Created, Health::Unknown)
        };
    };
    match task_state(task) {
        TaskState::RUNNING => (ContainerState::Running, Health::Healthy),
        TaskState::STARTING => (ContainerState::Running, Health::Starting),
        TaskState::NEW
        | TaskState::ALLOCATED
        | TaskState::PENDING
        | TaskState::ASSIGNED
        | TaskState::ACCEPTED
        | TaskState::PREPARING
        | TaskState::READY => (ContainerState::Created, Health::Unknown),
        TaskState::FAILED | TaskState::REJECTED => (ContainerState::Dead, Health::Unknown),
        _ => (ContainerState::Exited, Health::Unknown),
    }
}

/// The task that stands for the app now: the newest the Swarm wants
/// running on a node that is not down (a down node's task is being
/// replaced); with none, `None`.
fn current<'a>(tasks: &'a [Task], service_id: &str, down: &[String]) -> Option<&'a Task> {
    tasks
        .iter()
        .filter(|t| t.service_id.as_deref() == Some(service_id))
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .filter(|t| t.node_id.as_ref().is_none_or(|n| !down.contains(n)))
        .max_by_key(|t| t.created_at.as_ref().map(|c| c.to_string()))
}

/// Every tenant service as an observed container.
pub(super) async fn observe_services(
    docker: &Docker,
    tenant: Option<&ProviderId>,
) -> Result<Vec<ObservedContainer>> {
    let services = services(docker, tenant).await?;
    let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
    let tasks = tasks_of(docker, ids).await?;
    let down = down_of(&nodes::addresses(docker).await?);
    let mut out: Vec<ObservedContainer> = services
        .iter()
        .map(|s| {
            let id = s.id.clone().unwrap_or_default();
            let (state, health) = state_of(current(&tasks, &id, &down), replicas(s));
            ObservedContainer {
                name: service_name(s),
                tenant: label(s, labels::TENANT).and_then(|t| ProviderId::parse(t).ok()),
                state,
                health,
                spec_hash: label(s, labels::CONFIG_HASH).cloned(),
                address: None,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One service and its tasks; `None` when there is no such service.
async fn service_and_tasks(docker: &Docker, name: &str) -> Result<Option<(Service, Vec<Task>)>> {
    let options = ListServicesOptions {
        filters: filters("name", vec![name.to_owned()]),
        ..Default::default()
    };
    let services = docker
        .list_services(Some(options))
        .await
        .map_err(|e| api("list services", e))?;
    // The name filter matches prefixes.
    let Some(service) = services.into_iter().find(|s| service_name(s) == name) else {
        return Ok(None);
    };
    let id = service.id.clone().unwrap_or_default();
    let tasks = of_service_id(docker, &id).await?;
    Ok(Some((service, tasks)))
}

/// The task's state as `status` shows it: `running`, or `pending: no
/// suitable node (...)`.
fn describe(task: &Task) -> String {
    let state = serde_json::to_value(task_state(task))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let status = task.status.as_ref();
    let why = status
        .and_then(|s| s.err.clone())
        .filter(|e| !e.is_empty())
        .or_else(|| {
            status
                .and_then(|s| s.message.clone())
                .filter(|m| !m.is_empty() && !m.eq_ignore_ascii_case(&state))
        });
    match why {
        Some(why) if task_state(task) != TaskState::RUNNING => format!("{state}: {why}"),
        _ => state,
    }
}

/// The ids of the nodes that are down.
fn down_of(nodes: &HashMap<String, NodeAddress>) -> Vec<String> {
    nodes
        .iter()
        .filter(|(_, n)| n.state == Some(NodeState::DOWN))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The node (hostname) the app's current task runs on and, while the app
/// runs, its endpoint there: the node's address and the service's
/// published port (host mode: the port moves with the task).
fn placed(
    service: &Service,
    task: Option<&Task>,
    state: ContainerState,
    nodes: &HashMap<String, NodeAddress>,
) -> (Option<String>, Option<String>) {
    let node = task
        .and_then(|t| t.node_id.as_ref())
        .and_then(|n| nodes.get(n));
    let published = service
        .spec
        .as_ref()
        .and_then(|s| s.endpoint_spec.as_ref())
        .and_then(|e| e.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| p.published_port);
    let endpoint = node
        .and_then(|n| n.addr.clone())
        .zip(published)
        .filter(|_| state.is_running())
        .map(|(addr, port)| format!("{addr}:{port}"));
    (node.and_then(|n| n.hostname.clone()), endpoint)
}

fn label<'a>(s: &'a Service, key: &str) -> Option<&'a String> {
    s.spec
        .as_ref()
        .and_then(|s| s.labels.as_ref())
        .and_then(|l| l.get(key))
}

/// Every tenant service that publishes a port: its node and endpoint now.
pub(super) async fn endpoints(docker: &Docker) -> Result<Vec<AppEndpoint>> {
    let services = services(docker, None).await?;
    let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
    let tasks = tasks_of(docker, ids).await?;
    let nodes = nodes::addresses(docker).await?;
    let down = down_of(&nodes);
    let mut out: Vec<AppEndpoint> = services
        .iter()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.endpoint_spec.as_ref())
                .and_then(|e| e.ports.as_ref())
                .is_some_and(|p| !p.is_empty())
        })
        .filter_map(|s| {
            let tenant = ProviderId::parse(label(s, labels::TENANT)?).ok()?;
            let app = label(s, labels::ROLE)?.clone();
            let task = current(&tasks, s.id.as_deref().unwrap_or_default(), &down);
            let (state, _) = state_of(task, replicas(s));
            let (node, endpoint) = placed(s, task, state, &nodes);
            Some(AppEndpoint {
                tenant,
                app,
                node,
                endpoint,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.tenant, &a.app).cmp(&(&b.tenant, &b.app)));
    Ok(out)
}

/// The app's details: its current task's state, node and endpoint (the
/// node's address and the published port), the newest health line when
/// the task runs on the manager itself.
pub(super) async fn details(docker: &Docker, name: &str) -> Result<Option<ContainerDetails>> {
    let Some((service, tasks)) = service_and_tasks(docker, name).await? else {
        return Ok(None);
    };
    let id = service.id.clone().unwrap_or_default();
    let nodes = nodes::addresses(docker).await?;
    let down = down_of(&nodes);
    let task = current(&tasks, &id, &down);
    let (state, health) = state_of(task, replicas(&service));
    let (node, endpoint) = placed(&service, task, state, &nodes);
    let started_at = task
        .filter(|_| state.is_running())
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.timestamp.as_ref())
        .map(|t| t.to_string());
    let uptime_secs = started_at
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds());
    let container_id = task
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.clone());
    let health_log = match container_id.filter(|_| state.is_running()) {
        Some(container) => local_health_log(docker, &container).await,
        None => None,
    };
    let exit_code = tasks
        .iter()
        .filter(|t| !state.is_running() && t.desired_state != Some(TaskState::RUNNING))
        .max_by_key(|t| t.created_at.as_ref().map(|c| c.to_string()))
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code);
    Ok(Some(ContainerDetails {
        name: name.to_owned(),
        state,
        health,
        exit_code,
        started_at,
        uptime_secs,
        health_log,
        // Tasks the Swarm replaced (it keeps a few in its history).
        restart_count: tasks.len().saturating_sub(1) as i64,
        node,
        endpoint,
        task_state: task.map(describe),
        ..ContainerDetails::default()
    }))
}

/// The newest health line of a task container, if it runs on the manager
/// (the engine of another node is not reachable from here).
async fn local_health_log(docker: &Docker, container: &str) -> Option<String> {
    let inspect = docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .ok()?;
    inspect
        .state?
        .health?
        .log?
        .into_iter()
        .last()?
        .output
        .map(|o| o.trim().to_owned())
}

/// Healthy once the current task runs (its health check passed).
pub(super) async fn probe(docker: &Docker, name: &str) -> Result<Probe> {
    let Some(d) = details(docker, name).await? else {
        return Ok(Probe::NotYet("service is gone".into()));
    };
    Ok(match d.health {
        Health::Healthy => Probe::Healthy,
        _ => Probe::NotYet(format!(
            "task {}",
            d.task_state.as_deref().unwrap_or("not scheduled yet")
        )),
    })
}

/// How long a service scaled to 0 may take to stop its task.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until no task of the service runs (a stop returns once the app
/// stopped, as on one engine).
pub(super) async fn wait_stopped(docker: &Docker, name: &str) -> Result<()> {
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let Some((_, tasks)) = service_and_tasks(docker, name).await? else {
            return Ok(());
        };
        let running = tasks.iter().any(|t| {
            matches!(
                task_state(t),
                TaskState::RUNNING | TaskState::STARTING | TaskState::PREPARING
            )
        });
        if !running {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BackendError::Api {
                what: format!("stop service {name}"),
                why: format!("a task still runs after {} s", STOP_TIMEOUT.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The service's log stream (the manager collects it from every node).
pub(super) fn logs(
    docker: &Docker,
    name: &str,
    follow: bool,
    tail: Option<u64>,
) -> impl futures::Stream<Item = Result<LogChunk>> {
    log_chunks(
        docker.service_logs(name, Some(log_options(follow, tail))),
        format!("logs of service {name}"),
    )
}
