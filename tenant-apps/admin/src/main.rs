//! `admin`: the admin web panel of one tenant (placeholder until the
//! tenant-apps issue lands).

fn main() {
    println!("admin: not built yet");
}
