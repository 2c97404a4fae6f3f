//! `gateway-sim`: a load generator speaking gateway protocol v1
//! (placeholder until the tenant-apps issue lands).

fn main() {
    println!("gateway-sim: not built yet");
}
