//! `provisiond`: the REST control plane over the provisioner library. Not
//! built yet: no issue asks for it so far.

fn main() {
    eprintln!("provisiond: not built yet");
    std::process::exit(2);
}
