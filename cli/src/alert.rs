//! `provision alert add|list|remove <provider> ...`: a tenant's alert
//! rules, and the state of each (rule, gateway) pair.

use provisioner::ops::alerts::{AlertAdded, AlertKind, AlertList, AlertRequest};

use crate::{output, provider, Ctx};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    /// A gateway sent nothing for --for.
    Silent,
    /// --value below --threshold for --for.
    Below,
    /// --value above --threshold for --for.
    Above,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add a rule; prints it with its id.
    Add {
        provider: String,
        kind: KindArg,
        /// How long the condition must hold: 90s, 10m, 1h30m, 1d.
        #[arg(long = "for", value_name = "DURATION")]
        for_: String,
        /// The reading's value name, such as power (below, above).
        #[arg(long, value_name = "NAME")]
        value: Option<String>,
        /// The threshold (below, above).
        #[arg(long, value_name = "NUMBER", allow_negative_numbers = true)]
        threshold: Option<f64>,
        /// Only between these local times, HH:MM-HH:MM (below, above).
        #[arg(long, value_name = "HH:MM-HH:MM")]
        between: Option<String>,
        /// One gateway (default: every gateway of the tenant).
        #[arg(long, value_name = "GATEWAY")]
        gateway: Option<String>,
        /// Recipients, comma-separated.
        #[arg(long, value_name = "ADDRESSES")]
        to: String,
    },
    /// The rules, each (rule, gateway) state and its last transition.
    List { provider: String },
    /// Remove a rule (its states go with it).
    Remove { provider: String, rule: String },
}

pub async fn run(ctx: &Ctx, c: Command) -> anyhow::Result<()> {
    match c {
        Command::Add {
            provider: p,
            kind,
            for_,
            value,
            threshold,
            between,
            gateway,
            to,
        } => {
            let id = provider(&p)?;
            let request = AlertRequest {
                kind: match kind {
                    KindArg::Silent => AlertKind::Silent,
                    KindArg::Below => AlertKind::Below,
                    KindArg::Above => AlertKind::Above,
                },
                for_,
                value,
                threshold,
                between,
                gateway,
                to,
            };
            let added = ctx.driver.alert_add(&id, &request).await?;
            if let Some(warning) = &added.warning {
                eprintln!("warning: {warning}");
            }
            if ctx.json {
                output::json(&added);
            } else {
                print_added(&added);
            }
        }
        Command::List { provider: p } => {
            let id = provider(&p)?;
            let list = ctx.driver.alert_list(&id).await?;
            if ctx.json {
                output::json(&list);
            } else {
                print_list(&list);
            }
        }
        Command::Remove { provider: p, rule } => {
            let id = provider(&p)?;
            let removed = ctx.driver.alert_remove(&id, &rule).await?;
            if ctx.json {
                output::json(&removed);
            } else {
                println!("alert rule {} of tenant {id} removed", removed.rule);
            }
        }
    }
    Ok(())
}

fn print_added(added: &AlertAdded) {
    let r = &added.rule;
    println!(
        "alert rule {} of tenant {} added: {}",
        r.id, added.provider, r.description
    );
    println!("  gateway: {}", r.gateway.as_deref().unwrap_or("all"));
    println!("  to:      {}", r.recipients.join(", "));
}

fn print_list(list: &AlertList) {
    if !list.mail {
        println!("mail is off: states are tracked and shown, nothing is mailed");
    }
    println!(
        "{:<12} {:<10} {:<44} {:<16} TO",
        "RULE", "GATEWAY", "CONDITION", ""
    );
    for r in &list.rules {
        println!(
            "{:<12} {:<10} {:<44} {:<16} {}",
            r.id,
            r.gateway.as_deref().unwrap_or("all"),
            r.description,
            "",
            r.recipients.join(",")
        );
    }
    println!();
    println!("{:<12} {:<24} {:<8} SINCE", "RULE", "GATEWAY", "STATE");
    for s in &list.states {
        println!(
            "{:<12} {:<24} {:<8} {}",
            s.rule, s.gateway, s.state, s.since
        );
    }
}
