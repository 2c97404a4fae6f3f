//! `provision status [<provider>]`

use provisioner::ops::TenantStatus;

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// One tenant (default: all).
    provider: Option<String>,
}

pub async fn run(ctx: &Ctx, o: Options) -> anyhow::Result<()> {
    let id = o.provider.as_deref().map(provider).transpose()?;
    let statuses = ctx.driver.status(id.as_ref()).await?;
    match (ctx.json, id) {
        (true, Some(_)) => output::json(&statuses[0]),
        (true, None) => output::json(&statuses),
        (false, _) => {
            print_table(&statuses);
            println!();
            for s in &statuses {
                for line in placement_lines(s) {
                    println!("{line}");
                }
                println!(
                    "{}: keyspace {} on cassandra cluster {}",
                    s.provider, s.keyspace, s.cluster
                );
                println!("{}", gateways_line(s));
                println!("{}", notifier_line(s));
            }
        }
    }
    Ok(())
}

/// Swarm mode: `acme ingest: node provision-swarm-2, endpoint
/// 10.231.0.12:6001, task running`, one line per app.
pub fn placement_lines(s: &TenantStatus) -> Vec<String> {
    if s.mode != provisioner::config::DockerMode::Swarm {
        return Vec::new();
    }
    let mut lines: Vec<String> = s
        .containers
        .iter()
        .map(|c| {
            let d = &c.details;
            format!(
                "{} {}: node {}, endpoint {}, task {}",
                s.provider,
                c.role,
                d.node.as_deref().unwrap_or("-"),
                d.endpoint.as_deref().unwrap_or("-"),
                d.task_state.as_deref().unwrap_or("- (none scheduled)")
            )
        })
        .collect();
    lines.push(format!(
        "{}: gateway endpoint {}, admin {}",
        s.provider,
        s.gateway_endpoint.as_deref().unwrap_or("-"),
        s.admin_url.as_deref().unwrap_or("-")
    ));
    lines
}

/// `acme: gateway connections: plain 1, tls 2; max readings/s 300; max
/// gateways 2`: the ingest health check's counts and the tenant's limits.
pub fn gateways_line(s: &TenantStatus) -> String {
    let connections = match s.connections {
        Some(c) => format!("plain {}, tls {}", c.plain, c.tls),
        None => "- (no passing health check yet)".to_owned(),
    };
    let readings = s
        .max_readings_per_sec
        .map_or("unlimited".to_owned(), |n| n.to_string());
    let gateways = s.max_gateways.map_or_else(
        || {
            format!(
                "default ({})",
                provisioner::domain::spec::DEFAULT_MAX_GATEWAYS
            )
        },
        |n| n.to_string(),
    );
    format!(
        "{}: gateway connections: {connections}; max readings/s {readings}; max gateways {gateways}",
        s.provider
    )
}

/// `acme: notifier: mail off; rules 3, firing 1, mails pending 0, failed
/// today 0`: the notifier's newest health check.
pub fn notifier_line(s: &TenantStatus) -> String {
    let mail = |on: bool| match on {
        true => "mail on",
        false => "mail off (no [mail] relay in the config: alerts are tracked, nothing is sent)",
    };
    match &s.notifier {
        Some(n) => format!(
            "{}: notifier: {}; rules {}, firing {}, mails pending {}, failed today {}",
            s.provider,
            mail(n.mail == "on"),
            n.rules,
            n.firing,
            n.pending,
            n.failed
        ),
        None => format!(
            "{}: notifier: {}; - (no passing health check yet)",
            s.provider,
            mail(s.mail_configured)
        ),
    }
}

pub fn print_table(statuses: &[TenantStatus]) {
    println!(
        "{:<24} {:<10} {:>7} {:<8} {:>6}  {:<8} {:<9} {:>8} {:>6} {:>9} {:>8}",
        "TENANT",
        "STATE",
        "GATEWAY",
        "TLS",
        "ADMIN",
        "ROLE",
        "HEALTH",
        "UPTIME",
        "CPU%",
        "MEMORY",
        "RESTARTS"
    );
    for s in statuses {
        let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        if s.containers.is_empty() {
            println!(
                "{:<24} {:<10} {:>7} {:<8} {:>6}  {:<8}",
                s.provider,
                s.state,
                port(s.gateway_port),
                s.gateway_tls,
                port(s.admin_port),
                "-"
            );
        }
        for c in &s.containers {
            let d = &c.details;
            let restarts = match (d.restart_count, d.oom_killed) {
                (n, true) => format!("{n} (oom-killed)"),
                (n, false) => n.to_string(),
            };
            println!(
                "{:<24} {:<10} {:>7} {:<8} {:>6}  {:<8} {:<9} {:>8} {:>6} {:>9} {:>8}",
                s.provider,
                s.state,
                port(s.gateway_port),
                s.gateway_tls,
                port(s.admin_port),
                c.role,
                if c.details.state.is_running() {
                    c.details.health.to_string()
                } else {
                    c.details.state.to_string()
                },
                c.details
                    .uptime_secs
                    .map(output::duration)
                    .unwrap_or_else(|| "-".into()),
                c.usage
                    .map(|u| format!("{:.1}", u.cpu_percent))
                    .unwrap_or_else(|| "-".into()),
                c.usage
                    .map(|u| output::bytes(u.memory_bytes))
                    .unwrap_or_else(|| "-".into()),
                restarts,
            );
        }
    }
}
