//! `ingest`: the gateway ingest server of one tenant (placeholder until the
//! tenant-apps issue lands). `ingest probe HOST:PORT` resolves a name and
//! opens a TCP connection, so the network from inside a tenant container
//! can be checked.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

fn probe(target: &str) -> Result<String, String> {
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{target} resolved to no address"))?;
    TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {target} ({addr}): {e}"))?;
    Ok(format!("reached {target} at {addr}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, target] if cmd == "probe" => match probe(target) {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(msg) => {
                eprintln!("error: {msg}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: ingest probe HOST:PORT");
            ExitCode::from(2)
        }
    }
}
