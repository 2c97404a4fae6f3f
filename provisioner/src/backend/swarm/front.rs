//! The front on a Swarm: a global service (one task on every node that
//! is not drained, a joining node included, restarted by the Swarm), with
//! host networking so that it binds the tenants' public ports on every
//! node, and the configuration the provisioner publishes for it.
//!
//! A Swarm config cannot change, and a service's mounted config changes
//! only by restarting its tasks, which would close every gateway's
//! connection. So the configuration is published as a new Swarm config
//! for each version, labelled with a serial (the newest wins), and the
//! front's agent (`images/front/front-agent`, a `program` of HAProxy's
//! master) on each node reads the newest from the manager's API when the
//! manager reports a config event, checks it and reloads its master
//! seamlessly. Nothing has to reach the nodes, and a node that starts
//! (or a front that restarts) takes the newest configuration first.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, Mount, MountType, NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecPrivileges, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{InspectServiceOptions, ListConfigsOptions};
use bollard::Docker;

use super::services::{log_driver, pinned_image};
use crate::backend::docker::{api, is_status};
use crate::backend::{BackendError, Result};
use crate::config::Config;
use crate::front::runtime::CONTAINER_DIR;
use crate::labels;

/// The label every published configuration has: its serial (the
/// publishing time in milliseconds; the agent takes the highest).
pub const SERIAL_LABEL: &str = "io.provision.front.serial";
/// The label that names the configuration's generation.
const GENERATION_LABEL: &str = "io.provision.front.generation";
/// How many published configurations stay (the newest, and the one
/// before it, which an agent may be reading).
const KEEP: usize = 2;
/// How long the front's tasks may take to run after its service is
/// created (each node pulls the image from the registry).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the front's service exists.
pub(super) async fn exists(docker: &Docker, config: &Config) -> Result<bool> {
    match docker
        .inspect_service(&config.front.container, None::<InspectServiceOptions>)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(api(
            format!("inspect service {}", config.front.container),
            e,
        )),
    }
}

/// The published configurations, newest first: (serial, id, spec).
async fn published(docker: &Docker) -> Result<Vec<(u128, String, ConfigSpec)>> {
    let options = ListConfigsOptions {
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![SERIAL_LABEL.to_owned()],
        )])),
    };
    let mut out: Vec<(u128, String, ConfigSpec)> = docker
        .list_configs(Some(options))
        .await
        .map_err(|e| api("list configs", e))?
        .into_iter()
        .filter_map(|c| {
            let spec = c.spec?;
            let serial = spec.labels.as_ref()?.get(SERIAL_LABEL)?.parse().ok()?;
            Some((serial, c.id?, spec))
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(out)
}

/// The text of the newest published configuration (none yet).
pub(super) async fn newest(docker: &Docker) -> Result<Option<String>> {
    let Some((_, id, spec)) = published(docker).await?.into_iter().next() else {
        return Ok(None);
    };
    let data = spec.data.unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .map_err(|e| BackendError::Api {
            what: format!("read config {id}"),
            why: e.to_string(),
        })?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Publishes `text` as the newest configuration, then removes all but
/// the newest [`KEEP`].
pub(super) async fn publish(
    docker: &Docker,
    config: &Config,
    text: &str,
    generation: &str,
) -> Result<()> {
    let mut serial = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    // Never below the newest, whatever the clocks say.
    if let Some((newest, _, _)) = published(docker).await?.first() {
        serial = serial.max(newest + 1);
    }
    let name = format!("{}-{serial}", config.front.container);
    let spec = ConfigSpec {
        name: Some(name.clone()),
        labels: Some(HashMap::from([
            (labels::MANAGED.to_owned(), "1".to_owned()),
            (labels::ROLE.to_owned(), labels::ROLE_FRONT.to_owned()),
            (SERIAL_LABEL.to_owned(), serial.to_string()),
            (GENERATION_LABEL.to_owned(), generation.to_owned()),
        ])),
        data: Some(base64::engine::general_purpose::STANDARD.encode(text)),
        ..Default::default()
    };
    docker
        .create_config(spec)
        .await
        .map_err(|e| api(format!("create config {name}"), e))?;
    for (_, id, _) in published(docker).await?.into_iter().skip(KEEP) {
        match docker.delete_config(&id).await {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(api(format!("remove config {id}"), e)),
        }
    }
    Ok(())
}

/// The front's service: `[front] image` from the registry, pinned, on
/// every node (global), with host networking, restarted on any exit; its
/// agent reads the manager at [`Config::front_manager_url`].
fn service_spec(config: &Config, image: String, manager: String) -> ServiceSpec {
    let labels = HashMap::from([
        (labels::MANAGED.to_owned(), "1".to_owned()),
        (labels::ROLE.to_owned(), labels::ROLE_FRONT.to_owned()),
    ]);
    let mut container_labels = labels.clone();
    container_labels.extend(config.docker.extra_labels.clone());
    ServiceSpec {
        name: Some(config.front.container.clone()),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image),
                labels: Some(container_labels),
                env: Some(vec![format!("PROVISION_FRONT_MANAGER={manager}")]),
                // The hardening of the front on one engine: a read-only
                // root (its folder a tmpfs), no capabilities (the ports
                // are above 1024), no new privileges.
                read_only: Some(true),
                mounts: Some(vec![Mount {
                    target: Some(CONTAINER_DIR.to_owned()),
                    typ: Some(MountType::TMPFS),
                    ..Default::default()
                }]),
                capability_drop: Some(vec!["ALL".to_owned()]),
                privileges: Some(TaskSpecContainerSpecPrivileges {
                    no_new_privileges: Some(true),
                    ..Default::default()
                }),
                // SIGUSR1 (the image's STOPSIGNAL): the listeners close,
                // the connections finish.
                stop_grace_period: Some(10_000_000_000),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(1_000_000_000),
                max_attempts: None,
                window: None,
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some("host".to_owned()),
                ..Default::default()
            }]),
            log_driver: Some(log_driver()),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates the front's service unless it exists (a service of that name
/// counts as done), then waits until a task of it runs.
pub(super) async fn ensure(docker: &Docker, config: &Config) -> Result<()> {
    if !exists(docker, config).await? {
        let image = pinned_image(docker, &config.platform_image(&config.front.image)).await?;
        let manager = config
            .front_manager_url()
            .map_err(|why| BackendError::Api {
                what: "create the front's service".into(),
                why,
            })?;
        match docker
            .create_service(service_spec(config, image, manager), None)
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 409) => {}
            Err(e) => return Err(api(format!("create service {}", config.front.container), e)),
        }
    }
    let name = &config.front.container;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let tasks = super::tasks::of_service_name(docker, name).await?;
        if tasks
            .iter()
            .any(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let why = tasks
                .iter()
                .filter_map(|t| t.status.as_ref())
                .filter_map(|s| s.err.clone().or_else(|| s.message.clone()))
                .next()
                .unwrap_or_else(|| "no task".into());
            return Err(BackendError::Api {
                what: format!("start service {name}"),
                why: format!(
                    "no task runs within {} s: {why}; see `docker service ps {name}`",
                    START_TIMEOUT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_is_global_with_host_networking_and_knows_the_manager() {
        let mut config = Config::default();
        config
            .docker
            .extra_labels
            .insert("io.provision.test".into(), "1".into());
        let spec = service_spec(
            &config,
            "reg:5000/provision/front:dev@sha256:ab".into(),
            "http://10.0.0.1:2375".into(),
        );
        assert_eq!(spec.name.as_deref(), Some("provision-front"));
        assert!(spec.mode.as_ref().unwrap().global.is_some());
        assert!(spec.mode.as_ref().unwrap().replicated.is_none());
        let task = spec.task_template.unwrap();
        assert_eq!(task.networks.unwrap()[0].target.as_deref(), Some("host"));
        let container = task.container_spec.unwrap();
        assert_eq!(
            container.env.unwrap(),
            ["PROVISION_FRONT_MANAGER=http://10.0.0.1:2375"]
        );
        let labels = container.labels.unwrap();
        assert_eq!(labels.get(labels::ROLE).map(String::as_str), Some("front"));
        assert_eq!(
            labels.get("io.provision.test").map(String::as_str),
            Some("1")
        );
        // no tenant label: never taken for a tenant's service
        assert!(!spec.labels.unwrap().contains_key(labels::TENANT));
    }
}
