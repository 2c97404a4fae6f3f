//! Tenant containers on the engine: the create request made from our own
//! [`ContainerSpec`] (the engine's encoding is never hashed), and create
//! (looked up first; a name taken, Docker's 409 or Podman's 500, = exists),
//! start (304 = running), stop, remove (404 = done).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, HostConfigLogConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, RemoveContainerOptions,
    RenameContainerOptions, StopContainerOptions,
};
use bollard::Docker;

use super::infra::require_image;
use super::{api, is_status, name_taken};
use crate::backend::Result;
use crate::domain::spec::{ContainerSpec, APP_START_PERIOD_SECS, SECRETS_MOUNT};

pub(super) fn secs(s: u64) -> i64 {
    (s * 1_000_000_000) as i64
}

/// Logs kept by the engine: 3 files of 10 MiB.
pub(super) fn log_config() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some("json-file".to_owned()),
        config: Some(HashMap::from([
            ("max-size".to_owned(), "10m".to_owned()),
            ("max-file".to_owned(), "3".to_owned()),
        ])),
    }
}

/// A tenant app's health check: its binary's `healthcheck` subcommand
/// (the same on one engine and on a Swarm service), or none at all, the
/// image's own turned off, where the provisioner probes instead.
pub(crate) fn health_check(spec: &ContainerSpec) -> HealthConfig {
    if spec.no_engine_health_check {
        return HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..HealthConfig::default()
        };
    }
    HealthConfig {
        test: Some(vec![
            "CMD".into(),
            spec.binary.clone(),
            "healthcheck".into(),
        ]),
        interval: Some(secs(spec.health_interval_secs)),
        timeout: Some(secs(5)),
        retries: Some(3),
        start_period: Some(secs(APP_START_PERIOD_SECS)),
        start_interval: None,
    }
}

/// Limits as the engine takes them, soft and hard alike: `(name, value)`.
pub fn ulimits(limits: &[(&str, Option<u64>)]) -> Option<Vec<ResourcesUlimits>> {
    let list: Vec<ResourcesUlimits> = limits
        .iter()
        .filter_map(|(name, value)| {
            let value = i64::try_from((*value)?).unwrap_or(i64::MAX);
            Some(ResourcesUlimits {
                name: Some((*name).to_owned()),
                soft: Some(value),
                hard: Some(value),
            })
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

/// A spec's open-files and processes limits (also a Swarm task's).
pub(crate) fn spec_ulimits(spec: &ContainerSpec) -> Option<Vec<ResourcesUlimits>> {
    ulimits(&[("nofile", spec.nofile), ("nproc", spec.nproc)])
}

/// The address a port is published on as the engine is told it: every
/// address is none (Podman's netavark makes `0.0.0.0` a rule for that one
/// address, which matches no packet; Docker takes either).
fn binding_ip(ip: &str) -> String {
    match ip {
        "0.0.0.0" | "::" => String::new(),
        ip => ip.to_owned(),
    }
}

/// The engine's create request for a tenant container: the spec's image
/// (by id, so a container runs exactly the build its spec names), its
/// published port if it has one, its extra hosts, its limits and the
/// hardening every tenant container has: read-only root, no capabilities,
/// no new privileges, restart unless stopped, the secrets folder mounted
/// read-only.
pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let published = spec
        .container_port
        .zip(spec.host_port)
        .map(|(container, host)| (format!("{container}/tcp"), host));
    let hardened = spec.hardened;
    ContainerCreateBody {
        image: Some(spec.image_id.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: Some(spec.user.clone()),
        exposed_ports: published.as_ref().map(|(key, _)| vec![key.clone()]),
        healthcheck: Some(health_check(spec)),
        host_config: Some(HostConfig {
            // Empty, not absent, for the notifier: what compose sends for a
            // service without ports, so an exported tenant inspects the same.
            port_bindings: Some(
                published
                    .map(|(key, host)| {
                        HashMap::from([(
                            key,
                            Some(vec![PortBinding {
                                host_ip: Some(binding_ip(&spec.host_ip)),
                                host_port: Some(host.to_string()),
                            }]),
                        )])
                    })
                    .unwrap_or_default(),
            ),
            extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
            network_mode: Some(spec.network.clone()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            memory: Some(spec.memory_bytes),
            memory_swap: Some(spec.memory_bytes),
            pids_limit: Some(spec.pids),
            ulimits: spec_ulimits(spec),
            nano_cpus: spec.nano_cpus,
            readonly_rootfs: Some(hardened),
            cap_drop: hardened.then(|| vec!["ALL".to_owned()]),
            security_opt: hardened.then(|| vec!["no-new-privileges:true".to_owned()]),
            log_config: Some(log_config()),
            binds: Some(vec![format!(
                "{}:{SECRETS_MOUNT}:ro",
                spec.secrets_dir.display()
            )]),
            ..Default::default()
        }),
        labels: Some(spec.labels_with_hash().into_iter().collect()),
        ..Default::default()
    }
}

/// Creates a container unless one of that name exists (looked up first;
/// a create that finds the name taken meanwhile counts as done too).
pub(super) async fn create_container(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
) -> Result<()> {
    match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(api(format!("inspect container {name}"), e)),
    }
    if let Some(image) = &body.image {
        require_image(docker, image).await?;
    }
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    match docker.create_container(Some(options), body).await {
        Ok(_) => Ok(()),
        Err(e) if name_taken(&e) => Ok(()),
        Err(e) => Err(api(format!("create container {name}"), e)),
    }
}

pub(super) async fn start_container(docker: &Docker, name: &str) -> Result<()> {
    match docker.start_container(name, None).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 304) => Ok(()),
        Err(e) => Err(api(format!("start container {name}"), e)),
    }
}

pub(super) async fn stop_container(docker: &Docker, name: &str) -> Result<()> {
    let options = StopContainerOptions {
        t: Some(10),
        ..Default::default()
    };
    match docker.stop_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 304) || is_status(&e, 404) => Ok(()),
        Err(e) => Err(api(format!("stop container {name}"), e)),
    }
}

/// Renames a container; already named so counts as done.
pub(super) async fn rename_container(docker: &Docker, name: &str, to: &str) -> Result<()> {
    let options = RenameContainerOptions {
        name: to.to_owned(),
    };
    match docker.rename_container(name, options).await {
        Ok(()) => Ok(()),
        Err(e)
            if is_status(&e, 404)
                && docker
                    .inspect_container(
                        to,
                        None::<bollard::query_parameters::InspectContainerOptions>,
                    )
                    .await
                    .is_ok() =>
        {
            Ok(())
        }
        Err(e) => Err(api(format!("rename container {name} to {to}"), e)),
    }
}

/// Sends a signal to a running container's main process.
pub(super) async fn signal(docker: &Docker, name: &str, signal: &str) -> Result<()> {
    let options = KillContainerOptions {
        signal: signal.to_owned(),
    };
    docker
        .kill_container(name, Some(options))
        .await
        .map_err(|e| api(format!("send {signal} to container {name}"), e))
}

pub(super) async fn remove_container(docker: &Docker, name: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        // 409: removal already in progress (another remover).
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(api(format!("remove container {name}"), e)),
    }
}
