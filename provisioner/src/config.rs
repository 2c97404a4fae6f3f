//! The provisioner's configuration: a TOML file (`--config FILE`), every key
//! optional, with defaults that work on one machine: state in a SQLite file
//! under the user's data directory, the local Docker engine, a managed
//! Cassandra container.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tenant_common::trusted_proxies::Network;

mod clusters;
pub use clusters::{ClusterEntry, DEFAULT_CLUSTER, MANAGED_NODE_CAPACITY};

use crate::cql::Replication;
use crate::domain::ports::{Pools, PortRange};
use crate::domain::{ProviderId, Role};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where locks and the default state file live. Default:
    /// `$XDG_DATA_HOME/provision` or `~/.local/share/provision`.
    pub data_dir: Option<PathBuf>,
    /// The state store: a path to a SQLite file, or a `sqlite:` URL.
    /// Default: `<data_dir>/state.db`.
    pub state: Option<String>,
    pub docker: DockerConfig,
    pub cassandra: CassandraConfig,
    pub ports: PortsConfig,
    pub images: ImagesConfig,
    pub limits: LimitsConfig,
    pub health: HealthConfig,
    /// `provisiond`, the daemon.
    pub daemon: DaemonConfig,
    /// TLS on the tenants' gateway ports.
    pub gateway_tls: GatewayTlsConfig,
    /// The tenants' admin panels.
    pub admin: AdminPanelConfig,
    /// `LOG_FORMAT` given to the tenant apps: `json` or `text`.
    pub log_format: String,
    /// The operator's SMTP relay, which every tenant's notifier sends
    /// through; `None` (no `[mail]` section): mail is off, the notifiers
    /// still track alert states.
    pub mail: Option<MailConfig>,
    pub swarm: SwarmConfig,
    /// The front: an HAProxy on the host that owns the tenants' public
    /// ports (off by default: each tenant app publishes its own).
    pub front: FrontConfig,
}

/// `[front]`: the per-host HAProxy that binds every leased tenant port and
/// forwards to the tenant apps, so that an app can be replaced behind a
/// port that never closes (`provision upgrade`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontConfig {
    /// `true`: the front owns the ports; `false` (default): today's
    /// behaviour, each tenant container publishes its own port.
    pub enabled: bool,
    /// Its image (built by `scripts/setup` from Debian's `haproxy`).
    pub image: String,
    /// Its container's name.
    pub container: String,
    /// HAProxy's `maxconn`: connections at once over all tenants (each
    /// takes two file descriptors).
    pub maxconn: u32,
    /// Swarm mode: the network (CIDR, e.g. `10.0.0.0/24`) the nodes'
    /// addresses are in. A front reaches a tenant app on another node
    /// from its own node's address, so the apps trust a PROXY header or
    /// `X-Forwarded-For` from this network (and from their default
    /// gateway, where the front of their own node comes from). Required
    /// with the front on a Swarm.
    pub node_network: Option<String>,
    /// Swarm mode: a tenant app publishes (host mode) on its leased port
    /// plus this offset, where the front of every node reaches it; the
    /// leased port is the front's.
    pub internal_port_offset: u16,
    /// Swarm mode: the manager's Docker API as the front of every node
    /// reaches it (`http://host:port`), where it reads the configuration
    /// the provisioner publishes; default: `[docker] host` when that is
    /// `tcp://host:port`.
    pub manager_url: Option<String>,
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig {
            enabled: false,
            image: "provision/front:dev".into(),
            container: "provision-front".into(),
            maxconn: 9000,
            node_network: None,
            internal_port_offset: 10000,
            manager_url: None,
        }
    }
}

/// How the notifier talks to the relay: `NOTIFIER_SMTP_TLS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    /// Plain SMTP (a relay on the Docker host or a trusted network).
    None,
    /// Plain, then STARTTLS before anything else is said.
    Starttls,
    /// Implicit TLS from the first byte (SMTPS).
    Tls,
}

impl MailTls {
    pub const ALL: [MailTls; 3] = [MailTls::None, MailTls::Starttls, MailTls::Tls];

    pub fn as_str(self) -> &'static str {
        match self {
            MailTls::None => "none",
            MailTls::Starttls => "starttls",
            MailTls::Tls => "tls",
        }
    }

    /// The port a relay usually listens on for this mode.
    pub fn default_port(self) -> u16 {
        match self {
            MailTls::None => 25,
            MailTls::Starttls => 587,
            MailTls::Tls => 465,
        }
    }
}

/// The `[mail]` section as written: every key checked by
/// [`MailConfig::try_from`], so an error names its key.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawMail {
    host: Option<String>,
    port: Option<i64>,
    tls: Option<String>,
    user: Option<String>,
    password: Option<String>,
    from: Option<String>,
}

/// The operator's SMTP relay (`[mail]`), validated at load. Tenants cannot
/// change it: it lives only in this config, and reaches each notifier as
/// its environment (the password as a secret file).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawMail")]
pub struct MailConfig {
    pub host: String,
    pub port: u16,
    pub tls: MailTls,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The sender (`alerts@example.com` or `Alerts <alerts@example.com>`).
    pub from: String,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

impl TryFrom<RawMail> for MailConfig {
    type Error = String;

    fn try_from(raw: RawMail) -> std::result::Result<Self, String> {
        let host = raw
            .host
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .ok_or("[mail] host is missing: the relay's host name or address (a relay on the Docker host is host.docker.internal)")?;
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(format!(
                "[mail] host {host:?} is not a host name or address"
            ));
        }
        let tls = match raw.tls.as_deref().map(str::trim) {
            None => MailTls::Starttls,
            Some(t) => MailTls::ALL
                .into_iter()
                .find(|m| m.as_str() == t)
                .ok_or_else(|| {
                    format!("[mail] tls = {t:?} is not one of \"none\", \"starttls\" or \"tls\"")
                })?,
        };
        let port = match raw.port {
            None => tls.default_port(),
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("[mail] port = {p} is not a port (1-65535)"))?,
        };
        let user = raw.user.filter(|u| !u.is_empty());
        let password = raw.password.filter(|p| !p.is_empty());
        if user.is_some() != password.is_some() {
            return Err("[mail] needs both user and password, or neither".into());
        }
        if user
            .as_deref()
            .is_some_and(|u| u.chars().any(char::is_control))
        {
            return Err("[mail] user holds a control character".into());
        }
        let from = raw
            .from
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .ok_or("[mail] from is missing: the sender's address, such as alerts@example.com")?;
        from.parse::<lettre::message::Mailbox>().map_err(|_| {
            format!("[mail] from = {from:?} is not an email address (alerts@example.com or \"Alerts <alerts@example.com>\")")
        })?;
        Ok(MailConfig {
            host,
            port,
            tls,
            user,
            password,
            from,
        })
    }
}

/// The gateway ports' certificates. By default the provisioner's own CA
/// (in `<data_dir>/pki`) issues one per tenant for `[ports] public_host`;
/// with `cert_file` and `key_file`, every tenant's ingest serves that
/// certificate instead (one for the host name the gateways dial).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayTlsConfig {
    /// The operator's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
}

impl GatewayTlsConfig {
    /// The operator's chain and key, when both are set.
    pub fn operator_files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }
}

/// The admin panels. They serve plain HTTP; with `behind_tls = true` the
/// operator says browsers reach them through a proxy that terminates TLS,
/// and their cookies are `Secure` (`ADMIN_BEHIND_TLS`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminPanelConfig {
    pub behind_tls: bool,
}

/// The daemon's listeners and its watcher.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// The Unix socket (mode 0660). Default: `/run/provision/provisiond.sock`.
    pub socket: PathBuf,
    /// A TCP address to listen on too (`127.0.0.1:7070`); every request
    /// there needs an operator token. Default: none.
    pub listen: Option<String>,
    /// TLS on the TCP listener: the certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS on the TCP listener: the private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// How often the watcher compares every tenant with its desired state,
    /// besides following the engine's events (seconds).
    pub resync_secs: u64,
    /// The longest the watcher waits before repairing a tenant that keeps
    /// failing (seconds); the wait doubles from one second up to it.
    pub max_backoff_secs: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: PathBuf::from("/run/provision/provisiond.sock"),
            listen: None,
            tls_cert: None,
            tls_key: None,
            resync_secs: 30,
            max_backoff_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// `unix:///path` or `tcp://host:port`; default: `DOCKER_HOST` or the
    /// local socket.
    pub host: Option<String>,
    /// The managed Cassandra's own network. Each tenant gets a network of
    /// its own, `<network>-<tenant>`, holding its two containers and the
    /// Cassandra container, so no tenant's container can reach another's.
    pub network: String,
    /// Prefix of every container name: `<prefix>-<tenant>-<role>`.
    pub container_prefix: String,
    /// Extra labels put on every container, network and volume the
    /// provisioner creates (e.g. an environment or
    /// owner tag; the tests put their cleanup scope here).
    pub extra_labels: std::collections::BTreeMap<String, String>,
    /// `engine` (default): tenant apps are containers on one engine.
    /// `swarm`: the engine is a Swarm manager and tenant apps are services
    /// the Swarm places on its nodes (`[swarm]`).
    pub mode: DockerMode,
    /// One engine: the IPv4 pool each tenant's bridge network takes a
    /// subnet of `tenant_subnet_prefix` from, the first that no network of
    /// the engine overlaps (default `10.240.0.0/12`: 4,096 tenants of /24).
    /// `engine` leaves it to the engine's own default pools, which hold
    /// about 30 networks. Swarm overlays take the Swarm's own pool.
    pub tenant_subnets: String,
    /// The prefix length of each tenant's subnet (default 24).
    pub tenant_subnet_prefix: u8,
}

/// `[docker] tenant_subnets = "engine"`: the engine's own pools.
pub const ENGINE_SUBNETS: &str = "engine";

/// Where tenant apps run: containers on one engine, or Swarm services.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerMode {
    #[default]
    Engine,
    Swarm,
}

impl DockerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DockerMode::Engine => "engine",
            DockerMode::Swarm => "swarm",
        }
    }
}

/// `[docker] mode = "swarm"`: how tenant services are placed and where the
/// nodes find the images.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// The registry the nodes pull from (`host:port`): every image is
    /// `<registry>/<name>` (the tenant images of `[images]` and the managed
    /// Cassandra's), pinned by digest in each service. Unset: the names as
    /// they are, from a registry the nodes already know.
    pub registry: Option<String>,
    /// Placement constraints every tenant service gets, as Swarm writes
    /// them (`node.labels.tier == tenants`).
    pub constraints: Vec<String>,
    /// The memory tenant apps may reserve on each node, in MiB (default:
    /// all the node has). Leave room for the engine, the OS and a
    /// Cassandra node on the same host.
    pub node_memory_mb: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CassandraMode {
    /// A single-node Cassandra container the provisioner runs itself.
    Managed,
    /// A cluster the user runs: contact points from the config.
    External,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CassandraConfig {
    pub mode: CassandraMode,
    /// Managed: the image, container name, volume, heap and the loopback
    /// port the provisioner reaches CQL on.
    pub image: String,
    pub container: String,
    pub volume: String,
    pub heap: String,
    /// Managed: the container's memory limit in MiB (the heap plus
    /// off-heap memtables, metaspace, thread stacks and direct buffers).
    pub memory_mb: i64,
    /// Managed: the container's pids limit (Cassandra runs a few hundred
    /// threads).
    pub pids: i64,
    pub host_port: u16,
    /// External: where the provisioner (on the host) reaches CQL.
    pub contact_points: Vec<String>,
    /// External: where tenant containers reach CQL (default: `contact_points`).
    pub container_contact_points: Vec<String>,
    /// External: the single contact point is a published port of a node
    /// that advertises another address (a node in Docker): send every
    /// connection there.
    pub published: bool,
    /// External: the cluster is one node running as a container on this
    /// engine (the test harness's node): attach it to every tenant network,
    /// as the managed node is.
    pub attach_container: Option<String>,
    /// External: a superuser (managed mode rotates and stores its own).
    pub admin_user: String,
    pub admin_password: String,
    pub replication: ReplicationConfig,
    /// The consistency ingest writes readings at, so what an ack means on a
    /// cluster: a level's CQL name (`one`, `quorum`, `local_quorum`, ...) or
    /// `auto` (the default): `local_quorum` where every replication factor
    /// is 3 or more, else `one`.
    pub write_consistency: String,
    /// How long to wait for CQL to answer (a managed node starting cold
    /// takes ~15-30 s).
    pub connect_timeout_secs: u64,
    /// How many tenants the cluster of this section takes at most, when
    /// there are no `clusters` (unset: the managed node's table limit,
    /// [`clusters::MANAGED_NODE_CAPACITY`]; an external cluster's none).
    pub capacity: Option<u32>,
    /// `[[cassandra.clusters]]`: the clusters tenants are placed on, when
    /// there are more than this section's one ([`clusters`]).
    pub clusters: Vec<ClusterEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "class")]
pub enum ReplicationConfig {
    SimpleStrategy {
        replication_factor: u32,
    },
    NetworkTopologyStrategy {
        datacenters: std::collections::BTreeMap<String, u32>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortsConfig {
    /// Gateway ports, "first-last".
    pub gateway: PortRange,
    /// Admin panel ports, "first-last".
    pub admin: PortRange,
    /// The host address ports are published on.
    pub bind_address: String,
    /// The host name printed in the gateway endpoint and the admin URL.
    pub public_host: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    pub ingest: String,
    pub admin: String,
    pub notifier: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// The memory limit of the ingest and admin containers (MiB); ingest
    /// gets more when its cap on gateways needs it
    /// ([`crate::domain::spec::ingest_memory_mb`]).
    pub memory_mb: i64,
    /// The notifier's memory limit (MiB): its idle RSS is under 10 MB and
    /// it builds one mail at a time, the daily report's CSV the largest.
    pub notifier_memory_mb: i64,
    pub pids: i64,
    /// CPU limit in cores (0 = none).
    pub cpus: f64,
    /// The most open files a container may be given: the engine host's
    /// hard limit, above which a container cannot start. Default: this
    /// process's own hard limit, read when the config is loaded (the
    /// engine's host is usually this one).
    pub nofile_max: Option<u64>,
    /// The processes limit every container gets (`RLIMIT_NPROC`, per
    /// user, threads included). Default: this process's own hard limit,
    /// read when the config is loaded, and at most [`NPROC_CEILING`].
    pub nproc_max: Option<u64>,
}

/// The default `[limits] nproc_max` at most: Podman's service lowers its
/// own hard limit on processes to 32,768 (seen here, under a shell's
/// 96,367), and a container asking for more than its engine has cannot
/// start ("error setting rlimit type 6"). Room for 200 tenants' apps and
/// a few Cassandra nodes' threads.
pub const NPROC_CEILING: u64 = 32_768;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// How long `start` waits for both containers to answer /healthz.
    pub timeout_secs: u64,
    /// Docker HEALTHCHECK interval (seconds).
    pub interval_secs: u64,
    /// Who checks the tenant apps' health: the engine, running each app's
    /// `healthcheck` every `interval_secs` (the default), or the
    /// provisioner, by its own `GET /healthz` when it asks (`status`,
    /// `start`'s wait, `/metrics`), so the engine execs nothing.
    pub checks: HealthChecks,
}

/// `[health] checks`: who checks the tenant apps' health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthChecks {
    /// The engine runs each app's `healthcheck` on a timer: an exec into
    /// the container each time (60 a second for 200 tenants at 10 s,
    /// most of a 2-core host's CPU).
    #[default]
    Engine,
    /// The engine runs none: the provisioner asks each app's `/healthz`
    /// itself when it needs to know. One engine only (a Swarm replaces
    /// unhealthy tasks by the engine's checks).
    Provisioner,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: None,
            state: None,
            docker: DockerConfig::default(),
            cassandra: CassandraConfig::default(),
            ports: PortsConfig::default(),
            images: ImagesConfig::default(),
            limits: LimitsConfig::default(),
            health: HealthConfig::default(),
            daemon: DaemonConfig::default(),
            gateway_tls: GatewayTlsConfig::default(),
            admin: AdminPanelConfig::default(),
            log_format: "json".into(),
            mail: None,
            swarm: SwarmConfig::default(),
            front: FrontConfig::default(),
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            host: None,
            network: "provision-net".into(),
            container_prefix: "provision".into(),
            extra_labels: Default::default(),
            mode: DockerMode::Engine,
            tenant_subnets: "10.240.0.0/12".into(),
            tenant_subnet_prefix: 24,
        }
    }
}

impl Default for CassandraConfig {
    fn default() -> Self {
        CassandraConfig {
            mode: CassandraMode::Managed,
            image: "provision/cassandra:5.0".into(),
            container: "provision-cassandra".into(),
            volume: "provision-cassandra-data".into(),
            heap: "2G".into(),
            memory_mb: 4096,
            pids: 4096,
            host_port: 19042,
            contact_points: Vec::new(),
            container_contact_points: Vec::new(),
            published: false,
            attach_container: None,
            admin_user: "cassandra".into(),
            admin_password: "cassandra".into(),
            replication: ReplicationConfig::SimpleStrategy {
                replication_factor: 1,
            },
            write_consistency: "auto".into(),
            connect_timeout_secs: 180,
            capacity: None,
            clusters: Vec::new(),
        }
    }
}

impl Default for PortsConfig {
    fn default() -> Self {
        PortsConfig {
            gateway: PortRange::parse("6001-6999").expect("a valid default"),
            admin: PortRange::parse("8081-8999").expect("a valid default"),
            bind_address: "0.0.0.0".into(),
            public_host: "localhost".into(),
        }
    }
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            ingest: "provision/ingest:dev".into(),
            admin: "provision/admin:dev".into(),
            notifier: "provision/notifier:dev".into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            memory_mb: 128,
            notifier_memory_mb: 32,
            pids: 128,
            cpus: 0.0,
            nofile_max: None,
            nproc_max: None,
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            timeout_secs: 90,
            interval_secs: 10,
            checks: HealthChecks::Engine,
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        PortRange::parse(&raw).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{raw:?} is not a port range first-last (1 <= first <= last <= 65535)"
            ))
        })
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration in {path}: {why}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub why: String,
}

type Result<T> = std::result::Result<T, ConfigError>;

impl Config {
    /// Reads `path`, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default().with_host_limits());
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_owned(),
            why: e.message().to_owned(),
        })?;
        config.validate(path)?;
        Ok(config.with_host_limits())
    }

    /// `[limits] nofile_max` and `nproc_max` from this process's hard
    /// limits when unset.
    fn with_host_limits(mut self) -> Config {
        let (nofile, nproc) = host_limits();
        self.limits.nofile_max = self.limits.nofile_max.or(nofile);
        self.limits.nproc_max = self.limits.nproc_max.or(Some(nproc));
        self
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |why: String| ConfigError {
            path: path.to_owned(),
            why,
        };
        if self.ports.gateway.overlaps(&self.ports.admin) {
            return Err(bad("[ports].gateway and [ports].admin overlap".into()));
        }
        if self.cassandra.mode == CassandraMode::External
            && self.cassandra.contact_points.is_empty()
            && self.cassandra.clusters.is_empty()
        {
            return Err(bad(
                "[cassandra] mode = \"external\" needs contact_points".into()
            ));
        }
        self.check_clusters().map_err(bad)?;
        if !matches!(self.log_format.as_str(), "json" | "text") {
            return Err(bad("log_format must be json or text".into()));
        }
        if self.cassandra.write_consistency != "auto" {
            tenant_schema::cql::parse_consistency(&self.cassandra.write_consistency)
                .map_err(|why| bad(format!("[cassandra] write_consistency: {why}, or auto")))?;
        }
        if self.limits.notifier_memory_mb < 8 {
            return Err(bad(
                "[limits] notifier_memory_mb must be at least 8 (MiB)".into()
            ));
        }
        let tls = &self.gateway_tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(bad(
                "[gateway_tls] needs both cert_file and key_file, or neither".into(),
            ));
        }
        if self.front.enabled && self.swarm() {
            self.check_swarm_front().map_err(bad)?;
        }
        if self.health.checks == HealthChecks::Provisioner && self.swarm() {
            return Err(bad(
                "[health] checks = \"provisioner\" works on one engine only: a Swarm \
                 replaces unhealthy tasks by the engine's own checks"
                    .into(),
            ));
        }
        self.tenant_subnet_pool().map_err(bad)?;
        if self.front.maxconn == 0 {
            return Err(bad("[front] maxconn must be at least 1".into()));
        }
        Ok(())
    }

    /// Where tenant networks take their subnets from on one engine:
    /// `[docker] tenant_subnets` and the subnets' prefix length, or `None`
    /// when the engine chooses (`engine`, or Swarm mode).
    pub fn tenant_subnet_pool(&self) -> std::result::Result<Option<(Network, u8)>, String> {
        let docker = &self.docker;
        if self.swarm() || docker.tenant_subnets == ENGINE_SUBNETS {
            return Ok(None);
        }
        let pool: Network = docker
            .tenant_subnets
            .parse()
            .map_err(|why| format!("[docker] tenant_subnets: {why}, or \"{ENGINE_SUBNETS}\""))?;
        if !pool.address().is_ipv4() {
            return Err(format!(
                "[docker] tenant_subnets {pool}: the pool must be IPv4"
            ));
        }
        let prefix = docker.tenant_subnet_prefix;
        if !(pool.prefix()..=29).contains(&prefix) {
            return Err(format!(
                "[docker] tenant_subnet_prefix {prefix}: must be {} (the pool's) to 29",
                pool.prefix()
            ));
        }
        Ok(Some((pool, prefix)))
    }

    /// What the front needs on a Swarm: the nodes' network, internal
    /// ports that fit and are in no pool, a manager its nodes reach.
    fn check_swarm_front(&self) -> std::result::Result<(), String> {
        let front = &self.front;
        let network = front.node_network.as_deref().ok_or(
            "[front] node_network is required in swarm mode: the network (CIDR) the nodes' \
             addresses are in, whose fronts the tenant apps trust",
        )?;
        network
            .parse::<Network>()
            .map_err(|why| format!("[front] node_network: {why}"))?;
        if front.internal_port_offset == 0 {
            return Err("[front] internal_port_offset must be at least 1".into());
        }
        let pools = self.pools();
        for pool in [&pools.gateway, &pools.admin] {
            let shifted = pool
                .ports()
                .end()
                .checked_add(front.internal_port_offset)
                .and_then(|end| {
                    PortRange::parse(&format!(
                        "{}-{end}",
                        pool.ports().start() + front.internal_port_offset
                    ))
                })
                .ok_or_else(|| {
                    format!(
                        "[front] internal_port_offset {} puts ports of {pool} past 65535",
                        front.internal_port_offset
                    )
                })?;
            if shifted.overlaps(&pools.gateway) || shifted.overlaps(&pools.admin) {
                return Err(format!(
                    "[front] internal_port_offset {}: the internal ports {shifted} overlap \
                     [ports] gateway {} or admin {}",
                    front.internal_port_offset, pools.gateway, pools.admin
                ));
            }
        }
        self.front_manager_url()?;
        Ok(())
    }

    /// The manager's Docker API as the fronts on a Swarm reach it
    /// (`[front] manager_url`, or `[docker] host` over TCP as HTTP).
    pub fn front_manager_url(&self) -> std::result::Result<String, String> {
        if let Some(url) = &self.front.manager_url {
            let host = url.strip_prefix("http://").unwrap_or_default();
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            {
                return Err(format!(
                    "[front] manager_url {url:?} must be http://host:port"
                ));
            }
            return Ok(url.clone());
        }
        match self
            .docker
            .host
            .as_deref()
            .and_then(|h| h.strip_prefix("tcp://"))
        {
            Some(host) => Ok(format!("http://{host}")),
            None => Err(
                "the front on a Swarm reads its configuration from the manager's Docker \
                 API: set [front] manager_url = \"http://<manager>:<port>\" (every node's \
                 front must reach it), or [docker] host = \"tcp://<manager>:<port>\""
                    .into(),
            ),
        }
    }

    /// The two port pools.
    pub fn pools(&self) -> Pools {
        Pools {
            gateway: self.ports.gateway.clone(),
            admin: self.ports.admin.clone(),
        }
    }

    /// The data directory: configured, or the user's data directory.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("provision");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/provision")
    }

    /// The SQLite file of the state store.
    pub fn state_path(&self) -> PathBuf {
        match &self.state {
            Some(s) => {
                let s = s
                    .strip_prefix("sqlite://")
                    .or_else(|| s.strip_prefix("sqlite:"))
                    .unwrap_or(s);
                PathBuf::from(s.split('?').next().unwrap_or(s))
            }
            None => self.data_dir().join("state.db"),
        }
    }

    pub fn replication(&self) -> Replication {
        match &self.cassandra.replication {
            ReplicationConfig::SimpleStrategy { replication_factor } => Replication::Simple {
                factor: *replication_factor,
            },
            ReplicationConfig::NetworkTopologyStrategy { datacenters } => {
                Replication::NetworkTopology {
                    datacenters: datacenters.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                }
            }
        }
    }

    /// The CQL name of the consistency ingest writes at: `[cassandra]
    /// write_consistency`, with `auto` resolved by the replication.
    pub fn ingest_write_consistency(&self) -> String {
        let configured = &self.cassandra.write_consistency;
        if configured != "auto" {
            return configured.trim().to_ascii_lowercase();
        }
        let smallest = match &self.cassandra.replication {
            ReplicationConfig::SimpleStrategy { replication_factor } => *replication_factor,
            ReplicationConfig::NetworkTopologyStrategy { datacenters } => {
                datacenters.values().copied().min().unwrap_or(1)
            }
        };
        if smallest >= 3 { "local_quorum" } else { "one" }.to_owned()
    }

    /// Where tenant containers reach Cassandra.
    pub fn container_contact_points(&self) -> Vec<String> {
        match self.cassandra.mode {
            CassandraMode::Managed => vec![format!("{}:9042", self.cassandra.container)],
            CassandraMode::External if self.cassandra.container_contact_points.is_empty() => {
                self.cassandra.contact_points.clone()
            }
            CassandraMode::External => self.cassandra.container_contact_points.clone(),
        }
    }

    /// The tenant's own network.
    pub fn tenant_network(&self, tenant: &ProviderId) -> String {
        format!("{}-{tenant}", self.docker.network)
    }

    /// The Cassandra container attached to every tenant network, if any.
    pub fn attached_cassandra(&self) -> Option<&str> {
        match self.cassandra.mode {
            CassandraMode::Managed => Some(&self.cassandra.container),
            CassandraMode::External => self.cassandra.attach_container.as_deref(),
        }
    }

    /// The container name of one of a tenant's apps.
    pub fn container_name(&self, tenant: &ProviderId, role: Role) -> String {
        format!("{}-{tenant}-{role}", self.docker.container_prefix)
    }

    /// Whether tenant apps are Swarm services.
    pub fn swarm(&self) -> bool {
        self.docker.mode == DockerMode::Swarm
    }

    /// An image as the platform's nodes name it: in Swarm mode with a
    /// registry, `<registry>/<image>`; else as configured.
    pub fn platform_image(&self, image: &str) -> String {
        match (&self.swarm.registry, self.swarm()) {
            (Some(registry), true) => format!("{}/{image}", registry.trim_end_matches('/')),
            _ => image.to_owned(),
        }
    }

    /// The address the managed Cassandra publishes CQL on, where the
    /// provisioner reaches it: loopback on one engine; in Swarm mode the
    /// manager's address when the engine is reached over TCP (the node
    /// runs on the manager), else loopback (the provisioner runs there).
    pub fn managed_cql_host(&self) -> String {
        let tcp_host = self
            .docker
            .host
            .as_deref()
            .and_then(|h| {
                h.strip_prefix("tcp://")
                    .or_else(|| h.strip_prefix("http://"))
            })
            .and_then(|h| h.rsplit_once(':').map(|(host, _)| host.to_owned()));
        match tcp_host {
            Some(host) if self.swarm() => host,
            _ => "127.0.0.1".to_owned(),
        }
    }

    /// The image of a role.
    pub fn image(&self, role: Role) -> &str {
        match role {
            Role::Ingest => &self.images.ingest,
            Role::Admin => &self.images.admin,
            Role::Notifier => &self.images.notifier,
        }
    }

    /// The image of a role with its tag replaced by `tag` (`provision
    /// upgrade --image-tag`), or as configured when `tag` is `None`.
    pub fn image_tagged(&self, role: Role, tag: Option<&str>) -> String {
        let image = self.image(role);
        let Some(tag) = tag else {
            return image.to_owned();
        };
        // A ':' after the last '/' starts the tag; one before it is a
        // registry's port.
        let name_start = image.rfind('/').map_or(0, |i| i + 1);
        let repository = match image[name_start..].find(':') {
            Some(i) => &image[..name_start + i],
            None => image,
        };
        format!("{repository}:{tag}")
    }
}

/// This process's hard limit of the `/proc/self/limits` line starting
/// with `name`, if it has one (not `unlimited`).
/// The `[limits]` defaults this process's hard limits give: the most open
/// files (none when unreadable) and processes (at most [`NPROC_CEILING`]).
pub fn host_limits() -> (Option<u64>, u64) {
    let nproc = hard_limit("Max processes").map_or(NPROC_CEILING, |h| h.min(NPROC_CEILING));
    (hard_limit("Max open files"), nproc)
}

fn hard_limit(name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with(name))?;
    let words = name.split_whitespace().count();
    line.split_whitespace().nth(words + 1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_config_file_gives_the_documented_defaults() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.ports.gateway.to_string(), "6001-6999");
        assert_eq!(c.ports.admin.to_string(), "8081-8999");
        assert_eq!(c.cassandra.mode, CassandraMode::Managed);
        assert_eq!(
            c.container_contact_points(),
            vec!["provision-cassandra:9042"]
        );
        assert!(c.state_path().ends_with("provision/state.db"));
    }

    #[test]
    fn tenant_subnets_come_from_a_pool_unless_the_engine_chooses() {
        let (pool, prefix) = Config::default().tenant_subnet_pool().unwrap().unwrap();
        assert_eq!((pool.to_string().as_str(), prefix), ("10.240.0.0/12", 24));
        let parse =
            |docker: &str| Config::parse(&format!("[docker]\n{docker}"), Path::new("t.toml"));
        let c = parse("tenant_subnets = \"engine\"").unwrap();
        assert_eq!(c.tenant_subnet_pool().unwrap(), None);
        let c = parse("tenant_subnets = \"172.30.0.0/16\"\ntenant_subnet_prefix = 26").unwrap();
        let (pool, prefix) = c.tenant_subnet_pool().unwrap().unwrap();
        assert_eq!((pool.to_string().as_str(), prefix), ("172.30.0.0/16", 26));
        let c = parse("mode = \"swarm\"").unwrap();
        assert_eq!(
            c.tenant_subnet_pool().unwrap(),
            None,
            "overlays: the Swarm's pool"
        );
        for (bad, why) in [
            ("tenant_subnets = \"10.240.0.0\"", "write address/prefix"),
            ("tenant_subnets = \"fd00::/64\"", "must be IPv4"),
            ("tenant_subnet_prefix = 8", "must be 12 (the pool's) to 29"),
            ("tenant_subnet_prefix = 30", "to 29"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn an_external_cluster_is_configured_by_contact_points() {
        let text = r#"
            state = "/tmp/x/state.db"
            [cassandra]
            mode = "external"
            contact_points = ["10.0.0.1:9042", "10.0.0.2:9042"]
            replication = { class = "NetworkTopologyStrategy", datacenters = { dc1 = 3 } }
            [ports]
            gateway = "7000-7009"
            admin = "7100-7109"
        "#;
        let c = Config::parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(c.container_contact_points().len(), 2);
        assert_eq!(c.state_path(), PathBuf::from("/tmp/x/state.db"));
        assert_eq!(
            c.replication(),
            Replication::NetworkTopology {
                datacenters: vec![("dc1".into(), 3)]
            }
        );
        // three replicas: an ack means a quorum of them in the datacenter
        assert_eq!(c.ingest_write_consistency(), "local_quorum");
    }

    #[test]
    fn ingest_writes_at_local_quorum_from_three_replicas_unless_configured() {
        assert_eq!(Config::default().ingest_write_consistency(), "one");
        let two_dcs = r#"
            [cassandra]
            replication = { class = "NetworkTopologyStrategy", datacenters = { dc1 = 3, dc2 = 2 } }
        "#;
        let c = Config::parse(two_dcs, Path::new("t.toml")).unwrap();
        assert_eq!(c.ingest_write_consistency(), "one");
        let chosen = "[cassandra]\nwrite_consistency = \"QUORUM\"";
        let c = Config::parse(chosen, Path::new("t.toml")).unwrap();
        assert_eq!(c.ingest_write_consistency(), "quorum");
    }

    #[test]
    fn mail_is_off_without_a_section_and_its_port_follows_its_tls() {
        assert!(Config::default().mail.is_none());
        let text = "[mail]\nhost = \"host.docker.internal\"\ntls = \"tls\"\nfrom = \"Alerts <alerts@example.com>\"";
        let mail = Config::parse(text, Path::new("t.toml"))
            .unwrap()
            .mail
            .unwrap();
        assert_eq!((mail.port, mail.tls), (465, MailTls::Tls));
        assert_eq!(mail.user, None);
        let text =
            "[mail]\nhost = \"relay\"\nfrom = \"a@example.com\"\nuser = \"u\"\npassword = \"p\"";
        let mail = Config::parse(text, Path::new("t.toml"))
            .unwrap()
            .mail
            .unwrap();
        assert_eq!((mail.port, mail.tls), (587, MailTls::Starttls));
        assert!(
            !format!("{mail:?}").contains("\"p\""),
            "the password is not printed"
        );
        let text =
            "[mail]\nhost = \"relay\"\nfrom = \"a@example.com\"\ntls = \"none\"\nport = 2525";
        let mail = Config::parse(text, Path::new("t.toml"))
            .unwrap()
            .mail
            .unwrap();
        assert_eq!((mail.port, mail.tls), (2525, MailTls::None));
    }

    #[test]
    fn bad_configs_are_refused_with_the_key_named() {
        for (text, needle) in [
            ("[ports]\ngateway = \"9-1\"", "\"9-1\" is not a port range"),
            (
                "[ports]\ngateway = \"8000-8100\"\nadmin = \"8050-8200\"",
                "overlap",
            ),
            ("[cassandra]\nmode = \"external\"", "contact_points"),
            ("colour = 1", "colour"),
            (
                "[cassandra]\nwrite_consistency = \"most\"",
                "write_consistency",
            ),
            ("[mail]\nfrom = \"a@example.com\"", "[mail] host is missing"),
            (
                "[mail]\nhost = \"relay\"\nfrom = \"a@example.com\"\ntls = \"ssl\"",
                "[mail] tls = \"ssl\"",
            ),
            (
                "[mail]\nhost = \"relay\"\nfrom = \"a@example.com\"\nport = 70000",
                "[mail] port = 70000",
            ),
            (
                "[mail]\nhost = \"relay\"\nfrom = \"a@example.com\"\nuser = \"u\"",
                "both user and password",
            ),
            ("[mail]\nhost = \"relay\"", "[mail] from is missing"),
            (
                "[mail]\nhost = \"relay\"\nfrom = \"not an address\"",
                "[mail] from = \"not an address\"",
            ),
            (
                "[mail]\nhost = \"relay\"\nfrom = \"a@b.c\"\nrelay = 1",
                "relay",
            ),
        ] {
            let err = Config::parse(text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn provisioner_health_checks_are_for_one_engine_only() {
        let path = Path::new("t.toml");
        assert_eq!(
            Config::parse("", path).unwrap().health.checks,
            HealthChecks::Engine
        );
        let one = Config::parse("[health]\nchecks = \"provisioner\"", path).unwrap();
        assert_eq!(one.health.checks, HealthChecks::Provisioner);
        let swarm = "[docker]\nmode = \"swarm\"\n[health]\nchecks = \"provisioner\"";
        let err = Config::parse(swarm, path).unwrap_err().to_string();
        assert!(err.contains("one engine only"), "{err}");
        let typo = Config::parse("[health]\nchecks = \"docker\"", path).unwrap_err();
        assert!(
            typo.to_string()
                .contains("expected `engine` or `provisioner`"),
            "{typo}"
        );
    }

    #[test]
    fn an_image_tag_replaces_the_tag_and_keeps_a_registry_port() {
        let mut config = Config::default();
        assert_eq!(
            config.image_tagged(Role::Ingest, Some("v2")),
            "provision/ingest:v2"
        );
        assert_eq!(
            config.image_tagged(Role::Ingest, None),
            "provision/ingest:dev"
        );
        config.images.admin = "registry.local:5000/provision/admin".into();
        assert_eq!(
            config.image_tagged(Role::Admin, Some("v3")),
            "registry.local:5000/provision/admin:v3"
        );
        config.images.admin = "registry.local:5000/admin:dev".into();
        assert_eq!(
            config.image_tagged(Role::Admin, Some("v3")),
            "registry.local:5000/admin:v3"
        );
    }

    #[test]
    fn the_front_is_off_by_default_and_on_a_swarm_needs_the_nodes_network() {
        let path = Path::new("t.toml");
        assert!(!Config::parse("", path).unwrap().front.enabled);
        assert!(
            Config::parse("[front]\nenabled = true\n", path)
                .unwrap()
                .front
                .enabled
        );
        let err = Config::parse(
            "[front]\nenabled = true\n[docker]\nmode = \"swarm\"\n",
            path,
        )
        .unwrap_err();
        assert!(
            err.why.contains("[front] node_network is required"),
            "{err}"
        );
        let swarm = |extra: &str| {
            Config::parse(
                &format!(
                    "[front]\nenabled = true\nnode_network = \"10.231.0.0/24\"\n{extra}\n\
                     [docker]\nmode = \"swarm\"\nhost = \"tcp://10.231.0.11:2375\"\n\
                     [ports]\ngateway = \"30001-30099\"\nadmin = \"30101-30199\"\n"
                ),
                path,
            )
        };
        let config = swarm("").unwrap();
        assert_eq!(config.front.internal_port_offset, 10000);
        assert_eq!(
            config.front_manager_url().unwrap(),
            "http://10.231.0.11:2375"
        );
        let config = swarm("manager_url = \"http://10.0.0.1:2375\"").unwrap();
        assert_eq!(config.front_manager_url().unwrap(), "http://10.0.0.1:2375");
        for (extra, why) in [
            ("internal_port_offset = 50", "overlap"),
            ("internal_port_offset = 40000", "past 65535"),
            ("manager_url = \"tcp://x:1\"", "must be http://host:port"),
        ] {
            let err = swarm(extra).unwrap_err();
            assert!(err.why.contains(why), "{extra}: {err}");
        }
        let err = Config::parse(
            "[front]\nenabled = true\nnode_network = \"10.0.0.0/0\"\n[docker]\nmode = \"swarm\"\n",
            path,
        )
        .unwrap_err();
        assert!(err.why.contains("prefix length"), "{err}");
    }
}
