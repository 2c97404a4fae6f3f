//! The front on this host, as files and a socket: its directory (the
//! configuration its container reads, the routes it runs as JSON, its
//! admin socket), the routes every tenant should have now (a pure
//! function of the store's records and the observed containers), and the
//! admin socket's commands (`show info` for the generation a reload
//! brought, `set server` to change a target without a reload).
//! `ops::front` decides what to do with them.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{render, App, Front, FrontError, Global, Route};
use crate::config::Config;
use crate::domain::spec::{internal_port, ADMIN_PORT, INGEST_PORT};
use crate::domain::state::{ObservedContainer, TenantRecord};
use crate::domain::{Desired, ProviderId};

/// Where the front's directory is mounted in its container.
pub const CONTAINER_DIR: &str = "/run/provision-front";
const CONFIG_FILE: &str = "haproxy.cfg";
const ROUTES_FILE: &str = "routes.json";
const ADMIN_SOCKET: &str = "stats.sock";
const PID_FILE: &str = "haproxy.pid";

/// How long one admin socket command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The front's directory on this host (`<data dir>/front`), mounted in its
/// container at [`CONTAINER_DIR`].
#[derive(Debug, Clone)]
pub struct FrontDir {
    host: PathBuf,
}

impl FrontDir {
    pub fn new(data_dir: &Path) -> FrontDir {
        FrontDir {
            host: data_dir.join("front"),
        }
    }

    /// The directory on this host.
    pub fn host(&self) -> &Path {
        &self.host
    }

    /// The admin socket, as this host reaches it.
    pub fn admin_socket(&self) -> AdminSocket {
        AdminSocket {
            path: self.host.join(ADMIN_SOCKET),
        }
    }

    /// The routes the front was last given (none: never given any).
    pub fn read_routes(&self) -> Result<Option<Vec<Route>>, FrontError> {
        let path = self.host.join(ROUTES_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| FrontError::Corrupt {
                        path,
                        why: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FrontError::Io {
                what: "read",
                path,
                source,
            }),
        }
    }

    /// Writes `front`'s configuration and its routes, each file replaced
    /// whole (written aside, then renamed), the configuration first.
    pub fn write(&self, front: &Front) -> Result<(), FrontError> {
        let config = render(front)?;
        let routes = serde_json::to_vec_pretty(&front.routes).expect("routes serialize");
        std::fs::create_dir_all(&self.host).map_err(|source| FrontError::Io {
            what: "create",
            path: self.host.clone(),
            source,
        })?;
        self.replace(CONFIG_FILE, config.as_bytes())?;
        self.replace(ROUTES_FILE, &routes)
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), FrontError> {
        let path = self.host.join(name);
        let aside = self.host.join(format!(".{name}.new"));
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| FrontError::Io { what, path, source }
        };
        std::fs::write(&aside, bytes).map_err(io("write", &aside))?;
        std::fs::rename(&aside, &path).map_err(io("replace", &path))
    }
}

/// The front's global section for `routes`: its files as its container
/// sees them, and the generation of what only a reload changes.
pub fn global(config: &Config, routes: &[Route]) -> Global {
    let dir = Path::new(CONTAINER_DIR);
    Global {
        generation: generation(routes, config.front.maxconn),
        stats_socket: dir.join(ADMIN_SOCKET),
        pidfile: dir.join(PID_FILE),
        maxconn: config.front.maxconn,
        agent: config.swarm(),
    }
}

/// What a reload is needed for: which port each tenant app binds (the
/// targets change at run time).
pub fn binds(routes: &[Route]) -> BTreeSet<(ProviderId, App, SocketAddr)> {
    routes
        .iter()
        .map(|r| (r.tenant.clone(), r.app, r.bind))
        .collect()
}

/// A short hash of the binds, the candidates (on a Swarm) and `maxconn`:
/// `g-` and 12 hex digits.
fn generation(routes: &[Route], maxconn: u32) -> String {
    let mut hash = Sha256::new();
    for (tenant, app, bind) in binds(routes) {
        hash.update(format!("{tenant} {app} {bind}\n"));
    }
    for route in routes.iter().filter(|r| !r.candidates.is_empty()) {
        let mut candidates = route.candidates.clone();
        candidates.sort();
        hash.update(format!("{} {candidates:?}\n", route.name()));
    }
    hash.update(format!("maxconn {maxconn}\n"));
    format!("g-{}", &hex::encode(hash.finalize())[..12])
}

/// The port a tenant app listens on in its container.
fn app_port(app: App) -> u16 {
    match app {
        App::Ingest => INGEST_PORT,
        App::Admin => ADMIN_PORT,
    }
}

/// The routes every tenant should have now: for each tenant that is not
/// destroyed, each app with a leased port, bound on `[ports]
/// bind_address`, forwarded to the app's container (by its name) on its
/// tenant network while it runs, else to nothing.
pub fn routes(
    config: &Config,
    tenants: &[TenantRecord],
    containers: &[ObservedContainer],
) -> Result<Vec<Route>, FrontError> {
    leased(config, tenants, |record, app, _| {
        let name = config.container_name(&record.id, app.role());
        let target = containers
            .iter()
            .find(|c| c.name == name && c.running())
            .and_then(|c| c.address)
            .map(|ip| SocketAddr::new(ip, app_port(app)));
        (target, Vec::new())
    })
}

/// On a Swarm, the routes every tenant should have: as [`routes`], each
/// forwarded to the app's internal port (`[front] internal_port_offset`
/// past the leased one) on every node in `nodes`, whichever runs it.
pub fn swarm_routes(
    config: &Config,
    tenants: &[TenantRecord],
    nodes: &[IpAddr],
) -> Result<Vec<Route>, FrontError> {
    leased(config, tenants, |_, _, port| {
        let candidates = internal_port(config, port)
            .map(|internal| {
                let mut all: Vec<SocketAddr> = nodes
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, internal))
                    .collect();
                all.sort();
                all.dedup();
                all
            })
            .unwrap_or_default();
        (None, candidates)
    })
}

/// A route for each leased port of each tenant that is not destroyed,
/// sorted, its targets from `place`.
fn leased(
    config: &Config,
    tenants: &[TenantRecord],
    place: impl Fn(&TenantRecord, App, u16) -> (Option<SocketAddr>, Vec<SocketAddr>),
) -> Result<Vec<Route>, FrontError> {
    let bind_ip: IpAddr = config
        .ports
        .bind_address
        .parse()
        .map_err(|_| FrontError::BindAddress(config.ports.bind_address.clone()))?;
    let mut routes = Vec::new();
    for record in tenants.iter().filter(|r| r.desired != Desired::Destroyed) {
        for app in App::ALL {
            let Some(port) = record.port(app.role()) else {
                continue;
            };
            let (target, candidates) = place(record, app, port);
            routes.push(Route {
                tenant: record.id.clone(),
                app,
                bind: SocketAddr::new(bind_ip, port),
                target,
                candidates,
            });
        }
    }
    routes.sort_by(|a, b| (&a.tenant, a.app).cmp(&(&b.tenant, b.app)));
    Ok(routes)
}

/// The front's admin socket (HAProxy's stats socket at level admin).
#[derive(Debug, Clone)]
pub struct AdminSocket {
    path: PathBuf,
}

impl AdminSocket {
    /// Sends one command, reads the whole answer.
    pub async fn command(&self, command: &str) -> Result<String, FrontError> {
        let exchange = async {
            let mut stream = UnixStream::connect(&self.path).await?;
            stream.write_all(format!("{command}\n").as_bytes()).await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let failed = |why: String| FrontError::Admin {
            socket: self.path.clone(),
            command: command.to_owned(),
            why,
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!(
                "no answer within {} s",
                COMMAND_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The generation the serving process loaded (`description` in `show
    /// info`).
    pub async fn generation(&self) -> Result<Option<String>, FrontError> {
        let info = self.command("show info").await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("description:"))
            .map(|g| g.trim().to_owned()))
    }

    /// Points `route`'s server at its target (ready) or, with none, puts
    /// it in maintenance. Established connections stay where they are.
    pub async fn set_target(&self, route: &Route) -> Result<(), FrontError> {
        let server = format!("{0}/{0}", route.name());
        let Some(target) = route.target else {
            return self
                .expect_empty(&format!("set server {server} state maint"))
                .await;
        };
        let command = format!(
            "set server {server} addr {} port {}",
            target.ip(),
            target.port()
        );
        let answer = self.command(&command).await?;
        if !(answer.contains("changed") || answer.contains("no need to change")) {
            return Err(FrontError::Refused {
                command,
                answer: answer.trim().to_owned(),
            });
        }
        self.expect_empty(&format!("set server {server} state ready"))
            .await
    }

    async fn expect_empty(&self, command: &str) -> Result<(), FrontError> {
        let answer = self.command(command).await?;
        match answer.trim() {
            "" => Ok(()),
            other => Err(FrontError::Refused {
                command: command.to_owned(),
                answer: other.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::state::ObservedContainer;
    use crate::domain::{ContainerState, GatewayTls, Health, TenantLimits};

    fn record(id: &str, desired: Desired, ports: Option<(u16, u16)>) -> TenantRecord {
        TenantRecord {
            id: ProviderId::parse(id).unwrap(),
            desired,
            cassandra_password: String::new(),
            session_secret: String::new(),
            schema_version: 1,
            role_ready: true,
            admin_user_created: true,
            gateway_port: ports.map(|p| p.0),
            admin_port: ports.map(|p| p.1),
            created_at: String::new(),
            gateway_tls: GatewayTls::default(),
            limits: TenantLimits::default(),
            image_tag: None,
            cluster: "default".into(),
        }
    }

    fn running(name: &str, ip: &str) -> ObservedContainer {
        ObservedContainer {
            name: name.into(),
            tenant: None,
            state: ContainerState::Running,
            health: Health::Healthy,
            spec_hash: None,
            address: Some(ip.parse().unwrap()),
        }
    }

    #[test]
    fn routes_follow_the_leases_and_the_running_containers_and_skip_the_destroyed() {
        let config = Config::default();
        let tenants = [
            record("acme", Desired::Running, Some((6001, 8081))),
            record("beta", Desired::Stopped, Some((6002, 8082))),
            record("gone", Desired::Destroyed, Some((6003, 8083))),
            record("new", Desired::Running, None),
        ];
        let containers = [
            running("provision-acme-ingest", "172.20.0.3"),
            running("provision-acme-admin", "172.20.0.4"),
            // a leftover copy is never a target
            running("provision-acme-ingest-next", "172.20.0.9"),
        ];
        let routes = routes(&config, &tenants, &containers).unwrap();
        let text: Vec<String> = routes
            .iter()
            .map(|r| format!("{} {} {:?}", r.name(), r.bind, r.target))
            .collect();
        assert_eq!(
            text,
            [
                "ingest_acme 0.0.0.0:6001 Some(172.20.0.3:6000)",
                "admin_acme 0.0.0.0:8081 Some(172.20.0.4:8080)",
                "ingest_beta 0.0.0.0:6002 None",
                "admin_beta 0.0.0.0:8082 None",
            ]
        );
    }

    #[test]
    fn the_generation_changes_with_the_binds_and_not_with_the_targets() {
        let config = Config::default();
        let tenants = [record("acme", Desired::Running, Some((6001, 8081)))];
        let before = routes(&config, &tenants, &[]).unwrap();
        let moved = routes(
            &config,
            &tenants,
            &[running("provision-acme-ingest", "172.20.0.7")],
        )
        .unwrap();
        assert_ne!(before, moved);
        assert_eq!(global(&config, &before), global(&config, &moved));
        let more = [
            tenants[0].clone(),
            record("beta", Desired::Running, Some((6002, 8082))),
        ];
        let added = routes(&config, &more, &[]).unwrap();
        assert_ne!(
            global(&config, &before).generation,
            global(&config, &added).generation
        );
        assert!(global(&config, &added).generation.starts_with("g-"));
    }

    #[test]
    fn on_a_swarm_every_node_is_a_candidate_at_the_internal_port() {
        let mut config = Config::default();
        config.docker.mode = crate::config::DockerMode::Swarm;
        let tenants = [
            record("acme", Desired::Running, Some((6001, 8081))),
            record("gone", Desired::Destroyed, Some((6003, 8083))),
        ];
        let nodes: Vec<IpAddr> = ["10.0.0.12", "10.0.0.11"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let routes = swarm_routes(&config, &tenants, &nodes).unwrap();
        let text: Vec<String> = routes
            .iter()
            .map(|r| format!("{} {} {:?} {:?}", r.name(), r.bind, r.target, r.candidates))
            .collect();
        assert_eq!(
            text,
            [
                "ingest_acme 0.0.0.0:6001 None [10.0.0.11:16001, 10.0.0.12:16001]",
                "admin_acme 0.0.0.0:8081 None [10.0.0.11:18081, 10.0.0.12:18081]",
            ]
        );
        // a node more is a new configuration
        let more: Vec<IpAddr> = ["10.0.0.12", "10.0.0.11", "10.0.0.13"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let grown = swarm_routes(&config, &tenants, &more).unwrap();
        assert_ne!(
            global(&config, &routes).generation,
            global(&config, &grown).generation
        );
        assert!(global(&config, &routes).agent);
    }

    #[test]
    fn a_bind_address_that_is_no_ip_is_refused() {
        let mut config = Config::default();
        config.ports.bind_address = "localhost".into();
        let tenants = [record("acme", Desired::Running, Some((6001, 8081)))];
        assert!(matches!(
            routes(&config, &tenants, &[]),
            Err(FrontError::BindAddress(_))
        ));
    }

    #[test]
    fn written_routes_read_back_and_the_configuration_is_beside_them() {
        let dir = std::env::temp_dir().join(format!("front-runtime-{}", std::process::id()));
        let front_dir = FrontDir::new(&dir);
        assert_eq!(front_dir.read_routes().unwrap(), None);
        let config = Config::default();
        let tenants = [record("acme", Desired::Running, Some((6001, 8081)))];
        let routes = routes(&config, &tenants, &[]).unwrap();
        let front = Front {
            global: global(&config, &routes),
            routes: routes.clone(),
        };
        front_dir.write(&front).unwrap();
        assert_eq!(front_dir.read_routes().unwrap(), Some(routes));
        let text = std::fs::read_to_string(dir.join("front/haproxy.cfg")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.contains("server ingest_acme 127.0.0.1:9 send-proxy-v2 disabled"));
        assert!(text.contains("stats socket /run/provision-front/stats.sock"));
    }
}
