//! `export`: a tenant as a docker-compose file, so that nobody is locked
//! in. The document is made from the very container specs `start` creates
//! (`Provisioner::container_spec` on the tenant's leased ports), turned
//! into the engine's create request ([`create_body`], what the Docker
//! backend sends) and that request written out in compose terms: image,
//! container name, published ports, environment, the secrets bind mount,
//! labels, health check, restart policy, limits, hardening, logging and
//! network. Nothing here decides a setting of its own, so an exported file
//! cannot drift from what `provision` runs.
//!
//! The format is compose file version 2.4, which docker-compose 1.29
//! (Debian 12) reads with the limits applied outside Swarm. The tenant's
//! network is declared external: it belongs to provision's shared
//! infrastructure (Cassandra is attached to it, which is how the tenant
//! containers reach it by name).
//! Images are written by their configured tag; the image id each tag
//! resolved to at export time is kept in the `x-provision` extension.
//! [`ComposeFile::to_yaml`] writes it for YAML 1.1 and 1.2 readers alike.

mod yaml;

use std::collections::BTreeMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use serde::Serialize;

use super::Provisioner;
use crate::backend::docker::create_body;
use crate::domain::spec::ContainerSpec;
use crate::domain::{ProviderId, Role};
use crate::error::{Error, Result};

/// The compose file format written: 2.x applies memory, pids and CPU limits
/// without Swarm, and 2.4 has every key used here.
pub const COMPOSE_VERSION: &str = "2.4";

/// A docker-compose file for one tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeFile {
    pub version: String,
    /// By role: `ingest`, `admin`.
    pub services: BTreeMap<String, ComposeService>,
    /// Every network a service joins, each `external: true`.
    pub networks: BTreeMap<String, ComposeNetwork>,
    /// Where the file came from (compose ignores `x-` keys).
    #[serde(rename = "x-provision")]
    pub provenance: Provenance,
}

impl ComposeFile {
    /// The file as YAML that docker-compose 1.29 (YAML 1.1) and YAML 1.2
    /// readers read alike (see [`yaml`]).
    pub fn to_yaml(&self) -> String {
        // Our own struct: strings, numbers, booleans and string-keyed maps.
        let value = serde_norway::to_value(self).expect("a compose file serializes");
        yaml::to_string(&value)
    }
}

/// What the `x-provision` extension records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub tenant: ProviderId,
    /// By role, the image id the service's tag pointed at when exported.
    pub image_ids: BTreeMap<String, String>,
}

/// A network the file uses but does not own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeNetwork {
    pub external: bool,
}

/// One service: one tenant container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeService {
    pub image: String,
    pub container_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// `host_ip:host_port:container_port/proto`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// `name:address` lines for `/etc/hosts` (the notifier's
    /// `host.docker.internal:host-gateway`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// `host_path:container_path:ro` binds.
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<ComposeHealthcheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    pub networks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `nofile` and `nproc: {soft, hard}` (ingest's open files by its
    /// cap on gateways, the others' fixed; processes: the host's limit).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, ComposeUlimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    pub read_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<ComposeLogging>,
}

/// One of a service's ulimits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeUlimit {
    pub soft: i64,
    pub hard: i64,
}

/// A service's health check, durations in compose's notation (`10s`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeHealthcheck {
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
}

/// A service's log driver and its options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeLogging {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

/// A duration of the engine's API (nanoseconds) in compose's notation:
/// whole seconds as `10s`, else `ms` or `us`.
fn duration(nanos: i64) -> String {
    match nanos {
        n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n => format!("{}us", n / 1_000),
    }
}

/// The create request's fields that [`compose_service`] translates, taken
/// out of it; what is left must be the empty request (see the test
/// `every_field_of_the_create_request_is_written_out`).
fn translate(body: &mut ContainerCreateBody, spec: &ContainerSpec) -> ComposeService {
    let mut host = body.host_config.take().unwrap_or_default();
    // By id in the request; by its tag here (the id is in `x-provision`).
    body.image.take();
    let environment = body
        .env
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv, String::new()),
        })
        .collect();
    let mut expose = body.exposed_ports.take().unwrap_or_default();
    expose.sort();
    let mut ports: Vec<String> = host
        .port_bindings
        .take()
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(container, bindings)| {
            bindings
                .unwrap_or_default()
                .into_iter()
                .map(move |b| match (b.host_ip, b.host_port) {
                    (Some(ip), Some(port)) if !ip.is_empty() => format!("{ip}:{port}:{container}"),
                    (_, Some(port)) => format!("{port}:{container}"),
                    (_, None) => container.clone(),
                })
        })
        .collect();
    ports.sort();
    let healthcheck = body.healthcheck.take().map(|h| ComposeHealthcheck {
        test: h.test.unwrap_or_default(),
        interval: h.interval.map(duration),
        timeout: h.timeout.map(duration),
        retries: h.retries,
        start_period: h.start_period.map(duration),
    });
    let logging = host.log_config.take().and_then(|l| {
        l.typ.map(|driver| ComposeLogging {
            driver,
            options: l.config.unwrap_or_default().into_iter().collect(),
        })
    });
    let service = ComposeService {
        image: spec.image.clone(),
        container_name: spec.name.clone(),
        user: body.user.take(),
        environment,
        expose,
        ports,
        extra_hosts: host.extra_hosts.take().unwrap_or_default(),
        volumes: host.binds.take().unwrap_or_default(),
        labels: body.labels.take().unwrap_or_default().into_iter().collect(),
        healthcheck,
        restart: host
            .restart_policy
            .take()
            .and_then(|r| r.name)
            .map(|n| n.to_string()),
        networks: host.network_mode.take().into_iter().collect(),
        mem_limit: host.memory.take(),
        memswap_limit: host.memory_swap.take(),
        pids_limit: host.pids_limit.take(),
        ulimits: host
            .ulimits
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|u| {
                Some((
                    u.name?,
                    ComposeUlimit {
                        soft: u.soft?,
                        hard: u.hard?,
                    },
                ))
            })
            .collect(),
        cpus: host.nano_cpus.take().map(|n| n as f64 / 1e9),
        read_only: host.readonly_rootfs.take().unwrap_or(false),
        cap_drop: host.cap_drop.take().unwrap_or_default(),
        security_opt: host.security_opt.take().unwrap_or_default(),
        logging,
    };
    if host != HostConfig::default() {
        body.host_config = Some(host);
    }
    service
}

/// One tenant container as a compose service: the engine's create request
/// for `spec`, written out.
pub fn compose_service(spec: &ContainerSpec) -> ComposeService {
    translate(&mut create_body(spec), spec)
}

/// The compose file of a tenant's containers.
pub fn compose_file(tenant: &ProviderId, specs: &[ContainerSpec]) -> ComposeFile {
    let services: BTreeMap<String, ComposeService> = specs
        .iter()
        .map(|s| (s.role.as_str().to_owned(), compose_service(s)))
        .collect();
    let networks = services
        .values()
        .flat_map(|s| s.networks.iter().cloned())
        .map(|n| (n, ComposeNetwork { external: true }))
        .collect();
    ComposeFile {
        version: COMPOSE_VERSION.to_owned(),
        services,
        networks,
        provenance: Provenance {
            tenant: tenant.clone(),
            image_ids: specs
                .iter()
                .map(|s| (s.role.as_str().to_owned(), s.image_id.clone()))
                .collect(),
        },
    }
}

/// A destroyed tenant has released its ports: there is nothing to export.
fn no_ports(id: &ProviderId) -> Error {
    Error::Usage(format!(
        "tenant {id} has no leased ports (it was destroyed), so no containers to export; \
         `provision start {id}` gives it ports and containers again"
    ))
}

impl Provisioner {
    /// `export`: the compose file equivalent to `id`'s containers, on its
    /// leased ports. Reads only: nothing is locked, logged or changed.
    /// Unknown tenants fail with [`Error::UnknownProvider`], destroyed ones
    /// (no ports) with a usage error.
    pub async fn export(&self, id: &ProviderId) -> Result<ComposeFile> {
        let record = self.known(id).await?;
        let cluster = self.cluster_config(id).await?;
        let images = super::ImageIds::default();
        let mut specs = Vec::new();
        for role in Role::ALL {
            let port = match role.pool() {
                Some(_) => Some(record.port(role).ok_or_else(|| no_ports(id))?),
                None => None,
            };
            specs.push(
                self.container_spec(
                    &cluster,
                    id,
                    role,
                    port,
                    record.gateway_tls,
                    record.limits,
                    record.image_tag.as_deref(),
                    &images,
                )
                .await?,
            );
        }
        Ok(compose_file(id, &specs))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Config;
    use crate::domain::spec::{tenant_container, SpecInputs};

    fn spec(config: &Config, role: Role, port: u16) -> ContainerSpec {
        let id = ProviderId::parse("acme").unwrap();
        tenant_container(
            config,
            SpecInputs {
                tenant: &id,
                role,
                host_port: role.pool().map(|_| port),
                image_id: "sha256:abc",
                image_tag: None,
                secrets_dir: PathBuf::from(format!("/data/secrets/acme-{role}")),
                gateway_tls: Default::default(),
                limits: Default::default(),
            },
        )
    }

    /// A setting added to the create request but not to the export fails
    /// here: whatever `translate` does not take out is left in the body.
    #[test]
    fn every_field_of_the_create_request_is_written_out() {
        let config = Config {
            limits: crate::config::LimitsConfig {
                cpus: 0.5,
                ..Config::default().limits
            },
            ..Config::default()
        };
        for role in Role::ALL {
            let spec = spec(&config, role, 6001);
            let mut body = create_body(&spec);
            translate(&mut body, &spec);
            assert_eq!(body, ContainerCreateBody::default(), "{role}: not exported");
        }
    }

    #[test]
    fn a_service_has_the_containers_name_image_port_mount_and_hardening() {
        let config = Config::default();
        let ingest = spec(&config, Role::Ingest, 6001);
        let s = compose_service(&ingest);
        assert_eq!(s.image, "provision/ingest:dev");
        assert_eq!(s.container_name, "provision-acme-ingest");
        assert_eq!(s.ports, ["6001:6000/tcp"], "every address: no host IP");
        assert_eq!(s.expose, ["6000/tcp"]);
        assert_eq!(s.volumes, ["/data/secrets/acme-ingest:/run/secrets:ro"]);
        assert_eq!(s.networks, ["provision-net-acme"]);
        assert_eq!(s.restart.as_deref(), Some("unless-stopped"));
        assert_eq!(s.user.as_deref(), Some("10001:10001"));
        assert!(s.read_only);
        assert_eq!(s.cap_drop, ["ALL"]);
        let files = ingest.nofile.unwrap() as i64;
        assert_eq!(
            s.ulimits["nofile"],
            ComposeUlimit {
                soft: files,
                hard: files
            }
        );
        assert_eq!(s.security_opt, ["no-new-privileges:true"]);
        assert_eq!(s.mem_limit, Some(128 * 1024 * 1024));
        assert_eq!(s.memswap_limit, s.mem_limit);
        assert_eq!(s.cpus, None, "no CPU limit by default");
        assert_eq!(s.environment["TENANT_ID"], "acme");
        assert_eq!(s.labels["io.provision.config-hash"], ingest.hash());
        let health = s.healthcheck.expect("a health check");
        assert_eq!(health.test, ["CMD", "/ingest", "healthcheck"]);
        assert_eq!(health.interval.as_deref(), Some("10s"));
        assert_eq!(health.start_period.as_deref(), Some("60s"));
        assert_eq!(s.logging.expect("logging").options["max-file"], "3");
    }

    #[test]
    fn the_file_declares_the_tenant_network_external_and_records_image_ids() {
        let config = Config::default();
        let specs = [
            spec(&config, Role::Ingest, 6001),
            spec(&config, Role::Admin, 8081),
            spec(&config, Role::Notifier, 0),
        ];
        let file = compose_file(&ProviderId::parse("acme").unwrap(), &specs);
        assert_eq!(file.version, "2.4");
        assert_eq!(
            file.services.keys().collect::<Vec<_>>(),
            ["admin", "ingest", "notifier"]
        );
        assert_eq!(file.services["admin"].ports, ["8081:8080/tcp"]);
        let notifier = &file.services["notifier"];
        assert!(notifier.ports.is_empty() && notifier.expose.is_empty());
        assert_eq!(notifier.extra_hosts, ["host.docker.internal:host-gateway"]);
        assert_eq!(notifier.mem_limit, Some(32 * 1024 * 1024));
        assert!(!file.to_yaml().contains("ports: []"));
        assert_eq!(
            file.networks,
            BTreeMap::from([(
                "provision-net-acme".to_owned(),
                ComposeNetwork { external: true }
            )])
        );
        assert_eq!(file.provenance.image_ids["admin"], "sha256:abc");
        let json = serde_json::to_value(&file).unwrap();
        assert!(json.get("x-provision").is_some(), "{json}");
    }

    #[test]
    fn durations_are_written_in_compose_notation() {
        assert_eq!(duration(10_000_000_000), "10s");
        assert_eq!(duration(1_500_000_000), "1500ms");
        assert_eq!(duration(2_500), "2us");
    }
}
