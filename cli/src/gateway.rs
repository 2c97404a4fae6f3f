//! `provision gateway add|list|revoke|ca <provider> ...`

use serde_json::json;
use tenant_schema::model::printable;

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Commission a gateway; prints its token once.
    Add {
        provider: String,
        gateway: String,
        /// A display name (default: the gateway id).
        #[arg(long)]
        name: Option<String>,
    },
    /// List a tenant's gateways.
    List { provider: String },
    /// Revoke a gateway's token.
    Revoke { provider: String, gateway: String },
    /// Print the certificate (PEM) the tenant's gateways must trust to
    /// reach it over TLS.
    Ca { provider: String },
}

pub async fn run(ctx: &Ctx, c: Command) -> anyhow::Result<()> {
    match c {
        Command::Add {
            provider: p,
            gateway,
            name,
        } => {
            let id = provider(&p)?;
            let token = ctx
                .driver
                .gateway_add(&id, &gateway, name.as_deref())
                .await?;
            if ctx.json {
                output::json(&json!({ "gateway": gateway, "token": token }));
            } else {
                println!("gateway {gateway} of tenant {id} commissioned");
                println!("token (shown once): {token}");
            }
        }
        Command::List { provider: p } => {
            let id = provider(&p)?;
            let gateways = ctx.driver.gateway_list(&id).await?;
            if ctx.json {
                output::json(&gateways);
            } else {
                println!("{:<24} {:<24} {:<26} REVOKED", "GATEWAY", "NAME", "CREATED");
                for g in gateways {
                    println!(
                        "{:<24} {:<24} {:<26} {}",
                        g.gateway,
                        // a name stored by another writer may hold anything
                        printable(&g.display_name.unwrap_or_default()),
                        g.created_at.unwrap_or_default(),
                        g.revoked_at.unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        Command::Ca { provider: p } => {
            let id = provider(&p)?;
            let pem = ctx.driver.gateway_ca(&id).await?;
            if ctx.json {
                output::json(&json!({ "provider": id, "ca": pem }));
            } else {
                print!("{pem}");
            }
        }
        Command::Revoke {
            provider: p,
            gateway,
        } => {
            let id = provider(&p)?;
            ctx.driver.gateway_revoke(&id, &gateway).await?;
            if ctx.json {
                output::json(&json!({ "gateway": gateway, "revoked": true }));
            } else {
                println!("gateway {gateway} of tenant {id} revoked");
            }
        }
    }
    Ok(())
}
