//! `gateway-sim`: simulates N gateways speaking protocol v1 against an
//! ingest server, each at a rate, for a duration or a count of frames; then
//! prints the throughput and the ack latency (p50, p99, max), and with
//! `--stalls-over MS` when acks were slower than that.
//!
//! With `--reconnect` the gateways behave as real ones under faults: each
//! reconnects by itself with backoff (0.1 s doubling to 5 s), resends what
//! was not acked, and `--acked-file FILE` gets one line per ack
//! (`<gateway> <seq> <reading time> <ack time>`), for a check afterwards
//! that every acked reading is in Cassandra.
//!
//! Gateways are named `<prefix><i>` and share one token, so commission them
//! with the same token first (the bench in `examples/bench.rs` does).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gateway_sim::client::Connector;
use gateway_sim::resilient::{self, Progress, ResilientConfig};
use gateway_sim::sim::{run, SimConfig, Stop};

#[derive(Parser)]
#[command(
    name = "gateway-sim",
    version,
    about = "Load generator for gateway protocol v1"
)]
struct Args {
    /// The ingest gateway port
    #[arg(long, default_value = "127.0.0.1:6001")]
    addr: String,
    /// How many gateways to simulate
    #[arg(long, default_value_t = 10)]
    gateways: usize,
    /// Frames per second per gateway (0: as fast as the window allows)
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Stop after this many seconds
    #[arg(long, conflicts_with = "count")]
    duration: Option<f64>,
    /// Stop after this many frames per gateway
    #[arg(long)]
    count: Option<u64>,
    /// Gateway ids are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "gw-")]
    prefix: String,
    /// The first gateway number
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// The token every simulated gateway presents
    #[arg(long, env = "GATEWAY_SIM_TOKEN")]
    token: String,
    /// Readings per frame (more than 1 sends <batch> frames)
    #[arg(long, default_value_t = 1)]
    readings_per_frame: usize,
    /// Values per reading
    #[arg(long, default_value_t = 2)]
    values_per_reading: usize,
    /// Unacked frames per gateway at most
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Also list when acks took longer than this many milliseconds (UTC
    /// times of 100 ms slices, to line up with the server's logs)
    #[arg(long, value_name = "MS")]
    stalls_over: Option<u64>,
    /// Connect with TLS (trusting the CA of --ca)
    #[arg(long, requires = "ca")]
    tls: bool,
    /// The CA certificate(s) to trust, PEM (`provision gateway ca <provider>`)
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry (default: the host of --addr)
    #[arg(long, value_name = "NAME")]
    tls_name: Option<String>,
    /// Reconnect with backoff when a connection fails and resend what was
    /// not acked (needs --rate above 0, at most 1000, and --duration)
    #[arg(long, conflicts_with_all = ["count", "stalls_over", "readings_per_frame"])]
    reconnect: bool,
    /// With --reconnect: append every acked reading to FILE
    #[arg(long, value_name = "FILE", requires = "reconnect")]
    acked_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let stop = match (args.duration, args.count) {
        (_, Some(n)) => Stop::Count(n),
        (Some(s), None) if s > 0.0 => Stop::After(Duration::from_secs_f64(s)),
        (Some(_), None) => {
            eprintln!("error: --duration must be positive");
            return ExitCode::from(2);
        }
        (None, None) => Stop::After(Duration::from_secs(10)),
    };
    if args.gateways == 0 || args.window == 0 || args.rate < 0.0 {
        eprintln!("error: --gateways and --window must be at least 1, --rate at least 0");
        return ExitCode::from(2);
    }
    let connector = match (&args.ca, args.tls) {
        (Some(ca), true) => {
            let host = args
                .addr
                .rsplit_once(':')
                .map_or(args.addr.as_str(), |(h, _)| h);
            let name = args.tls_name.as_deref().unwrap_or(host);
            match Connector::tls(ca, name) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => Connector::Plain,
    };
    let gateways: Vec<(String, String)> = (args.first..args.first + args.gateways)
        .map(|i| (format!("{}{i}", args.prefix), args.token.clone()))
        .collect();
    if args.reconnect {
        let Stop::After(duration) = stop else {
            unreachable!("clap refuses --count with --reconnect")
        };
        let mut cfg = ResilientConfig::new(&args.addr, gateways, args.rate, duration);
        cfg.connector = connector;
        cfg.window = args.window;
        cfg.acked_file = args.acked_file;
        if let Err(e) = cfg.check() {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        let progress = Progress::new(cfg.gateways.len());
        let report = resilient::run(cfg, progress).await;
        print!("{}", report.render());
        let clean = report.unacked() == 0
            && report.file_error.is_none()
            && report.gateways.iter().all(|g| g.violations.is_empty());
        return if clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let cfg = SimConfig {
        connector,
        addr: args.addr,
        gateways,
        rate: args.rate,
        stop,
        readings_per_frame: args.readings_per_frame,
        values_per_reading: args.values_per_reading,
        window: args.window,
        drain_timeout: Duration::from_secs(30),
    };
    let report = run(cfg).await;
    print!("{}", report.render());
    if let Some(ms) = args.stalls_over {
        let stalls = report.timeline.stalls(Duration::from_millis(ms));
        println!("acks over {ms} ms: {} stretches", stalls.len());
        for stall in stalls {
            println!("  {} ({} frames due)", stall.render(), stall.acked);
        }
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
