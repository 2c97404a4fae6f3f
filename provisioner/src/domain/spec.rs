//! The tenant container spec: our own description of one tenant container
//! (image resolved to its id, environment, limits, the published port if
//! the role has one, extra hosts, labels, mounts),
//! independent of any platform's API. A backend turns it into its own
//! request; its [`ContainerSpec::hash`], put on the container as a label,
//! is how drift is seen: a changed setting or a rebuilt image under the
//! same tag gives another hash, and the container is recreated.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::capacity::Reservation;
use super::ids::{ProviderId, Role};
use super::state::{GatewayTls, TenantLimits};
use crate::config::{Config, HealthChecks};
use crate::labels;

/// The container ports the tenant apps listen on.
pub const INGEST_PORT: u16 = 6000;
pub const INGEST_HEALTH_PORT: u16 = 9100;
pub const ADMIN_PORT: u16 = 8080;
/// The notifier's internal `/healthz` port (it publishes nothing).
pub const NOTIFIER_HEALTH_PORT: u16 = 9100;
/// How long after its start a tenant app's failing health check does not
/// yet count against it (its Cassandra session may still be opening).
pub const APP_START_PERIOD_SECS: u64 = 60;

/// The port where an app of `role` answers `GET /healthz` (with its
/// line of counters: [`tenant_schema::health`]).
pub fn health_port(role: Role) -> u16 {
    match role {
        Role::Ingest => INGEST_HEALTH_PORT,
        Role::Admin => ADMIN_PORT,
        Role::Notifier => NOTIFIER_HEALTH_PORT,
    }
}

/// The extra host the notifier gets, so that a relay on the Docker host
/// itself is reachable as `host.docker.internal` (the engine resolves
/// `host-gateway` to the host's address on the default bridge).
pub const HOST_GATEWAY: &str = "host.docker.internal:host-gateway";
/// Where a tenant container finds its secrets: a read-only mount of the
/// host folder [`crate::secrets`] writes.
pub const SECRETS_MOUNT: &str = "/run/secrets";

/// Where the front's connections come from, as the tenant apps name it:
/// their network's gateway, the host's address on the tenant's bridge
/// (the front runs with host networking).
pub const FRONT_ADDRESS: &str = "default-gateway";

/// The fronts a tenant app trusts (`INGEST_TRUSTED_PROXIES`,
/// `ADMIN_TRUSTED_PROXIES`): on one engine the host's front, at
/// [`FRONT_ADDRESS`]; on a Swarm also every node's, from `[front]
/// node_network` (a front reaches an app on another node from its node's
/// address).
fn front_sources(config: &Config) -> String {
    match (&config.front.node_network, config.swarm()) {
        (Some(network), true) => format!("{FRONT_ADDRESS},{network}"),
        _ => FRONT_ADDRESS.to_owned(),
    }
}

/// The port an app publishes behind the front: none on one engine (the
/// front reaches the container on its network); on a Swarm the leased
/// port plus `[front] internal_port_offset`, in host mode on the task's
/// node, where every node's front reaches it.
pub fn internal_port(config: &Config, leased: u16) -> Option<u16> {
    config
        .swarm()
        .then(|| leased.checked_add(config.front.internal_port_offset))
        .flatten()
}

/// Logged-in gateways a tenant's ingest takes at once without `start
/// --max-gateways` (`INGEST_MAX_CONNECTIONS`, ingest's own default too):
/// what fits in the default 128 MiB with room for a write backlog
/// (BENCHMARKS.md, "Fleet scale").
pub const DEFAULT_MAX_GATEWAYS: u32 = 5_000;
/// Open files ingest needs besides one per gateway: the connections still
/// saying hello (`INGEST_MAX_UNAUTHENTICATED`, 256), its Cassandra
/// connections, its listeners and its own files.
pub const INGEST_SPARE_FILES: u64 = 512;
/// Ingest's memory besides its gateways' connections (MiB): the runtime
/// and the driver (9 MB idle), the frames in flight at their bound
/// (`INGEST_MAX_FRAMES_IN_FLIGHT`), the gateway book.
pub const INGEST_BASE_MB: i64 = 64;
/// Ingest's memory per logged-in gateway connection (KiB), with room over
/// what was measured (BENCHMARKS.md, "Fleet scale").
pub const INGEST_KIB_PER_GATEWAY: i64 = 12;

/// The cap on `limits`' tenant's gateways.
pub fn max_gateways(limits: TenantLimits) -> u32 {
    limits
        .max_gateways
        .map_or(DEFAULT_MAX_GATEWAYS, |n| n.get())
}

/// The open files of an ingest that takes `gateways` at once.
pub fn ingest_nofile(gateways: u32) -> u64 {
    u64::from(gateways) + INGEST_SPARE_FILES
}

/// The open files of the admin panel and the notifier (at most the
/// host's limit, `[limits] nofile_max`).
pub const APP_NOFILE: u64 = 4096;

/// The open-files limit of `role`'s container: set on every container, so
/// that no engine's own default applies (Podman asks for 1,048,576, more
/// than a host's hard limit may allow, and the container cannot start).
pub fn nofile(config: &Config, role: Role, limits: TenantLimits) -> u64 {
    match role {
        Role::Ingest => ingest_nofile(max_gateways(limits)),
        _ => config
            .limits
            .nofile_max
            .map_or(APP_NOFILE, |max| APP_NOFILE.min(max)),
    }
}

/// The memory limit of an ingest that takes `gateways` at once (MiB):
/// `[limits] memory_mb`, or more when the gateways need it.
pub fn ingest_memory_mb(config: &Config, gateways: u32) -> i64 {
    let needed = INGEST_BASE_MB + (i64::from(gateways) * INGEST_KIB_PER_GATEWAY + 1023) / 1024;
    config.limits.memory_mb.max(needed)
}

/// The uid and gid the tenant apps run as.
pub const APP_USER: &str = "10001:10001";

/// One tenant container, as it should be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    pub name: String,
    pub tenant: ProviderId,
    pub role: Role,
    /// The image as configured (a tag).
    pub image: String,
    /// What the tag pointed at when the spec was made.
    pub image_id: String,
    pub env: BTreeMap<String, String>,
    pub user: String,
    /// The binary, run with `healthcheck` as the platform's health check.
    pub binary: String,
    /// The port the app listens on for its clients; `None`: it publishes
    /// none (the notifier). `Some(p)` serializes as `p`, so the hashes of
    /// the containers that publish one are what they were.
    pub container_port: Option<u16>,
    /// The port the app's `/healthz` answers on inside the container.
    pub health_port: u16,
    pub host_ip: String,
    /// The leased host port `container_port` is published on.
    pub host_port: Option<u16>,
    /// `name:address` entries for the container's `/etc/hosts` (the
    /// notifier's [`HOST_GATEWAY`]); left out of the hash when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// A digest of secret file contents whose change must recreate the
    /// container (the relay's password: the notifier reads it at start);
    /// never the secret itself. Left out of the hash when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_digest: Option<String>,
    pub network: String,
    pub memory_bytes: i64,
    pub pids: i64,
    /// The open-files limit (soft and hard): [`nofile`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
    /// The processes limit (soft and hard; `RLIMIT_NPROC`, per user):
    /// `[limits] nproc_max`, the host's hard limit, so that no engine's
    /// larger default applies; `None` where the host has none. Left out
    /// of the hash when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nproc: Option<u64>,
    pub nano_cpus: Option<i64>,
    pub health_interval_secs: u64,
    /// The engine runs no health check: the provisioner probes the app's
    /// `/healthz` itself (`[health] checks = "provisioner"`). Left out of
    /// the hash when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_engine_health_check: bool,
    /// The host folder mounted read-only at [`SECRETS_MOUNT`].
    pub secrets_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// Read-only root, no capabilities, no new privileges: every tenant
    /// container has them; in the spec so that a change is drift.
    pub hardened: bool,
}

impl ContainerSpec {
    /// A short, stable hash of the whole spec (serde_json of our own
    /// struct, whose maps are ordered): no platform library's encoding is
    /// part of it.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_string(self).expect("a spec serializes");
        hex::encode(&Sha256::digest(canonical.as_bytes())[..8])
    }

    /// The labels to put on the container: the spec's, and its hash.
    pub fn labels_with_hash(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(labels::CONFIG_HASH.to_owned(), self.hash());
        labels
    }
}

/// What a tenant container's spec is made of besides the configuration.
#[derive(Debug, Clone)]
pub struct SpecInputs<'a> {
    pub tenant: &'a ProviderId,
    pub role: Role,
    /// The leased port (`None` for a role that publishes none).
    pub host_port: Option<u16>,
    pub image_id: &'a str,
    /// The tag of the images the tenant runs (`None`: as configured).
    pub image_tag: Option<&'a str>,
    pub secrets_dir: PathBuf,
    /// TLS on the gateway port (ingest only).
    pub gateway_tls: GatewayTls,
    /// The rate limit and the cap on gateways (ingest only).
    pub limits: TenantLimits,
}

/// The spec of one tenant container. The secrets themselves (the tenant
/// role's password, the panel's session secret, the relay's password) are
/// never in it: only the paths of their files.
pub fn tenant_container(config: &Config, inputs: SpecInputs<'_>) -> ContainerSpec {
    let id = inputs.tenant;
    let role = inputs.role;
    let keyspace = id.keyspace();
    let mut env = BTreeMap::from([
        ("TENANT_ID".to_owned(), id.to_string()),
        ("TENANT_KEYSPACE".to_owned(), keyspace.clone()),
        (
            "CASSANDRA_CONTACT_POINTS".to_owned(),
            config.container_contact_points().join(","),
        ),
        ("CASSANDRA_USERNAME".to_owned(), id.cassandra_role()),
        (
            "CASSANDRA_PASSWORD_FILE".to_owned(),
            format!("{SECRETS_MOUNT}/{}", crate::secrets::CASSANDRA_PASSWORD),
        ),
        ("LOG_FORMAT".to_owned(), config.log_format.clone()),
    ]);
    if config.attached_cassandra().is_some() {
        // The node advertises its address on its own network only.
        env.insert(
            "CASSANDRA_TRANSLATE_TO_CONTACT_POINT".to_owned(),
            "true".to_owned(),
        );
    }
    let mut extra_hosts = Vec::new();
    let mut secrets_digest = None;
    let (container_port, health_port, binary) = match role {
        Role::Ingest => {
            let mode = inputs.gateway_tls;
            env.insert("INGEST_TLS".to_owned(), mode.as_str().to_owned());
            env.insert(
                "INGEST_WRITE_CONSISTENCY".to_owned(),
                config.ingest_write_consistency(),
            );
            // Only when set, so that tenants without limits keep their
            // spec (and its hash: no recreation).
            if let Some(n) = inputs.limits.max_readings_per_sec {
                env.insert("INGEST_MAX_READINGS_PER_SEC".to_owned(), n.to_string());
            }
            env.insert(
                "INGEST_MAX_CONNECTIONS".to_owned(),
                max_gateways(inputs.limits).to_string(),
            );
            if mode != GatewayTls::Off {
                for (name, file) in [
                    ("INGEST_TLS_CERT_FILE", crate::secrets::GATEWAY_CERT),
                    ("INGEST_TLS_KEY_FILE", crate::secrets::GATEWAY_KEY),
                ] {
                    env.insert(name.to_owned(), format!("{SECRETS_MOUNT}/{file}"));
                }
            }
            if config.front.enabled {
                env.insert("INGEST_TRUSTED_PROXIES".to_owned(), front_sources(config));
            }
            (Some(INGEST_PORT), INGEST_HEALTH_PORT, "/ingest")
        }
        Role::Admin => {
            env.insert(
                "ADMIN_SESSION_SECRET_FILE".to_owned(),
                format!("{SECRETS_MOUNT}/{}", crate::secrets::SESSION_SECRET),
            );
            if config.admin.behind_tls {
                env.insert("ADMIN_BEHIND_TLS".to_owned(), "true".to_owned());
            }
            if config.front.enabled {
                env.insert("ADMIN_TRUSTED_PROXIES".to_owned(), front_sources(config));
            }
            (Some(ADMIN_PORT), ADMIN_PORT, "/admin")
        }
        Role::Notifier => {
            if let Some(mail) = &config.mail {
                env.extend([
                    ("NOTIFIER_SMTP_HOST".to_owned(), mail.host.clone()),
                    ("NOTIFIER_SMTP_PORT".to_owned(), mail.port.to_string()),
                    ("NOTIFIER_SMTP_TLS".to_owned(), mail.tls.as_str().to_owned()),
                    ("NOTIFIER_MAIL_FROM".to_owned(), mail.from.clone()),
                ]);
                if let Some(user) = &mail.user {
                    env.insert("NOTIFIER_SMTP_USER".to_owned(), user.clone());
                }
                if let Some(password) = &mail.password {
                    env.insert(
                        "NOTIFIER_SMTP_PASSWORD_FILE".to_owned(),
                        format!("{SECRETS_MOUNT}/{}", crate::secrets::SMTP_PASSWORD),
                    );
                    // Whoever can read the container's labels can run a
                    // container that mounts its secrets: the digest tells
                    // them nothing they could not read.
                    let digest = Sha256::digest(format!("smtp password\n{password}").as_bytes());
                    secrets_digest = Some(hex::encode(&digest[..8]));
                }
            }
            extra_hosts.push(HOST_GATEWAY.to_owned());
            (None, NOTIFIER_HEALTH_PORT, "/notifier")
        }
    };
    let mut labels: BTreeMap<String, String> = config.docker.extra_labels.clone();
    labels.extend([
        (labels::TENANT.to_owned(), id.to_string()),
        (labels::ROLE.to_owned(), role.as_str().to_owned()),
        (labels::MANAGED.to_owned(), "1".to_owned()),
    ]);
    let limits = &config.limits;
    ContainerSpec {
        name: config.container_name(id, role),
        tenant: id.clone(),
        role,
        image: config.image_tagged(role, inputs.image_tag),
        image_id: inputs.image_id.to_owned(),
        env,
        user: APP_USER.to_owned(),
        binary: binary.to_owned(),
        container_port,
        health_port,
        host_ip: config.ports.bind_address.clone(),
        // Behind the front, the front binds the leased port.
        host_port: inputs
            .host_port
            .filter(|_| container_port.is_some())
            .and_then(|port| match config.front.enabled {
                true => internal_port(config, port),
                false => Some(port),
            }),
        extra_hosts,
        secrets_digest,
        network: config.tenant_network(id),
        memory_bytes: reservation(config, role, inputs.limits).memory_bytes,
        pids: limits.pids,
        nofile: Some(nofile(config, role, inputs.limits)),
        nproc: limits.nproc_max,
        nano_cpus: nano_cpus(config),
        health_interval_secs: config.health.interval_secs.max(1),
        no_engine_health_check: config.health.checks == HealthChecks::Provisioner,
        secrets_dir: inputs.secrets_dir,
        labels,
        hardened: true,
    }
}

fn nano_cpus(config: &Config) -> Option<i64> {
    let cpus = config.limits.cpus;
    (cpus > 0.0).then_some((cpus * 1e9) as i64)
}

/// What one of a tenant's apps reserves: its memory limit (the notifier's
/// own, ingest's by its cap on gateways) and its CPU limit, if any. On
/// Swarm the limits are reservations.
pub fn reservation(config: &Config, role: Role, limits: TenantLimits) -> Reservation {
    let memory_mb = match role {
        Role::Notifier => config.limits.notifier_memory_mb,
        Role::Ingest => ingest_memory_mb(config, max_gateways(limits)),
        Role::Admin => config.limits.memory_mb,
    };
    Reservation {
        memory_bytes: memory_mb * 1024 * 1024,
        nano_cpus: nano_cpus(config).unwrap_or(0),
    }
}

/// What a tenant of today's size (no limits of its own) reserves: its
/// three apps.
pub fn tenant_reservations(config: &Config) -> Vec<Reservation> {
    Role::ALL
        .iter()
        .map(|r| reservation(config, *r, TenantLimits::default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image_id: &str, port: u16) -> ContainerSpec {
        spec_of(Role::Admin, image_id, port, GatewayTls::Optional)
    }

    fn spec_of(role: Role, image_id: &str, port: u16, gateway_tls: GatewayTls) -> ContainerSpec {
        let id = ProviderId::parse("acme").unwrap();
        tenant_container(
            &Config::default(),
            SpecInputs {
                tenant: &id,
                role,
                host_port: Some(port),
                image_id,
                image_tag: None,
                secrets_dir: PathBuf::from(format!("/data/secrets/acme-{role}")),
                gateway_tls,
                limits: TenantLimits::default(),
            },
        )
    }

    #[test]
    fn the_cap_on_gateways_sizes_ingest_s_files_and_memory() {
        let plain = spec_of(Role::Ingest, "sha256:aaa", 6001, GatewayTls::Optional);
        let default_files = u64::from(DEFAULT_MAX_GATEWAYS) + INGEST_SPARE_FILES;
        assert_eq!(plain.nofile, Some(default_files));
        let config = Config::default();
        let mb = |gateways| ingest_memory_mb(&config, gateways);
        // Small caps keep [limits] memory_mb; large ones grow with them.
        assert_eq!(mb(2), config.limits.memory_mb);
        assert_eq!(
            mb(50_000),
            INGEST_BASE_MB + (50_000 * INGEST_KIB_PER_GATEWAY + 1023) / 1024
        );
        assert!(mb(20_000) > mb(10_000));
        assert_eq!(plain.memory_bytes, mb(DEFAULT_MAX_GATEWAYS) * 1024 * 1024);
        // The others get the apps' own, under the host's limit.
        let admin = spec_of(Role::Admin, "sha256:aaa", 8081, GatewayTls::Optional);
        let host = config.limits.nofile_max;
        assert_eq!(
            admin.nofile,
            Some(host.map_or(APP_NOFILE, |h| h.min(APP_NOFILE)))
        );
        assert_eq!(admin.nproc, config.limits.nproc_max);
        assert_eq!(admin.memory_bytes, config.limits.memory_mb * 1024 * 1024);
    }

    #[test]
    fn limits_reach_ingest_only_when_set() {
        let plain = spec_of(Role::Ingest, "sha256:aaa", 6001, GatewayTls::Optional);
        assert!(!plain.env.contains_key("INGEST_MAX_READINGS_PER_SEC"));
        assert_eq!(
            plain.env["INGEST_MAX_CONNECTIONS"],
            DEFAULT_MAX_GATEWAYS.to_string()
        );
        let id = ProviderId::parse("acme").unwrap();
        let limited = tenant_container(
            &Config::default(),
            SpecInputs {
                tenant: &id,
                role: Role::Ingest,
                host_port: Some(6001),
                image_id: "sha256:aaa",
                image_tag: None,
                secrets_dir: PathBuf::from("/data/secrets/acme-ingest"),
                gateway_tls: GatewayTls::Optional,
                limits: TenantLimits::default().changed(Some(300), Some(2)),
            },
        );
        assert_eq!(limited.env["INGEST_MAX_READINGS_PER_SEC"], "300");
        assert_eq!(limited.env["INGEST_MAX_CONNECTIONS"], "2");
        assert_ne!(plain.hash(), limited.hash(), "new limits recreate ingest");
    }

    #[test]
    fn ingest_reads_its_gateway_certificate_from_the_secrets_unless_tls_is_off() {
        let on = spec_of(Role::Ingest, "sha256:aaa", 6001, GatewayTls::Required);
        assert_eq!(on.env["INGEST_TLS"], "required");
        assert_eq!(on.env["INGEST_TLS_CERT_FILE"], "/run/secrets/gateway.crt");
        assert_eq!(on.env["INGEST_TLS_KEY_FILE"], "/run/secrets/gateway.key");
        let off = spec_of(Role::Ingest, "sha256:aaa", 6001, GatewayTls::Off);
        assert_eq!(off.env["INGEST_TLS"], "off");
        assert!(!off.env.contains_key("INGEST_TLS_CERT_FILE"));
        assert_ne!(on.hash(), off.hash(), "a new mode recreates ingest");
    }

    #[test]
    fn the_hash_is_stable_and_sees_a_rebuilt_image_and_a_new_port() {
        let a = spec("sha256:aaa", 8081);
        assert_eq!(a.hash(), spec("sha256:aaa", 8081).hash());
        assert_eq!(a.hash().len(), 16);
        assert_ne!(a.hash(), spec("sha256:bbb", 8081).hash(), "rebuilt image");
        assert_ne!(a.hash(), spec("sha256:aaa", 8082).hash(), "another port");
        assert_eq!(a.labels_with_hash()[labels::CONFIG_HASH], a.hash());
    }

    fn notifier(config: &Config) -> ContainerSpec {
        let id = ProviderId::parse("acme").unwrap();
        tenant_container(
            config,
            SpecInputs {
                tenant: &id,
                role: Role::Notifier,
                host_port: None,
                image_id: "sha256:nnn",
                image_tag: None,
                secrets_dir: PathBuf::from("/data/secrets/acme-notifier"),
                gateway_tls: GatewayTls::Optional,
                limits: TenantLimits::default(),
            },
        )
    }

    /// A parsed config, with the limits of [`Config::default`] (parsing
    /// reads this host's hard limits), so its specs compare with those.
    fn with_mail(text: &str) -> Config {
        let mut config = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        config.limits = Config::default().limits;
        config
    }

    #[test]
    fn the_hashes_of_containers_with_a_port_are_those_of_the_spec_before_the_notifier() {
        // `Some(port)` serializes as the bare port and the new fields are
        // left out when empty, so the canonical text (and the hash) of an
        // ingest or admin spec is what it was before the notifier: an
        // upgrade of the provisioner recreates neither.
        let admin = spec("sha256:aaa", 8081);
        assert_eq!(admin.host_port, Some(8081));
        let text = serde_json::to_string(&admin).unwrap();
        assert!(text.contains("\"container_port\":8080,"), "{text}");
        assert!(text.contains("\"host_port\":8081,"), "{text}");
        assert!(!text.contains("extra_hosts") && !text.contains("secrets_digest"));
    }

    #[test]
    fn the_notifier_publishes_nothing_reaches_the_host_and_gets_the_relay_only_with_mail() {
        let off = notifier(&Config::default());
        assert_eq!((off.container_port, off.host_port), (None, None));
        assert_eq!(off.health_port, 9100);
        assert_eq!(off.binary, "/notifier");
        assert_eq!(off.extra_hosts, [HOST_GATEWAY]);
        assert_eq!(off.memory_bytes, 32 * 1024 * 1024);
        assert_eq!(off.name, "provision-acme-notifier");
        assert_eq!(off.labels[labels::ROLE], "notifier");
        assert!(off.hardened);
        assert!(
            !off.env.keys().any(|k| k.starts_with("NOTIFIER_")),
            "mail off"
        );
        assert_eq!(off.env["TENANT_KEYSPACE"], "tenant_acme");

        let relay = "[mail]\nhost = \"host.docker.internal\"\nport = 2525\ntls = \"none\"\nfrom = \"alerts@example.com\"\n";
        let on = notifier(&with_mail(relay));
        assert_eq!(on.env["NOTIFIER_SMTP_HOST"], "host.docker.internal");
        assert_eq!(on.env["NOTIFIER_SMTP_PORT"], "2525");
        assert_eq!(on.env["NOTIFIER_SMTP_TLS"], "none");
        assert_eq!(on.env["NOTIFIER_MAIL_FROM"], "alerts@example.com");
        assert!(!on.env.contains_key("NOTIFIER_SMTP_USER"));
        assert!(!on.env.contains_key("NOTIFIER_SMTP_PASSWORD_FILE"));
        assert_ne!(off.hash(), on.hash(), "mail on recreates the notifier");

        let auth = |password: &str| {
            notifier(&with_mail(&format!(
                "{relay}user = \"acme\"\npassword = \"{password}\"\n"
            )))
        };
        let a = auth("s3cret");
        assert_eq!(a.env["NOTIFIER_SMTP_USER"], "acme");
        assert_eq!(
            a.env["NOTIFIER_SMTP_PASSWORD_FILE"],
            "/run/secrets/smtp_password"
        );
        assert!(!serde_json::to_string(&a).unwrap().contains("s3cret"));
        assert_ne!(
            a.hash(),
            auth("other").hash(),
            "a new password recreates it"
        );
        // the relay never reaches the other apps
        let admin = tenant_container(
            &with_mail(relay),
            SpecInputs {
                tenant: &ProviderId::parse("acme").unwrap(),
                role: Role::Admin,
                host_port: Some(8081),
                image_id: "sha256:aaa",
                image_tag: None,
                secrets_dir: PathBuf::from("/data/secrets/acme-admin"),
                gateway_tls: GatewayTls::Optional,
                limits: TenantLimits::default(),
            },
        );
        assert_eq!(admin.hash(), spec("sha256:aaa", 8081).hash());
    }

    #[test]
    fn secrets_are_files_never_values() {
        let s = spec("sha256:aaa", 8081);
        assert_eq!(
            s.env["CASSANDRA_PASSWORD_FILE"],
            "/run/secrets/cassandra_password"
        );
        assert_eq!(
            s.env["ADMIN_SESSION_SECRET_FILE"],
            "/run/secrets/session_secret"
        );
        assert!(!s.env.keys().any(|k| k.ends_with("PASSWORD")));
        assert_eq!(s.network, "provision-net-acme");
        assert_eq!(s.name, "provision-acme-admin");
    }
}
