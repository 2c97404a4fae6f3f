//! `gateway-sim`: simulates N gateways speaking protocol v1 against an
//! ingest server, each at a rate, for a duration or a count of frames; then
//! prints the throughput and the ack latency (p50, p99, max), and with
//! `--stalls-over MS` when acks were slower than that.
//!
//! `--interval DURATION` (`10s`, `1s`, `500ms`, `2m`) is the other way to
//! say the rate: one reading per interval per gateway (`--interval 10s` is
//! `--rate 0.1`).
//!
//! With `--reconnect` the gateways behave as real ones under faults: each
//! reconnects by itself with backoff (0.1 s doubling to 5 s), resends what
//! was not acked, and `--acked-file FILE` gets one line per ack
//! (`<gateway> <seq> <reading time> <ack time>`), for a check afterwards
//! that every acked reading is in Cassandra. The rate may be anything from
//! one reading a day to 1000 a second. Each gateway keeps a fixed schedule
//! whose first reading is at a random point of the first interval, so a
//! fleet does not send in the same millisecond; `--jitter FRACTION`
//! (default 0.1) lets every later reading come up to that fraction of the
//! interval early or late, without drift (the schedule stays fixed; the
//! jitter does not add up). `--login-at-once` makes every gateway open its
//! connection first and then all say hello at the same moment (a
//! reconnect storm); without it, each says hello as soon as it is
//! connected. At the end it prints, besides readings made, acked, unacked,
//! resent and reconnects: the logins (and failed attempts), how long after
//! the start every gateway had logged in, the ack latency (p50, p99, max,
//! from when each reading was due) and the longest a gateway spent
//! disconnected. 10,000 gateways fit one process: each is one task, with
//! a small buffer, asleep until its next reading or answer; each needs a
//! file descriptor, so `ulimit -n` must be above the gateways + 100 (this
//! program cannot raise it: it warns at the start, and a connect failing
//! with EMFILE says "too many open files: raise ulimit -n").
//!
//! `--source-addrs LIST` (with `--reconnect`) makes gateway `i` connect
//! from address `i mod n` of LIST (`10.0.0.1-10.0.0.64`, `10.0.0.0/26`, or
//! a comma-separated list of addresses, ranges and blocks), binding its
//! socket before it connects, so ingest sees a fleet of many hosts instead
//! of one (it caps the connections without a hello per address). The
//! addresses must be this host's own (e.g. `ip addr add A/32 dev IF` on the
//! interface that reaches ingest, or 127.0.0.0/8 for a server on loopback).
//!
//! Gateways are named `<prefix><i>` and share one token, so commission them
//! with the same token first (the bench in `examples/bench.rs` does).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gateway_sim::client::Connector;
use gateway_sim::resilient::{self, parse_interval, Progress, ResilientConfig};
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
    /// Frames per second per gateway (0: as fast as the window allows;
    /// with --reconnect, from 1/86400 to 1000)
    #[arg(long, default_value_t = 1.0, conflicts_with = "interval")]
    rate: f64,
    /// One frame per this interval per gateway, instead of --rate (10s,
    /// 1s, 500ms, 2m, 1h; 10s is --rate 0.1)
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    interval: Option<Duration>,
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
    /// not acked (needs a rate from 1/86400 to 1000, and runs for
    /// --duration)
    #[arg(long, conflicts_with_all = ["count", "stalls_over", "readings_per_frame"])]
    reconnect: bool,
    /// With --reconnect: append every acked reading to FILE
    #[arg(long, value_name = "FILE", requires = "reconnect")]
    acked_file: Option<std::path::PathBuf>,
    /// With --reconnect: each reading after a gateway's first (which is at
    /// a random point of the first interval) comes up to FRACTION of the
    /// interval early or late, around a fixed schedule (0 to 0.5)
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.1,
        requires = "reconnect"
    )]
    jitter: f64,
    /// With --reconnect: every gateway opens its connection, then all say
    /// hello at the same moment (a reconnect storm)
    #[arg(long, requires = "reconnect")]
    login_at_once: bool,
    /// With --reconnect: the local addresses to connect from, gateways
    /// spread over them round-robin (10.0.0.1-10.0.0.64, 10.0.0.0/26, or
    /// a comma-separated list of addresses, ranges and blocks; IPv4)
    #[arg(long, value_name = "LIST", requires = "reconnect")]
    source_addrs: Option<String>,
}

/// Warns if this process may not open a connection per gateway: it cannot
/// raise its own limit (no unsafe code, no libc here).
fn check_open_files(gateways: usize) {
    let Some((soft, hard)) = resilient::open_files_limit() else {
        return;
    };
    let need = gateways as u64 + 100;
    if soft >= need {
        return;
    }
    let fix = if hard >= need {
        format!("run `ulimit -n {need}` (the hard limit is {hard}) first")
    } else {
        format!(
            "the hard limit ({hard}) is below it too: raise it (limits.conf, \
             systemd's LimitNOFILE, docker run --ulimit nofile={need}) and run `ulimit -n {need}`"
        )
    };
    eprintln!(
        "warning: too many open files ahead: {gateways} gateways need {need} open files \
         and `ulimit -n` is {soft}; {fix}"
    );
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
    let rate = args
        .interval
        .map_or(args.rate, |interval| 1.0 / interval.as_secs_f64());
    if args.gateways == 0 || args.window == 0 || rate.is_nan() || rate < 0.0 {
        eprintln!("error: --gateways and --window must be at least 1, --rate at least 0");
        return ExitCode::from(2);
    }
    check_open_files(args.gateways);
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
        let mut cfg = ResilientConfig::new(&args.addr, gateways, rate, duration);
        cfg.connector = connector;
        cfg.window = args.window;
        cfg.acked_file = args.acked_file;
        cfg.jitter = args.jitter;
        cfg.random_phase = true;
        cfg.login_at_once = args.login_at_once;
        if let Some(list) = &args.source_addrs {
            match resilient::parse_source_addrs(list) {
                Ok(addrs) => cfg.source_addrs = addrs,
                Err(e) => {
                    eprintln!("error: --source-addrs: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        // the acks go to the file; a long run of a big fleet keeps none
        cfg.keep_acks = false;
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
        rate,
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
