//! `provision node list|drain|activate` (Swarm mode): the cluster's nodes
//! and moving tasks off one; `provision capacity`: the Cassandra clusters'
//! room and (Swarm mode) the N+1 check.

use std::time::Duration;

use provisioner::domain::capacity::NodeInventory;
use provisioner::ops::clusters::ClusterCapacity;
use provisioner::ops::nodes::CapacityReport;

use crate::{output, Ctx};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show the nodes: role, availability, state, address, reserved and
    /// total memory and CPU, and the tenants on each.
    List,
    /// Move every tenant task off a node and wait until each is healthy
    /// elsewhere (exit code 18 if one is not within --timeout).
    Drain(DrainOptions),
    /// Let a drained node take tasks again.
    Activate(NodeName),
}

#[derive(Debug, clap::Args)]
pub struct NodeName {
    /// The node's hostname or id (`provision node list`).
    node: String,
}

#[derive(Debug, clap::Args)]
pub struct DrainOptions {
    #[command(flatten)]
    name: NodeName,
    /// How long to wait for the tasks to move and be healthy, in seconds.
    #[arg(long, default_value_t = 180, value_name = "SECS")]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct CapacityOptions {}

fn mib(bytes: i64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

fn cpus(nano: i64) -> String {
    format!("{:.2}", nano as f64 / 1e9)
}

fn print_clusters(clusters: &[ClusterCapacity]) {
    println!(
        "{:<16} {:<9} {:>8} {:>9} {:>6} {:>7}  CONTACT POINTS",
        "CLUSTER", "MODE", "TENANTS", "CAPACITY", "ROOM", "TABLES"
    );
    let or_dash = |n: Option<String>| n.unwrap_or_else(|| "-".to_owned());
    for c in clusters {
        println!(
            "{:<16} {:<9} {:>8} {:>9} {:>6} {:>7}  {}",
            c.name,
            c.mode,
            c.tenants,
            or_dash(c.capacity.map(|n| n.to_string())),
            or_dash(c.room.map(|n| n.to_string())),
            or_dash(c.tables.map(|n| n.to_string())),
            c.contact_points.join(","),
        );
    }
    for c in clusters {
        if let Some(why) = &c.error {
            println!("cluster {}: tables not counted: {why}", c.name);
        }
    }
}

fn print_nodes(nodes: &[NodeInventory]) {
    println!(
        "{:<20} {:<8} {:<8} {:<8} {:<15} {:>21} {:>12} {:>5}  TENANTS",
        "NODE", "ROLE", "AVAIL", "STATE", "ADDRESS", "MEMORY (RESERVED)", "CPU (RES.)", "TASKS"
    );
    for n in nodes {
        let tenants: Vec<String> = n.tenants.iter().map(|t| t.to_string()).collect();
        println!(
            "{:<20} {:<8} {:<8} {:<8} {:<15} {:>21} {:>12} {:>5}  {}",
            n.hostname,
            n.role,
            n.availability,
            n.state,
            n.address.as_deref().unwrap_or("-"),
            format!(
                "{} / {}",
                mib(n.reserved_memory_bytes),
                mib(n.usable_memory_bytes)
            ),
            format!("{} / {}", cpus(n.reserved_nano_cpus), cpus(n.nano_cpus)),
            n.tasks,
            if tenants.is_empty() {
                "-".to_owned()
            } else {
                tenants.join(", ")
            },
        );
    }
}

pub async fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List => {
            let nodes = ctx.driver.node_list().await?;
            match ctx.json {
                true => output::json(&nodes),
                false => print_nodes(&nodes),
            }
        }
        Command::Drain(o) => {
            let timeout = Duration::from_secs(o.timeout);
            let report = ctx.driver.node_drain(&o.name.node, timeout).await?;
            match ctx.json {
                true => output::json(&report),
                false => {
                    let moved: Vec<String> = report.moved.iter().map(|t| t.to_string()).collect();
                    println!(
                        "node {} is drained in {:.1} s; moved and healthy: {}",
                        report.node,
                        report.secs,
                        if moved.is_empty() {
                            "-".to_owned()
                        } else {
                            moved.join(", ")
                        }
                    );
                }
            }
        }
        Command::Activate(o) => {
            let report = ctx.driver.node_activate(&o.node).await?;
            match ctx.json {
                true => output::json(&report),
                false => println!("node {} is {}", report.node, report.availability),
            }
        }
    }
    Ok(())
}

pub async fn capacity(ctx: &Ctx, _o: CapacityOptions) -> anyhow::Result<()> {
    let report: CapacityReport = ctx.driver.capacity().await?;
    if ctx.json {
        output::json(&report);
        return Ok(());
    }
    print_clusters(&report.clusters);
    let Some(n_plus_one) = report.n_plus_one else {
        return Ok(());
    };
    println!();
    print_nodes(&report.nodes);
    println!();
    match n_plus_one {
        true => println!("N+1: yes (the loss of any one node fits on the others)"),
        false => {
            let nodes: Vec<&str> = report
                .losses_not_absorbed
                .iter()
                .map(|l| l.node.as_str())
                .collect();
            println!(
                "N+1: NO (the tasks of {} would not fit elsewhere)",
                nodes.join(", ")
            );
        }
    }
    println!(
        "a tenant reserves {}; {} more fit while the cluster stays N+1",
        mib(report.tenant_memory_bytes),
        report.more_tenants.unwrap_or(0)
    );
    Ok(())
}
