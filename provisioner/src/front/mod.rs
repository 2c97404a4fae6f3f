//! The front: the HAProxy on every host that owns the tenants' public
//! ports and forwards them to the tenant apps. This module renders its
//! configuration, as a pure function of a typed description ([`Front`]),
//! from the template `haproxy.cfg.hbs`; [`runtime`] runs it on this host:
//! its directory, the routes made from the store and the observed
//! containers, and the sync that brings the running HAProxy to them.
//!
//! - A gateway port ([`App::Ingest`]) is forwarded in TCP mode, each
//!   connection opened with a PROXY protocol v2 header (`send-proxy-v2`)
//!   that names the gateway, which ingest reads from trusted fronts
//!   (`INGEST_TRUSTED_PROXIES`).
//! - An admin port ([`App::Admin`]) is forwarded in HTTP mode, the client's
//!   address in `X-Forwarded-For` (one address: a client's own header is
//!   dropped first).
//! - The global section is ready for master-worker mode (`-W` on the
//!   command line) and seamless reloads: its stats socket exposes the
//!   listening sockets (`expose-fd listeners`), so a new process started
//!   with `-x <socket>` takes them over without refusing a connection.
//!   Its `description` is the configuration's generation, which `show
//!   info` reports: how a reload is known to be done.
//! - A route whose app does not run (stopped, being replaced) keeps its
//!   port bound, its one server disabled: a changed target, or none, is a
//!   runtime API change (`set server`), never a reload.
//! - On a Swarm a route has no one target but candidates: the app's
//!   internal port on every node, each a health-checked server, of which
//!   the one whose node runs the task is up. A task that moves changes no
//!   configuration. The configuration then also runs the agent
//!   (`images/front/front-agent`, a `program` of the master) that keeps
//!   each node's front on the configuration the provisioner publishes.
//!
//! Nothing a caller passes can add a line to the configuration: tenant ids
//! are [`ProviderId`]s, addresses are [`SocketAddr`]s, and the two paths
//! are checked against a narrow set of characters. Routes are sorted by
//! tenant and app, so the same routes render the same text whatever their
//! order.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{ProviderId, Role};

/// The template, embedded in the binary.
const TEMPLATE: &str = include_str!("haproxy.cfg.hbs");

/// What the front runs: its global settings and one route per tenant app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Front {
    pub global: Global,
    pub routes: Vec<Route>,
}

pub mod runtime;

/// The process-wide settings of the front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// The configuration's generation (HAProxy's `description`, which
    /// `show info` reports): letters, digits and '-'.
    pub generation: String,
    /// The admin socket (mode 600, level admin, exposing the listeners for
    /// a seamless reload with `-x`).
    pub stats_socket: PathBuf,
    pub pidfile: PathBuf,
    /// The process's connection limit.
    pub maxconn: u32,
    /// On a Swarm: the master runs the agent that follows the published
    /// configuration.
    pub agent: bool,
}

/// A tenant app the front forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum App {
    /// The gateway port: TCP, with a PROXY protocol v2 header.
    Ingest,
    /// The admin panel: HTTP, with `X-Forwarded-For`.
    Admin,
}

impl App {
    pub const ALL: [App; 2] = [App::Ingest, App::Admin];

    /// The tenant role this app is.
    pub fn role(self) -> Role {
        match self {
            App::Ingest => Role::Ingest,
            App::Admin => Role::Admin,
        }
    }
}

impl fmt::Display for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.role().as_str())
    }
}

/// One public port of a tenant app: the front listens on `bind` and
/// forwards to `target` (none: the app does not run; the port stays
/// bound and its connections are closed, or answered 503), or on a Swarm
/// to whichever of `candidates` is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub tenant: ProviderId,
    pub app: App,
    pub bind: SocketAddr,
    pub target: Option<SocketAddr>,
    /// On a Swarm: the app's internal port on every node, each a
    /// health-checked server (the one whose node runs the task is up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<SocketAddr>,
}

impl Route {
    /// The name of the route's frontend, backend and server:
    /// `<app>_<tenant>`, unique per (tenant, app) and stable.
    pub fn name(&self) -> String {
        format!("{}_{}", self.app, self.tenant)
    }
}

/// Why a front description cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("the front has two routes for {app} of tenant {tenant}")]
    DuplicateRoute { tenant: ProviderId, app: App },
    #[error("the front binds {addr} twice ({first} and {second})")]
    DuplicateBind {
        addr: SocketAddr,
        first: String,
        second: String,
    },
    #[error("route {route}: {what} {addr} has port 0")]
    PortZero {
        route: String,
        what: &'static str,
        addr: SocketAddr,
    },
    #[error("the front's {what} {path:?} must be an absolute path of letters, digits and '/', '.', '_', '-'")]
    BadPath { what: &'static str, path: PathBuf },
    #[error("the front's maxconn must be at least 1")]
    ZeroMaxconn,
    #[error("the front's generation {0:?} must be letters, digits and '-'")]
    BadGeneration(String),
    #[error("[ports] bind_address {0:?} must be an IP address when [front] enabled (the front binds it)")]
    BindAddress(String),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} does not hold the front's routes ({why}); remove it and run `provision reconcile`"
    )]
    Corrupt { path: PathBuf, why: String },
    #[error("the front's admin socket {socket} did not answer `{command}`: {why}; see `docker logs provision-front`")]
    Admin {
        socket: PathBuf,
        command: String,
        why: String,
    },
    #[error("the front refused `{command}`: {answer}")]
    Refused { command: String, answer: String },
    #[error("the front did not load its new configuration (generation {generation}) within {secs} s (it serves {serving}); a port may be taken by another process: see `docker logs provision-front`")]
    NotReloaded {
        generation: String,
        serving: String,
        secs: u64,
    },
    #[error("rendering the front's configuration: {0}")]
    Render(#[from] Box<handlebars::RenderError>),
}

/// The template's data: every value already checked and printed.
#[derive(Serialize)]
struct Context {
    global: GlobalContext,
    routes: Vec<RouteContext>,
}

#[derive(Serialize)]
struct GlobalContext {
    generation: String,
    maxconn: u32,
    pidfile: String,
    stats_socket: String,
    agent: bool,
}

#[derive(Serialize)]
struct RouteContext {
    name: String,
    ingest: bool,
    bind: String,
    servers: Vec<ServerContext>,
    /// Several servers, health-checked: one of them is up.
    checked: bool,
}

#[derive(Serialize)]
struct ServerContext {
    name: String,
    /// The server's address, or a placeholder for a disabled server.
    addr: String,
    disabled: bool,
}

/// Where a route without a target points its disabled server (never
/// connected to: the server is in maintenance until a target is set).
pub const NO_TARGET: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9,
));

/// Renders the front's HAProxy configuration.
pub fn render(front: &Front) -> Result<String, FrontError> {
    let context = context(front)?;
    let mut registry = handlebars::Handlebars::new();
    // A configuration file, not HTML; the values are checked instead.
    registry.register_escape_fn(handlebars::no_escape);
    registry.set_strict_mode(true);
    registry
        .render_template(TEMPLATE, &context)
        .map_err(|e| FrontError::Render(Box::new(e)))
}

fn context(front: &Front) -> Result<Context, FrontError> {
    let global = &front.global;
    if global.maxconn == 0 {
        return Err(FrontError::ZeroMaxconn);
    }
    let mut routes: Vec<&Route> = front.routes.iter().collect();
    routes.sort_by(|a, b| (&a.tenant, a.app).cmp(&(&b.tenant, b.app)));
    let mut binds: Vec<(SocketAddr, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for route in &routes {
        if !seen.insert((&route.tenant, route.app)) {
            return Err(FrontError::DuplicateRoute {
                tenant: route.tenant.clone(),
                app: route.app,
            });
        }
        let target = route.target.unwrap_or(NO_TARGET);
        let candidates = route.candidates.iter().map(|a| ("candidate", *a));
        for (what, addr) in [("bind", route.bind), ("target", target)]
            .into_iter()
            .chain(candidates)
        {
            if addr.port() == 0 {
                return Err(FrontError::PortZero {
                    route: route.name(),
                    what,
                    addr,
                });
            }
        }
        if let Some((_, first)) = binds.iter().find(|(addr, _)| *addr == route.bind) {
            return Err(FrontError::DuplicateBind {
                addr: route.bind,
                first: first.clone(),
                second: route.name(),
            });
        }
        binds.push((route.bind, route.name()));
    }
    let generation_ok = !global.generation.is_empty()
        && global
            .generation
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !generation_ok {
        return Err(FrontError::BadGeneration(global.generation.clone()));
    }
    Ok(Context {
        global: GlobalContext {
            generation: global.generation.clone(),
            maxconn: global.maxconn,
            pidfile: checked_path("pidfile", &global.pidfile)?,
            stats_socket: checked_path("stats socket", &global.stats_socket)?,
            agent: global.agent,
        },
        routes: routes.into_iter().map(route_context).collect(),
    })
}

/// A route's servers: its one target (disabled when none), or on a
/// Swarm one per candidate, `node1`, `node2`, ... in address order.
fn route_context(route: &Route) -> RouteContext {
    let servers = if route.candidates.is_empty() {
        vec![ServerContext {
            name: route.name(),
            addr: route.target.unwrap_or(NO_TARGET).to_string(),
            disabled: route.target.is_none(),
        }]
    } else {
        let mut candidates = route.candidates.clone();
        candidates.sort();
        candidates.dedup();
        candidates
            .iter()
            .enumerate()
            .map(|(i, addr)| ServerContext {
                name: format!("node{}", i + 1),
                addr: addr.to_string(),
                disabled: false,
            })
            .collect()
    };
    RouteContext {
        name: route.name(),
        ingest: route.app == App::Ingest,
        bind: route.bind.to_string(),
        checked: !route.candidates.is_empty(),
        servers,
    }
}

/// `path` as text, if it is absolute and made only of characters that
/// cannot end a word or a line in HAProxy's configuration.
fn checked_path(what: &'static str, path: &Path) -> Result<String, FrontError> {
    let bad = || FrontError::BadPath {
        what,
        path: path.to_owned(),
    };
    let text = path.to_str().ok_or_else(bad)?;
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-');
    if !path.is_absolute() || !text.chars().all(safe) {
        return Err(bad());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests;
