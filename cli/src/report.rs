//! `provision report schedule|send <provider> ...`: the tenant's daily
//! report by mail, scheduled in its settings or sent once now.

use provisioner::ops::alerts::{ReportOutcome, ReportScheduleRequest, ReportSendRequest};

use crate::{output, provider, Ctx};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Set the daily report's local time and recipients, or turn it off.
    Schedule {
        provider: String,
        /// The local time (the tenant's timezone setting), HH:MM.
        #[arg(long, value_name = "HH:MM", required_unless_present = "off")]
        at: Option<String>,
        /// Recipients, comma-separated (default: those set before).
        #[arg(long, value_name = "ADDRESSES")]
        to: Option<String>,
        /// No daily report (the recipients are kept for `report send`).
        #[arg(long, conflicts_with_all = ["at", "to"])]
        off: bool,
    },
    /// Send one report now and wait until the relay took it.
    Send {
        provider: String,
        /// The local day to report (default: yesterday in the tenant's
        /// timezone), YYYY-MM-DD.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// Recipients, comma-separated (default: the tenant's report
        /// recipients).
        #[arg(long, value_name = "ADDRESSES")]
        to: Option<String>,
        /// How long to wait for the relay, in seconds (at most 300).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        wait: u64,
    },
}

pub async fn run(ctx: &Ctx, c: Command) -> anyhow::Result<()> {
    match c {
        Command::Schedule {
            provider: p,
            at,
            to,
            off,
        } => {
            let id = provider(&p)?;
            let request = ReportScheduleRequest { at, to, off };
            let schedule = ctx.driver.report_schedule(&id, &request).await?;
            if ctx.json {
                output::json(&schedule);
            } else {
                match &schedule.at {
                    Some(at) => println!(
                        "daily report of tenant {id} at {at} ({}) to {}",
                        schedule.timezone,
                        schedule.recipients.join(", ")
                    ),
                    None => println!("no daily report for tenant {id}"),
                }
                if !schedule.mail {
                    eprintln!("warning: mail is off (no [mail] relay in the config): no report is sent until there is one");
                }
            }
        }
        Command::Send {
            provider: p,
            date,
            to,
            wait,
        } => {
            let id = provider(&p)?;
            let request = ReportSendRequest {
                date,
                to,
                wait_secs: Some(wait),
            };
            let sent = ctx.driver.report_send(&id, &request).await?;
            if ctx.json {
                output::json(&sent);
            } else {
                let to = sent.recipients.join(", ");
                let day = &sent.day;
                match sent.outcome {
                    ReportOutcome::Sent => println!("report of {id} for {day} sent to {to}"),
                    ReportOutcome::Failed => println!(
                        "report of {id} for {day} failed: {}",
                        sent.reason.as_deref().unwrap_or("refused")
                    ),
                    ReportOutcome::Queued => println!(
                        "report of {id} for {day} is still queued ({}); it is retried until the relay takes it",
                        sent.reason.as_deref().unwrap_or("not yet taken by the relay")
                    ),
                    ReportOutcome::Requested => println!(
                        "report of {id} for {day} is requested, and the notifier has not taken it yet; `provision status {id}` shows whether it runs"
                    ),
                }
            }
            if sent.outcome == ReportOutcome::Failed {
                if !ctx.json {
                    eprintln!(
                        "error: the relay refused the report: {}",
                        sent.reason.as_deref().unwrap_or("no reason given")
                    );
                }
                return Err(output::Reported {
                    exit_code: provisioner::ErrorKind::Other.exit_code(),
                }
                .into());
            }
        }
    }
    Ok(())
}
