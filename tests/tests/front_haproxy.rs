//! The front's configuration (`provisioner::front`) against the real
//! HAProxy (Debian's `haproxy`, which `scripts/setup` installs): HAProxy's
//! own check accepts it, and a running HAProxy forwards gateways to an
//! in-process ingest on the real test Cassandra with a PROXY protocol v2
//! header that ingest trusts, so ingest sees, and caps, each gateway's own
//! address. Everything stays on loopback: HAProxy listens on 127.0.0.1 and
//! the gateways connect from other loopback addresses (127.0.0.9, .10).
//!
//! Without haproxy these tests fail, saying to run scripts/setup.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use gateway_sim::answer::Answer;
use gateway_sim::client::Gateway;
use gateway_sim::frames::{reading, SimValue};
use ingest::server::Limits;
use ingest::settings::Settings;
use provision_testkit::apps::{count, eventually, loopback, Ingest};
use provision_testkit::containers::free_port;
use provision_testkit::unique_id;
use provisioner::front::{render, App, Front, Global, Route};
use provisioner::ProviderId;

/// The haproxy binary: on the PATH, or where Debian's package puts it
/// (`/usr/sbin` is not on every user's PATH).
fn haproxy_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("haproxy"));
    on_path
        .chain([PathBuf::from("/usr/sbin/haproxy")])
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("haproxy is not installed: run scripts/setup (it installs Debian's haproxy package)")
        })
}

/// A folder of the front's files (configuration, stats socket, pidfile,
/// log), removed on drop.
struct FrontDir(PathBuf);

impl FrontDir {
    fn new() -> FrontDir {
        let dir = std::env::temp_dir().join(unique_id("front"));
        std::fs::create_dir_all(&dir).expect("create the front's folder");
        FrontDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Renders `routes` into `haproxy.cfg` here; returns its path.
    fn write_config(&self, routes: Vec<Route>) -> PathBuf {
        self.write_config_with(routes, false)
    }

    /// As [`FrontDir::write_config`], with the agent's program (a Swarm's
    /// front) when `agent`.
    fn write_config_with(&self, routes: Vec<Route>, agent: bool) -> PathBuf {
        let front = Front {
            global: Global {
                generation: "test-1".into(),
                stats_socket: self.file("front.sock"),
                pidfile: self.file("front.pid"),
                maxconn: 1000,
                agent,
            },
            routes,
        };
        let text = render(&front).expect("the front's configuration renders");
        let path = self.file("haproxy.cfg");
        std::fs::write(&path, text).expect("write haproxy.cfg");
        path
    }
}

impl Drop for FrontDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `haproxy -W -c -f config` (master-worker, as the front runs): whether
/// it passed, and what it printed.
fn check(config: &Path) -> (bool, String) {
    let out = Command::new(haproxy_binary())
        .args(["-W", "-c"])
        .arg("-f")
        .arg(config)
        .output()
        .expect("run haproxy -c");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running HAProxy in master-worker mode (`-W -db`), stopped on drop.
struct Haproxy {
    child: Child,
    log: PathBuf,
    // after `child`: the folder goes once the process is stopped
    _dir: FrontDir,
}

impl Haproxy {
    /// Starts HAProxy on `routes` and waits until `probe` (one of their
    /// bind addresses) accepts connections. HAProxy binds every listener
    /// before it serves any, so one listener accepting means all do; the
    /// probe is an admin port, so that it sends no PROXY header to ingest
    /// (an HTTP front connects to its server only for a request).
    fn start(routes: Vec<Route>, probe: SocketAddr) -> Haproxy {
        let dir = FrontDir::new();
        let config = dir.write_config(routes);
        let (passed, text) = check(&config);
        assert!(
            passed,
            "haproxy -c refused the rendered configuration:\n{text}"
        );
        let log = dir.file("haproxy.log");
        let out = File::create(&log).expect("create haproxy.log");
        let err = out.try_clone().expect("clone the log file");
        let child = Command::new(haproxy_binary())
            .args(["-W", "-db", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start haproxy");
        let mut front = Haproxy {
            child,
            log,
            _dir: dir,
        };
        front.wait_until_accepting(probe, Duration::from_secs(10));
        front
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until_accepting(&mut self, addr: SocketAddr, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("haproxy exited ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy does not accept on {addr} within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Haproxy {
    /// SIGTERM to the master, which stops its worker and exits; SIGKILL if
    /// it has not within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1.
fn loopback_port() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), free_port())
}

/// The routes of one tenant: its gateway port to ingest at `ingest`, its
/// admin port to a panel that is not running (no test sends it a request).
fn routes(
    tenant: &ProviderId,
    gateways: SocketAddr,
    admin: SocketAddr,
    ingest: SocketAddr,
) -> Vec<Route> {
    vec![
        Route {
            tenant: tenant.clone(),
            app: App::Ingest,
            bind: gateways,
            target: Some(ingest),
            candidates: Vec::new(),
        },
        Route {
            tenant: tenant.clone(),
            app: App::Admin,
            bind: admin,
            target: Some(loopback_port()),
            candidates: Vec::new(),
        },
    ]
}

/// An in-process ingest that trusts 127.0.0.1 (HAProxy's address towards
/// it), and HAProxy in front of it; returns them with the front's gateway
/// address.
async fn ingest_behind_haproxy(limits: Limits) -> (Ingest, Haproxy, String) {
    let ingest = Ingest::start_behind(
        limits,
        [IpAddr::from(Ipv4Addr::LOCALHOST)].into_iter().collect(),
    )
    .await;
    let (gateways, admin) = (loopback_port(), loopback_port());
    let target = ingest.addr.parse().expect("ingest listens on an address");
    let front = Haproxy::start(routes(&ingest.tenant.id, gateways, admin, target), admin);
    (ingest, front, gateways.to_string())
}

fn limits() -> Limits {
    Limits {
        hello_timeout: Duration::from_secs(60),
        ..Limits::from(&Settings::default())
    }
}

#[test]
fn haproxy_s_own_check_accepts_the_rendered_configuration() {
    let dir = FrontDir::new();
    let mut all = Vec::new();
    for id in ["acme", "solar_co2"] {
        let tenant = ProviderId::parse(id).unwrap();
        all.extend(routes(
            &tenant,
            loopback_port(),
            loopback_port(),
            loopback_port(),
        ));
    }
    // A Swarm's: every node a checked server, and the agent's program.
    let swarm: Vec<Route> = all
        .iter()
        .map(|r| Route {
            target: None,
            candidates: vec![
                SocketAddr::from(([10, 231, 0, 11], 40001)),
                SocketAddr::from(([10, 231, 0, 12], 40001)),
            ],
            ..r.clone()
        })
        .collect();
    for (what, routes, agent) in [
        ("two tenants", all, false),
        ("no route", Vec::new(), false),
        ("a swarm's", swarm, true),
    ] {
        let config = dir.write_config_with(routes, agent);
        let (passed, text) = check(&config);
        assert!(passed, "{what}: haproxy -c refused it:\n{text}");
        assert!(
            !text.contains("WARNING"),
            "{what}: haproxy -c warns:\n{text}"
        );
    }
}

/// A gateway connecting from 127.0.0.9 through HAProxy is welcomed, its
/// reading acked and in Cassandra, and ingest took its address from the
/// header HAProxy sent (one header: the readiness probe sent none).
#[tokio::test]
async fn a_gateway_through_haproxy_is_welcomed_and_acked_and_ingest_read_its_proxy_header() {
    let (ingest, front, gateways) = ingest_behind_haproxy(limits()).await;
    let token = ingest.commission("gw-1").await;
    let mut gw = Gateway::connect_from(&gateways, loopback(9)).await.unwrap();
    assert_eq!(gw.hello("gw-1", &token).await.unwrap(), Answer::Welcome);
    let ts = Utc::now() - TimeDelta::minutes(1);
    let frame = reading(1, ts, "through-front", &[SimValue::new("power", "W", 7.0)]);
    gw.send(frame.as_bytes()).await.unwrap();
    assert_eq!(gw.answer().await.unwrap(), Some(Answer::Ack { seq: 1 }));
    assert_eq!(ingest.reading_count("gw-1", ts.date_naive()).await, 1);
    assert_eq!(count(&ingest.metrics.proxy_headers), 1);
    drop(gw);
    drop(front);
    ingest.stop().await;
}

/// Behind HAProxy, ingest's per-address cap counts the gateway's own
/// address, not the front's: with one place per address, a connection
/// from 127.0.0.9 that has begun its hello holds 127.0.0.9's place, so the
/// next from 127.0.0.9 is busy, while 127.0.0.10 is welcomed.
#[tokio::test]
async fn behind_haproxy_ingest_caps_each_gateway_s_own_address_not_the_front_s() {
    let (ingest, front, gateways) = ingest_behind_haproxy(Limits {
        max_unauthenticated_per_address: 1,
        ..limits()
    })
    .await;
    let token = ingest.commission("gw-1").await;
    let mut held = Gateway::connect_from(&gateways, loopback(9)).await.unwrap();
    held.send(b"<hello gateway=").await.unwrap();
    let metrics = ingest.metrics.clone();
    eventually(Duration::from_secs(10), "127.0.0.9's hello begun", || {
        count(&metrics.connections_unauthenticated) == 1
    })
    .await;

    let mut second = Gateway::connect_from(&gateways, loopback(9)).await.unwrap();
    match second.answer().await.unwrap() {
        Some(Answer::Error { code, .. }) if code == "busy" => {}
        other => panic!("expected <error code=\"busy\">, got {other:?}"),
    }
    let mut other = Gateway::connect_from(&gateways, loopback(10))
        .await
        .unwrap();
    assert_eq!(other.hello("gw-1", &token).await.unwrap(), Answer::Welcome);
    drop((held, second, other, front));
    ingest.stop().await;
}
