//! A rootless engine cannot run tenants as they must run, and `provision`
//! says so in one line that names what it lacks, with exit 23
//! (`engine_unsupported`), before it changes anything: on cgroup v1 (this
//! machine) the engine drops the tenants' memory and pids limits; on cgroup
//! v2 its containers' addresses are not on this host, where the health
//! probe may go.
//!
//! Needs the rootless Podman service `scripts/setup-podman --rootless`
//! starts (as the user `provision-rootless`): `scripts/test-podman` runs
//! this test with `--ignored`. It fails, never skips, without it.

mod provision_support;

use provision_support::{Env, Run};
use provision_testkit::unique_id;

/// The rootless service's socket: `PROVISION_ROOTLESS_SOCKET`, or the one
/// `scripts/setup-podman --rootless` starts.
fn rootless_socket() -> String {
    if let Ok(socket) = std::env::var("PROVISION_ROOTLESS_SOCKET") {
        return socket;
    }
    let user = std::env::var("PROVISION_ROOTLESS_USER")
        .unwrap_or_else(|_| "provision-rootless".to_owned());
    let out = std::process::Command::new("id")
        .args(["-u", &user])
        .output()
        .expect("id runs");
    assert!(
        out.status.success(),
        "no user {user}: run scripts/setup-podman --rootless"
    );
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    format!("/run/user/{uid}/podman/podman.sock")
}

fn assert_refused(run: &Run) {
    assert_eq!(
        run.code, 23,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let line = run.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.starts_with("error: the engine at unix://"), "{line}");
    assert!(
        line.contains("cannot run tenants: it runs rootless"),
        "{line}"
    );
    assert!(
        line.contains("cgroup v1, which drops the tenants' memory and pids limits")
            || line.contains("network namespace of its own"),
        "{line} names no missing capability"
    );
}

#[tokio::test]
#[ignore = "needs the rootless Podman service of scripts/setup-podman --rootless; scripts/test-podman runs it"]
async fn a_rootless_engine_is_refused_with_what_it_lacks() {
    let socket = rootless_socket();
    assert!(
        std::path::Path::new(&socket).exists(),
        "no rootless Podman socket at {socket}: run scripts/setup-podman --rootless"
    );
    let env = Env::new("pvrootless", (27561, 27562), (27571, 27572)).await;
    env.edit_config(
        "[docker]\n",
        &format!("[docker]\nhost = \"unix://{socket}\"\n"),
    );
    let id = unique_id("rootless");
    let run = env.run(&["start", &id]).await;
    assert_refused(&run);
    let json = env.run(&["--json", "start", &id]).await;
    assert_eq!(json.code, 23);
    let answer: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    assert_eq!(answer["error"]["kind"], "engine_unsupported", "{answer}");
    assert_eq!(answer["error"]["exit_code"], 23, "{answer}");
    // nothing was made in the rootless engine, and no tenant recorded
    let listed = std::process::Command::new("curl")
        .args([
            "-fsS",
            "--unix-socket",
            &socket,
            "http://podman/v1.41/containers/json?all=true",
        ])
        .output()
        .expect("curl runs");
    assert!(listed.status.success());
    let containers: serde_json::Value =
        serde_json::from_slice(&listed.stdout).expect("a JSON list");
    assert_eq!(containers.as_array().map(Vec::len), Some(0), "{containers}");
    let status = env.run(&["status", &id]).await;
    assert_eq!(status.code, 8, "no tenant was recorded: {}", status.stderr);
}
