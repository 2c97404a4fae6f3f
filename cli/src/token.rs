//! `provision token create|list|revoke <name>`: the operator tokens the
//! daemon's TCP listener asks for. They live in the state store of this
//! machine, so these commands run where the daemon runs, without
//! `--server`.

use crate::{output, Ctx};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a token; prints it once (only its hash is kept).
    Create { name: String },
    /// List the tokens (never the tokens themselves).
    List,
    /// Revoke a token: requests with it get 401 from then on.
    Revoke { name: String },
}

pub async fn run(ctx: &Ctx, c: Command) -> anyhow::Result<()> {
    let p = ctx.local("token")?;
    match c {
        Command::Create { name } => {
            let made = p.token_create(&name).await?;
            if ctx.json {
                output::json(&made);
            } else {
                println!(
                    "token {} created; it is shown once, store it now:",
                    made.name
                );
                println!("{}", made.token);
            }
        }
        Command::List => {
            let tokens = p.token_list().await?;
            if ctx.json {
                output::json(&tokens);
            } else {
                println!("{:<24} {:<26} {:<16} REVOKED", "NAME", "CREATED", "BY");
                for t in tokens {
                    println!(
                        "{:<24} {:<26} {:<16} {}",
                        t.name,
                        t.created_at,
                        t.created_by.unwrap_or_else(|| "-".into()),
                        t.revoked_at.unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        Command::Revoke { name } => {
            p.token_revoke(&name).await?;
            if ctx.json {
                output::json(&serde_json::json!({ "name": name, "revoked": true }));
            } else {
                println!("token {name} revoked");
            }
        }
    }
    Ok(())
}
