//! Golden tests of the rendered configuration. That HAProxy accepts and
//! runs it is proven in tests/tests/front_haproxy.rs.

use super::*;

fn tenant(id: &str) -> ProviderId {
    ProviderId::parse(id).unwrap()
}

fn global() -> Global {
    Global {
        generation: "g-1".into(),
        stats_socket: "/run/provision/front.sock".into(),
        pidfile: "/run/provision/front.pid".into(),
        maxconn: 20000,
        agent: false,
    }
}

fn route(id: &str, app: App, bind: &str, target: &str) -> Route {
    Route {
        tenant: tenant(id),
        app,
        bind: bind.parse().unwrap(),
        target: Some(target.parse().unwrap()),
        candidates: Vec::new(),
    }
}

/// Why `render` refuses this front.
fn refusal(global: Global, routes: Vec<Route>) -> FrontError {
    render(&Front { global, routes }).unwrap_err()
}

const HEADER: &str = "\
# Rendered by the provisioner (provisioner/src/front): do not edit by hand,
# the next render replaces it.

global
    # the generation: `show info` reports it, so a reload is seen done
    description g-1
    maxconn 20000
    pidfile /run/provision/front.pid
    # -x <this socket> hands the listeners to the next worker on a reload.
    stats socket /run/provision/front.sock mode 600 level admin expose-fd listeners

defaults
    mode tcp
    timeout connect 5s
    # gateways hold their connection for hours, saying little
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
";

#[test]
fn one_tenant_s_gateway_port_is_tcp_with_a_proxy_header_and_its_panel_http_with_forwarded_for() {
    let front = Front {
        global: global(),
        routes: vec![
            route("acme", App::Admin, "0.0.0.0:8081", "172.18.0.5:8080"),
            route("acme", App::Ingest, "0.0.0.0:6001", "172.18.0.4:7000"),
        ],
    };
    let expected = format!(
        "{HEADER}{}",
        "
frontend ingest_acme
    mode tcp
    bind 0.0.0.0:6001
    default_backend ingest_acme

backend ingest_acme
    mode tcp
    server ingest_acme 172.18.0.4:7000 send-proxy-v2

frontend admin_acme
    mode http
    bind 0.0.0.0:8081
    timeout client 1m
    timeout http-request 10s
    # the panel sees one address in X-Forwarded-For: the client's own
    http-request del-header X-Forwarded-For
    option forwardfor
    default_backend admin_acme

backend admin_acme
    mode http
    timeout server 1m
    # one request per server connection: none is left idle on an app that
    # is being replaced, and a request the old app dropped while draining
    # is sent again
    option http-server-close
    retry-on conn-failure empty-response
    retries 3
    server admin_acme 172.18.0.5:8080
"
    );
    assert_eq!(render(&front).unwrap(), expected);
}

#[test]
fn routes_render_in_one_order_whatever_order_they_come_in() {
    let routes = vec![
        route("zeta", App::Ingest, "127.0.0.1:6003", "127.0.0.1:7003"),
        route("acme", App::Admin, "127.0.0.1:8081", "127.0.0.1:9081"),
        route("beta", App::Ingest, "[::1]:6002", "[::1]:7002"),
        route("acme", App::Ingest, "127.0.0.1:6001", "127.0.0.1:7001"),
    ];
    let mut reversed = routes.clone();
    reversed.reverse();
    let text = render(&Front {
        global: global(),
        routes,
    })
    .unwrap();
    assert_eq!(
        render(&Front {
            global: global(),
            routes: reversed,
        })
        .unwrap(),
        text
    );
    let frontends: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("frontend "))
        .collect();
    assert_eq!(
        frontends,
        ["ingest_acme", "admin_acme", "ingest_beta", "ingest_zeta"]
    );
    assert!(text.contains("    bind [::1]:6002\n"), "{text}");
    assert!(
        text.contains("    server ingest_beta [::1]:7002 send-proxy-v2\n"),
        "{text}"
    );
}

#[test]
fn no_routes_render_the_global_settings_and_no_frontend() {
    let text = render(&Front {
        global: global(),
        routes: Vec::new(),
    })
    .unwrap();
    assert_eq!(text, HEADER);
}

#[test]
fn a_second_route_for_one_app_or_one_address_is_refused() {
    let cases = [
        (
            vec![
                route("acme", App::Ingest, "127.0.0.1:6001", "127.0.0.1:7001"),
                route("acme", App::Ingest, "127.0.0.1:6002", "127.0.0.1:7002"),
            ],
            "the front has two routes for ingest of tenant acme",
        ),
        (
            vec![
                route("acme", App::Ingest, "127.0.0.1:6001", "127.0.0.1:7001"),
                route("beta", App::Admin, "127.0.0.1:6001", "127.0.0.1:7002"),
            ],
            "the front binds 127.0.0.1:6001 twice (ingest_acme and admin_beta)",
        ),
        (
            vec![route("acme", App::Admin, "127.0.0.1:0", "127.0.0.1:7001")],
            "route admin_acme: bind 127.0.0.1:0 has port 0",
        ),
    ];
    for (routes, why) in cases {
        assert_eq!(refusal(global(), routes).to_string(), why);
    }
}

#[test]
fn paths_that_could_end_a_line_or_a_word_are_refused() {
    for bad in [
        "/run/front.sock\n    server evil 10.0.0.1:1",
        "/run/front sock",
        "run/front.sock",
        "/run/front.sock#",
        "/run/\"front\".sock",
    ] {
        let stats_socket = bad.into();
        let err = refusal(
            Global {
                stats_socket,
                ..global()
            },
            Vec::new(),
        );
        assert!(
            matches!(
                err,
                FrontError::BadPath {
                    what: "stats socket",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
    let err = refusal(
        Global {
            maxconn: 0,
            ..global()
        },
        Vec::new(),
    );
    assert!(matches!(err, FrontError::ZeroMaxconn), "{err}");
}

#[test]
fn on_a_swarm_every_node_is_a_checked_server_and_the_master_runs_the_agent() {
    let nodes = [
        "10.231.0.13:40001",
        "10.231.0.11:40001",
        "10.231.0.12:40001",
    ];
    let swarm_route = |app, bind: &str, nodes: &[&str]| Route {
        tenant: tenant("acme"),
        app,
        bind: bind.parse().unwrap(),
        target: None,
        candidates: nodes.iter().map(|n| n.parse().unwrap()).collect(),
    };
    let front = Front {
        global: Global {
            agent: true,
            ..global()
        },
        routes: vec![
            swarm_route(App::Ingest, "0.0.0.0:30001", &nodes),
            swarm_route(
                App::Admin,
                "0.0.0.0:30101",
                &["10.231.0.12:40101", "10.231.0.11:40101"],
            ),
        ],
    };
    let text = render(&front).unwrap();
    assert!(text.contains(
        "
program agent
    command /usr/local/bin/front-agent
    no option start-on-reload
"
    ));
    assert!(
        text.contains(
            "
backend ingest_acme
    mode tcp
    # the app runs on one node: its server is up, the others down
    option redispatch
    retries 3
    default-server check check-send-proxy inter 1s fall 2 rise 1
    server node1 10.231.0.11:40001 send-proxy-v2
    server node2 10.231.0.12:40001 send-proxy-v2
    server node3 10.231.0.13:40001 send-proxy-v2
"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "
    option redispatch
    default-server check inter 1s fall 2 rise 1
    server node1 10.231.0.11:40101
    server node2 10.231.0.12:40101
"
        ),
        "{text}"
    );
    // without the agent, no program section
    let engine = render(&Front {
        global: global(),
        routes: front.routes.clone(),
    })
    .unwrap();
    assert!(!engine.contains("program agent"));
    // a candidate with port 0 is refused
    let mut bad = front.routes.clone();
    bad[0].candidates.push("10.231.0.14:0".parse().unwrap());
    assert!(matches!(
        refusal(global(), bad),
        FrontError::PortZero {
            what: "candidate",
            ..
        }
    ));
}
