//! Tenant services on the Swarm: the service made from our own
//! [`ContainerSpec`] (the Swarm's encoding is never hashed: the spec's
//! hash is a label, as on one engine), its secrets, and create (409 =
//! exists), scale and remove (404 = done).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Limit, NetworkAttachmentConfig, ResourceObject, SecretSpec,
    Service, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
    ServiceUpdateStatusStateEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecPrivileges, TaskSpecContainerSpecSecrets, TaskSpecLogDriver,
    TaskSpecPlacement, TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{
    CreateImageOptions, InspectServiceOptions, ListSecretsOptions, UpdateServiceOptions,
};
use bollard::Docker;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::backend::docker::{api, health_check, is_status, spec_ulimits};
use crate::backend::{BackendError, Replacement, Result};
use crate::config::Config;
use crate::domain::spec::ContainerSpec;
use crate::labels;

fn nanos(s: u64) -> i64 {
    (s * 1_000_000_000) as i64
}

/// What a tag in the registry points at now, as the reference a service
/// runs: `<image>@<digest>` (the manager asks the registry, as `docker
/// service create` does), so every node pulls exactly that build.
pub(super) async fn pinned_image(docker: &Docker, image: &str) -> Result<String> {
    match docker.inspect_registry_image(image, None).await {
        Ok(d) => d
            .descriptor
            .digest
            .map(|digest| format!("{image}@{digest}"))
            .ok_or_else(|| BackendError::ImageMissing {
                image: image.to_owned(),
            }),
        Err(e) if is_status(&e, 404) || is_status(&e, 401) || is_status(&e, 403) => {
            Err(BackendError::ImageMissing {
                image: image.to_owned(),
            })
        }
        Err(e) => Err(api(format!("ask the registry for {image}"), e)),
    }
}

/// Pulls `image` onto the manager unless it has it.
pub(super) async fn pull_if_missing(docker: &Docker, image: &str) -> Result<()> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(api(format!("inspect image {image}"), e)),
    }
    let options = CreateImageOptions {
        from_image: Some(image.to_owned()),
        ..Default::default()
    };
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(progress) = pull.next().await {
        if let Err(e) = progress {
            return Err(BackendError::ImageMissing {
                image: format!("{image} (pull: {e})"),
            });
        }
    }
    Ok(())
}

/// One secret file of the service: its Swarm name carries a hash of the
/// content (secrets cannot change), its target is the file's own name
/// under `/run/secrets`.
struct SecretFile {
    name: String,
    target: String,
    data: Vec<u8>,
    /// The Swarm's id, once created.
    id: Option<String>,
}

/// The files of the spec's secrets folder, as Swarm secrets.
fn secret_files(spec: &ContainerSpec) -> Result<Vec<SecretFile>> {
    let read_err = |why: String| BackendError::Api {
        what: format!("read the secrets of {}", spec.name),
        why,
    };
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&spec.secrets_dir)
        .map_err(|e| read_err(format!("{}: {e}", spec.secrets_dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| read_err(e.to_string()))?;
        if !entry
            .file_type()
            .map_err(|e| read_err(e.to_string()))?
            .is_file()
        {
            continue;
        }
        let target = entry.file_name().to_string_lossy().into_owned();
        let data = std::fs::read(entry.path()).map_err(|e| read_err(e.to_string()))?;
        let digest = hex::encode(&Sha256::digest(&data)[..6]);
        files.push(SecretFile {
            name: format!("{}-{}-{digest}", spec.name, target.replace('.', "-")),
            target,
            data,
            id: None,
        });
    }
    files.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(files)
}

/// Creates the secret (one of that name counts as done); answers its id,
/// which a service's reference needs with the name.
async fn create_secret(docker: &Docker, spec: &ContainerSpec, file: &SecretFile) -> Result<String> {
    let labels = HashMap::from([
        (labels::MANAGED.to_owned(), "1".to_owned()),
        (labels::TENANT.to_owned(), spec.tenant.to_string()),
        (labels::SERVICE.to_owned(), spec.name.clone()),
    ]);
    let request = SecretSpec {
        name: Some(file.name.clone()),
        labels: Some(labels),
        data: Some(base64::engine::general_purpose::STANDARD.encode(&file.data)),
        ..Default::default()
    };
    match docker.create_secret(request).await {
        Ok(created) => Ok(created.id),
        Err(e) if is_status(&e, 409) => {
            let options = ListSecretsOptions {
                filters: Some(HashMap::from([(
                    "name".to_owned(),
                    vec![file.name.clone()],
                )])),
            };
            docker
                .list_secrets(Some(options))
                .await
                .map_err(|e| api("list secrets", e))?
                .into_iter()
                .find(|s| s.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(&file.name))
                .and_then(|s| s.id)
                .ok_or_else(|| api(format!("create secret {}", file.name), e))
        }
        Err(e) => Err(api(format!("create secret {}", file.name), e)),
    }
}

/// Removes the service's secrets that `keep` does not name (a secret a
/// task still holds stays, and goes on a later call).
async fn remove_secrets(docker: &Docker, service: &str, keep: &[String]) -> Result<()> {
    let options = ListSecretsOptions {
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{}={service}", labels::SERVICE)],
        )])),
    };
    let secrets = docker
        .list_secrets(Some(options))
        .await
        .map_err(|e| api("list secrets", e))?;
    for secret in secrets {
        let name = secret.spec.and_then(|s| s.name).unwrap_or_default();
        if keep.contains(&name) {
            continue;
        }
        if let Some(id) = secret.id {
            match docker.delete_secret(&id).await {
                Ok(()) => {}
                Err(e) if is_status(&e, 404) || is_status(&e, 400) => {}
                Err(e) => return Err(api(format!("remove secret {name}"), e)),
            }
        }
    }
    Ok(())
}

/// The Swarm's service for a tenant app, with `replicas` replicas:
/// - the hardening every tenant container has (read-only root, no
///   capabilities, no new privileges), its user, environment and health
///   check;
/// - limits that are also reservations, so the scheduler never places
///   more memory on a node than it has;
/// - restart on any exit; spread over nodes, plus `[swarm] constraints`;
/// - the tenant's overlay network; the published port in host mode with
///   dnsrr (no routing mesh: the endpoint is the task's node);
/// - the spec's labels and hash on the service, and on its containers.
fn service_spec(
    config: &Config,
    spec: &ContainerSpec,
    secrets: &[SecretFile],
    replicas: i64,
) -> ServiceSpec {
    let labels: HashMap<String, String> = spec.labels_with_hash().into_iter().collect();
    let hardened = spec.hardened;
    let memory = Some(spec.memory_bytes);
    let container = TaskSpecContainerSpec {
        image: Some(spec.image_id.clone()),
        labels: Some(labels.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: Some(spec.user.clone()),
        read_only: Some(hardened),
        capability_drop: hardened.then(|| vec!["ALL".to_owned()]),
        privileges: Some(TaskSpecContainerSpecPrivileges {
            no_new_privileges: Some(hardened),
            ..Default::default()
        }),
        health_check: Some(health_check(spec)),
        ulimits: spec_ulimits(spec),
        stop_grace_period: Some(nanos(10)),
        secrets: Some(
            secrets
                .iter()
                .map(|s| TaskSpecContainerSpecSecrets {
                    file: Some(TaskSpecContainerSpecFile {
                        name: Some(s.target.clone()),
                        uid: spec.user.split(':').next().map(str::to_owned),
                        gid: spec.user.split(':').nth(1).map(str::to_owned),
                        mode: Some(0o400),
                    }),
                    secret_name: Some(s.name.clone()),
                    secret_id: s.id.clone(),
                })
                .collect(),
        ),
        ..Default::default()
    };
    let mut placement = TaskSpecPlacement {
        preferences: Some(vec![TaskSpecPlacementPreferences {
            spread: Some(TaskSpecPlacementSpread {
                spread_descriptor: Some("node.id".to_owned()),
            }),
        }]),
        ..Default::default()
    };
    if !config.swarm.constraints.is_empty() {
        placement.constraints = Some(config.swarm.constraints.clone());
    }
    let ports = spec
        .container_port
        .zip(spec.host_port)
        .map(|(target, published)| EndpointPortConfig {
            protocol: Some(EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(i64::from(target)),
            published_port: Some(i64::from(published)),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        });
    ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: spec.nano_cpus,
                    memory_bytes: memory,
                    pids: Some(spec.pids),
                }),
                reservations: Some(ResourceObject {
                    nano_cpus: spec.nano_cpus,
                    memory_bytes: memory,
                    generic_resources: None,
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(nanos(1)),
                max_attempts: None,
                window: None,
            }),
            placement: Some(placement),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(spec.network.clone()),
                aliases: Some(vec![spec.name.clone()]),
                driver_opts: None,
            }]),
            log_driver: Some(log_driver()),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas),
            }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: ports.map(|p| vec![p]),
        }),
        ..Default::default()
    }
}

/// The log driver of our services: json-file, rotated (10 MB, 3 files).
pub(super) fn log_driver() -> TaskSpecLogDriver {
    TaskSpecLogDriver {
        name: Some("json-file".to_owned()),
        options: Some(HashMap::from([
            ("max-size".to_owned(), "10m".to_owned()),
            ("max-file".to_owned(), "3".to_owned()),
        ])),
    }
}

/// Creates the service with no replica (`start_container` scales it to
/// one); a service of that name counts as done.
pub(super) async fn create(docker: &Docker, config: &Config, spec: &ContainerSpec) -> Result<()> {
    let mut secrets = secret_files(spec)?;
    for file in &mut secrets {
        file.id = Some(create_secret(docker, spec, file).await?);
    }
    match docker
        .create_service(service_spec(config, spec, &secrets, 0), None)
        .await
    {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) => {}
        Err(e) => return Err(api(format!("create service {}", spec.name), e)),
    }
    // Secrets of an earlier spec (a rotated one) that no task holds now.
    let keep: Vec<String> = secrets.into_iter().map(|s| s.name).collect();
    remove_secrets(docker, &spec.name, &keep).await
}

/// How long a replacing task may take past the health timeout (its node
/// pulls the image first).
const REPLACE_SLACK: Duration = Duration::from_secs(60);

/// Replaces the running service by `spec` as a copy-update-switch: the
/// Swarm's rolling update in `start-first` order starts the new task
/// beside the old one (on another node: both publish the same host port,
/// which the scheduler never gives twice on a node), marks it running
/// only once its health check passed, then stops the old one (SIGTERM:
/// ingest drains). Every node's front health-checks every node, so it
/// sends new connections to the new task as soon as it listens, and none
/// to the old one once it stopped listening. A new task that fails is
/// rolled back by the Swarm (`failure_action: rollback`); one that is not
/// healthy within the health timeout is rolled back here.
pub(super) async fn replace(
    docker: &Docker,
    config: &Config,
    spec: &ContainerSpec,
) -> Result<Replacement> {
    let mut secrets = secret_files(spec)?;
    for file in &mut secrets {
        file.id = Some(create_secret(docker, spec, file).await?);
    }
    let service = docker
        .inspect_service(&spec.name, None::<InspectServiceOptions>)
        .await
        .map_err(|e| api(format!("inspect service {}", spec.name), e))?;
    let previous_update = format!(
        "{:?}",
        service.update_status.as_ref().map(|u| u.started_at.clone())
    );
    let mut new = service_spec(config, spec, &secrets, 1);
    new.update_config = Some(ServiceSpecUpdateConfig {
        parallelism: Some(1),
        order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
        failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
        monitor: Some(nanos(5)),
        max_failure_ratio: Some(0.0),
        ..Default::default()
    });
    new.rollback_config = Some(ServiceSpecRollbackConfig {
        parallelism: Some(1),
        order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
        ..Default::default()
    });
    let options = update_options(&service, None);
    docker
        .update_service(&spec.name, new, options, None)
        .await
        .map_err(|e| api(format!("update service {}", spec.name), e))?;
    let timeout = Duration::from_secs(config.health.timeout_secs) + REPLACE_SLACK;
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        let status = docker
            .inspect_service(&spec.name, None::<InspectServiceOptions>)
            .await
            .map_err(|e| api(format!("inspect service {}", spec.name), e))?
            .update_status;
        let ours = status
            .as_ref()
            .filter(|u| format!("{:?}", Some(u.started_at.clone())) != previous_update);
        let message = ours.and_then(|u| u.message.clone()).unwrap_or_default();
        match ours.and_then(|u| u.state) {
            Some(ServiceUpdateStatusStateEnum::COMPLETED) => break Replacement::Done,
            Some(
                ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                | ServiceUpdateStatusStateEnum::PAUSED,
            ) => break Replacement::RolledBack(message),
            _ => {}
        }
        if Instant::now() >= deadline {
            rollback(docker, &spec.name).await?;
            break Replacement::RolledBack(format!(
                "the new task was not healthy within {} s ({message}); rolled back",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if matches!(outcome, Replacement::Done) {
        // The old spec's secrets, once no task holds them.
        let keep: Vec<String> = secrets.into_iter().map(|s| s.name).collect();
        remove_secrets(docker, &spec.name, &keep).await?;
    }
    Ok(outcome)
}

/// An update of `service` at the version it was read at (one out of
/// sequence is refused), or a `rollback` to its previous spec.
fn update_options(service: &Service, rollback: Option<&str>) -> UpdateServiceOptions {
    let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
    UpdateServiceOptions {
        version: version as i32,
        rollback: rollback.map(str::to_owned),
        ..Default::default()
    }
}

/// Asks the Swarm to roll the service back to its previous spec.
async fn rollback(docker: &Docker, name: &str) -> Result<()> {
    let service = docker
        .inspect_service(name, None::<InspectServiceOptions>)
        .await
        .map_err(|e| api(format!("inspect service {name}"), e))?;
    let options = update_options(&service, Some("previous"));
    let spec = service.spec.clone().unwrap_or_default();
    docker
        .update_service(name, spec, options, None)
        .await
        .map(drop)
        .map_err(|e| api(format!("roll back service {name}"), e))
}

/// How often a scale tries again when the service changed under it (the
/// Swarm's allocator updates a service it just created).
const SCALE_ATTEMPTS: usize = 20;

/// Sets the service's replicas (the service's own spec, at its version;
/// an update out of sequence reads the service again).
pub(super) async fn scale(docker: &Docker, name: &str, replicas: i64) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match scale_once(docker, name, replicas).await {
            Err(BackendError::Api { why, .. })
                if why.contains("out of sequence") && attempt < SCALE_ATTEMPTS =>
            {
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
            }
            outcome => return outcome,
        }
    }
}

async fn scale_once(docker: &Docker, name: &str, replicas: i64) -> Result<()> {
    let service = match docker
        .inspect_service(name, None::<InspectServiceOptions>)
        .await
    {
        Ok(s) => s,
        Err(e) if is_status(&e, 404) => {
            return Err(BackendError::Api {
                what: format!("scale service {name}"),
                why: "no such service".into(),
            })
        }
        Err(e) => return Err(api(format!("inspect service {name}"), e)),
    };
    let mut spec = service.spec.clone().unwrap_or_default();
    let current = spec
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas);
    if current == Some(replicas) {
        return Ok(());
    }
    spec.mode = Some(ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated {
            replicas: Some(replicas),
        }),
        ..Default::default()
    });
    let options = update_options(&service, None);
    docker
        .update_service(name, spec, options, None)
        .await
        .map(drop)
        .map_err(|e| api(format!("scale service {name} to {replicas}"), e))
}

/// How long a removed service's tasks may take to go (their containers
/// stop with a 10 s grace period).
const REMOVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Removes the service, waits until its tasks are gone (so its network
/// can go next), then its secrets.
pub(super) async fn remove(docker: &Docker, name: &str) -> Result<()> {
    let id = match docker
        .inspect_service(name, None::<InspectServiceOptions>)
        .await
    {
        Ok(s) => s.id,
        Err(e) if is_status(&e, 404) => None,
        Err(e) => return Err(api(format!("inspect service {name}"), e)),
    };
    if let Some(id) = &id {
        match docker.delete_service(id).await {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(api(format!("remove service {name}"), e)),
        }
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        while !super::tasks::of_service_id(docker, id).await?.is_empty() {
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    remove_secrets(docker, name, &[]).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::domain::{ProviderId, Role};

    fn spec(host_port: Option<u16>) -> ContainerSpec {
        ContainerSpec {
            name: "provision-acme-ingest".into(),
            tenant: ProviderId::parse("acme").unwrap(),
            role: Role::Ingest,
            image: "provision/ingest:dev".into(),
            image_id: "10.0.0.1:5000/provision/ingest:dev@sha256:abc".into(),
            env: BTreeMap::from([("TENANT_ID".into(), "acme".into())]),
            user: "10001:10001".into(),
            binary: "/ingest".into(),
            container_port: host_port.map(|_| 6000),
            health_port: 9100,
            host_ip: "0.0.0.0".into(),
            host_port,
            extra_hosts: Vec::new(),
            secrets_digest: None,
            network: "provision-net-acme".into(),
            memory_bytes: 128 << 20,
            pids: 128,
            nofile: Some(1512),
            nproc: Some(4096),
            nano_cpus: None,
            health_interval_secs: 10,
            no_engine_health_check: false,
            secrets_dir: PathBuf::from("/nonexistent"),
            labels: BTreeMap::from([(labels::TENANT.into(), "acme".into())]),
            hardened: true,
        }
    }

    #[test]
    fn a_service_publishes_in_host_mode_with_dnsrr_and_reserves_its_limits() {
        let secrets = [SecretFile {
            name: "provision-acme-ingest-cassandra_password-0a1b2c".into(),
            target: "cassandra_password".into(),
            data: b"x".to_vec(),
            id: Some("s3cr3t1d".into()),
        }];
        let s = service_spec(&Config::default(), &spec(Some(6001)), &secrets, 1);
        let endpoint = s.endpoint_spec.unwrap();
        assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::DNSRR));
        let port = &endpoint.ports.unwrap()[0];
        assert_eq!(
            port.publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
        assert_eq!(
            (port.target_port, port.published_port),
            (Some(6000), Some(6001))
        );
        let task = s.task_template.unwrap();
        let resources = task.resources.unwrap();
        assert_eq!(resources.limits.unwrap().memory_bytes, Some(128 << 20));
        assert_eq!(
            resources.reservations.unwrap().memory_bytes,
            Some(128 << 20)
        );
        let placement = task.placement.unwrap();
        assert_eq!(
            placement.preferences.unwrap()[0]
                .spread
                .as_ref()
                .unwrap()
                .spread_descriptor
                .as_deref(),
            Some("node.id")
        );
        assert!(placement.constraints.is_none());
        let c = task.container_spec.unwrap();
        assert_eq!(c.read_only, Some(true));
        assert_eq!(c.capability_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(c.privileges.unwrap().no_new_privileges, Some(true));
        assert_eq!(
            c.image.as_deref(),
            Some("10.0.0.1:5000/provision/ingest:dev@sha256:abc")
        );
        let secret = &c.secrets.unwrap()[0];
        let file = secret.file.as_ref().unwrap();
        assert_eq!(file.name.as_deref(), Some("cassandra_password"));
        assert_eq!(
            (file.uid.as_deref(), file.mode),
            (Some("10001"), Some(0o400))
        );
        assert_eq!(secret.secret_id.as_deref(), Some("s3cr3t1d"));
        assert!(s.labels.unwrap().contains_key(labels::CONFIG_HASH));
        assert_eq!(
            task.networks.unwrap()[0].target.as_deref(),
            Some("provision-net-acme")
        );
    }

    #[test]
    fn a_service_without_a_port_publishes_none_and_constraints_come_from_the_config() {
        let mut config = Config::default();
        config.swarm.constraints = vec!["node.labels.tier == tenants".into()];
        let s = service_spec(&config, &spec(None), &[], 0);
        assert!(s.endpoint_spec.unwrap().ports.is_none());
        let replicas = s.mode.unwrap().replicated.unwrap().replicas;
        assert_eq!(replicas, Some(0));
        let placement = s.task_template.unwrap().placement.unwrap();
        assert_eq!(
            placement.constraints.unwrap(),
            ["node.labels.tier == tenants"]
        );
    }
}
