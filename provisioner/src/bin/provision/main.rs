//! The `provision` CLI (placeholder until the CLI issue lands).

fn main() {
    eprintln!("provision: not built yet; run scripts/setup and scripts/run-cassandra");
    std::process::exit(2);
}
