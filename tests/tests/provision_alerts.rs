//! The notifier as the platform runs it, and the operator's `provision
//! alert` and `provision report` commands, through the real `provision`
//! binary against the real Docker engine and the harness's Cassandra node:
//! `start` makes three healthy containers, the notifier hardened like the
//! others, with no published port and `host.docker.internal` as an extra
//! host; `status` shows it and says mail is off; alert rules round-trip
//! with `--json` and bad input gets its exit code; `report schedule` writes
//! the tenant's settings; `report send` with mail off fails with exit 15;
//! a `[mail]` section recreates the notifier only, and `report send` then
//! waits until a real SMTP server (Python's `smtpd`, from Debian's
//! `python3`) on the engine's bridge took the mail; destroy removes the
//! notifier.

mod provision_support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use provision_support::{tenant_containers, Env, Run};
use provision_testkit::{containers, docker, query_rows, unique_id};
use serde_json::Value;
use tokio::io::AsyncReadExt;

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\nstderr: {}", run.stdout, run.stderr))
}

/// `status --json` of `id` once the notifier's health check has run.
async fn status_with_notifier(env: &Env, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = json(&env.run(&["--json", "status", id]).await.ok());
        if !s["notifier"].is_null() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the notifier's health: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn settings(env: &Env, id: &str) -> BTreeMap<String, String> {
    let session = env.node.admin_session().await;
    query_rows::<(String, Option<String>)>(
        &session,
        format!("SELECT name, value FROM tenant_{id}.settings"),
        (),
    )
    .await
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect()
}

/// Exits with `code`, and says `needle` on stderr (and, with `--json`, as
/// the error document's kind).
fn refused(run: &Run, code: i32, needle: &str) {
    assert_eq!(
        run.code, code,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(needle),
        "{needle:?} not in: {}",
        run.stderr
    );
}

#[tokio::test]
async fn the_notifier_runs_beside_the_apps_and_alert_rules_and_reports_are_managed_by_the_cli() {
    let env = Env::new("pvalerts", (29871, 29874), (29971, 29974)).await;
    let id = unique_id("alr");
    let engine = docker().await;

    // start: three healthy containers, the notifier last.
    let started = json(&env.run(&["--json", "start", &id]).await.ok());
    let plan: Vec<&str> = started["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        plan.ends_with(&[
            format!("wait until {} is healthy", env.container(&id, "ingest")).as_str(),
            format!("wait until {} is healthy", env.container(&id, "admin")).as_str(),
            format!("wait until {} is healthy", env.container(&id, "notifier")).as_str(),
        ]),
        "{plan:#?}"
    );
    let mut names = tenant_containers(&id).await;
    names.sort();
    assert_eq!(
        names,
        ["admin", "ingest", "notifier"].map(|r| env.container(&id, r))
    );

    // The notifier: hardened like the others, no port, the host by name.
    let notifier = env.container(&id, "notifier");
    let inspect = engine.inspect_container(&notifier, None).await.unwrap();
    let host = inspect.host_config.clone().unwrap();
    let config = inspect.config.clone().unwrap();
    assert_eq!(
        host.extra_hosts.as_deref(),
        Some(&["host.docker.internal:host-gateway".to_owned()][..])
    );
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(
        host.security_opt.as_deref(),
        Some(&["no-new-privileges:true".to_owned()][..])
    );
    assert_eq!(host.memory, Some(32 * 1024 * 1024));
    assert_eq!(host.pids_limit, Some(128));
    assert_eq!(
        host.restart_policy
            .and_then(|r| r.name)
            .map(|n| n.to_string()),
        Some("unless-stopped".to_owned())
    );
    assert!(
        host.port_bindings.unwrap_or_default().is_empty(),
        "the notifier publishes nothing"
    );
    assert_eq!(config.user.as_deref(), Some("10001:10001"));
    assert_eq!(
        config.healthcheck.and_then(|h| h.test),
        Some(vec![
            "CMD".to_owned(),
            "/notifier".to_owned(),
            "healthcheck".to_owned()
        ])
    );
    let labels = config.labels.unwrap_or_default();
    assert_eq!(labels["io.provision.role"], "notifier");
    assert_eq!(labels["io.provision.tenant"], id);
    let env_vars = config.env.unwrap_or_default();
    assert!(
        !env_vars.iter().any(|v| v.starts_with("NOTIFIER_SMTP")),
        "mail is off: {env_vars:?}"
    );
    assert!(env_vars.contains(&format!("TENANT_KEYSPACE=tenant_{id}")));

    // status: the notifier's state and health, and mail off.
    let s = status_with_notifier(&env, &id).await;
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["mail_configured"], false, "{s}");
    assert_eq!(s["notifier"]["mail"], "off", "{s}");
    assert_eq!(s["notifier"]["rules"], 0, "{s}");
    let roles: Vec<&str> = s["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["role"].as_str())
        .collect();
    assert_eq!(roles, ["ingest", "admin", "notifier"]);
    let text = env.run(&["status", &id]).await.ok();
    assert!(
        text.stdout.contains(&format!("{id}: notifier: mail off")),
        "{}",
        text.stdout
    );

    // alert add: each rule printed with its id; mail off is a warning.
    let silent = env
        .run(&[
            "--json",
            "alert",
            "add",
            &id,
            "silent",
            "--for",
            "10m",
            "--to",
            "a@example.com,b@example.com",
        ])
        .await
        .ok();
    assert!(
        silent.stderr.contains("warning: mail is off"),
        "{}",
        silent.stderr
    );
    let silent = json(&silent);
    let silent_id = silent["rule"]["id"].as_str().unwrap().to_owned();
    assert_eq!(silent_id.len(), 10, "{silent}");
    assert_eq!(silent["rule"]["kind"], "silent");
    assert_eq!(silent["rule"]["for"], "10m");
    assert_eq!(
        silent["rule"]["recipients"],
        serde_json::json!(["a@example.com", "b@example.com"])
    );
    let below = json(
        &env.run(&[
            "--json",
            "alert",
            "add",
            &id,
            "below",
            "--value",
            "power",
            "--threshold",
            "5",
            "--for",
            "15m",
            "--between",
            "08:00-18:00",
            "--gateway",
            "site-1",
            "--to",
            "ops@example.com",
        ])
        .await
        .ok(),
    );
    let below_id = below["rule"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        below["rule"]["description"],
        "power below 5 for 15m between 08:00-18:00"
    );
    assert_eq!(below["rule"]["gateway"], "site-1");
    let text = env
        .run(&[
            "alert",
            "add",
            &id,
            "above",
            "--value",
            "power",
            "--threshold",
            "-2.5",
            "--for",
            "1h30m",
            "--to",
            "ops@example.com",
        ])
        .await
        .ok();
    assert!(
        text.stdout.contains("power above -2.5 for 1h30m"),
        "{}",
        text.stdout
    );

    // alert list: the rules (and the states the notifier has written).
    let list = json(&env.run(&["--json", "alert", "list", &id]).await.ok());
    assert_eq!(list["mail"], false);
    let ids: Vec<&str> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "{list}");
    assert!(ids.contains(&silent_id.as_str()) && ids.contains(&below_id.as_str()));
    assert!(list["states"].is_array(), "{list}");

    // Bad input: one clear message and its exit code each.
    for (args, code, needle) in [
        (
            vec!["silent", "--for", "10minutes"],
            2,
            "duration \"10minutes\"",
        ),
        (
            vec![
                "below",
                "--value",
                "power",
                "--threshold",
                "5",
                "--between",
                "8-18",
            ],
            2,
            "window \"8-18\"",
        ),
        (vec!["below", "--threshold", "5"], 2, "needs --value"),
    ] {
        let mut full = vec!["--json", "alert", "add", &id];
        full.extend(args.iter().copied());
        if !args.contains(&"--for") {
            full.extend(["--for", "10m"]);
        }
        full.extend(["--to", "a@example.com"]);
        let run = env.run(&full).await;
        refused(&run, code, needle);
        assert_eq!(json(&run)["error"]["kind"], "usage", "{}", run.stdout);
    }
    let run = env
        .run(&[
            "alert",
            "add",
            &id,
            "silent",
            "--for",
            "10m",
            "--to",
            "a@example.com,nobody",
        ])
        .await;
    refused(&run, 2, "recipient \"nobody\"");
    let run = env.run(&["--json", "alert", "list", "nobody_here"]).await;
    refused(&run, 8, "unknown provider nobody_here");
    assert_eq!(json(&run)["error"]["kind"], "unknown_provider");
    let run = env.run(&["alert", "remove", &id, "zzzzzzzzzz"]).await;
    refused(&run, 8, "unknown alert rule zzzzzzzzzz");
    let run = env.run(&["alert", "remove", &id, "Not-A-Rule"]).await;
    refused(&run, 2, "rule id \"Not-A-Rule\"");
    let run = env
        .run(&["alert", "add", &id, "silent", "--to", "a@example.com"])
        .await;
    assert_eq!(run.code, 2, "clap: --for is required: {}", run.stderr);

    // alert remove: gone from the list.
    let removed = json(
        &env.run(&["--json", "alert", "remove", &id, &below_id])
            .await
            .ok(),
    );
    assert_eq!(removed["removed"], true);
    let list = json(&env.run(&["--json", "alert", "list", &id]).await.ok());
    assert_eq!(list["rules"].as_array().unwrap().len(), 2, "{list}");
    assert!(!list.to_string().contains(&below_id));

    // report schedule: the tenant's settings.
    let schedule = json(
        &env.run(&[
            "--json",
            "report",
            "schedule",
            &id,
            "--at",
            "07:00",
            "--to",
            "boss@example.com, ops@example.com",
        ])
        .await
        .ok(),
    );
    assert_eq!(schedule["at"], "07:00", "{schedule}");
    let stored = settings(&env, &id).await;
    assert_eq!(stored["report_at"], "07:00");
    assert_eq!(
        stored["report_recipients"],
        "boss@example.com,ops@example.com"
    );
    let run = env.run(&["report", "schedule", &id, "--at", "7am"]).await;
    refused(&run, 2, "report time \"7am\"");
    env.run(&["report", "schedule", &id, "--off"]).await.ok();
    let stored = settings(&env, &id).await;
    assert!(!stored.contains_key("report_at"), "{stored:?}");
    assert_eq!(
        stored["report_recipients"],
        "boss@example.com,ops@example.com"
    );

    // report send with mail off: a clear error, exit 15.
    let run = env.run(&["--json", "report", "send", &id]).await;
    refused(&run, 15, "mail is off");
    assert_eq!(json(&run)["error"]["kind"], "mail_off");

    // The notifier's health line counts the rules (its next look and check).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = status_with_notifier(&env, &id).await;
        if s["notifier"]["rules"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the notifier never counted 2 rules: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // destroy: the notifier goes with the others.
    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    assert!(tenant_containers(&id).await.is_empty());
}

/// Python's `smtpd` (Debian's python3 3.11) as a relay on the engine's
/// default bridge, printing every message it takes.
struct Relay {
    child: tokio::process::Child,
    port: u16,
}

impl Relay {
    async fn start(address: &str) -> Relay {
        let port = containers::free_port();
        let child = tokio::process::Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-u",
                "-m",
                "smtpd",
                "-n",
                "-c",
                "DebuggingServer",
                &format!("{address}:{port}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect((address, port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the relay did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Relay { child, port }
    }

    /// Everything it printed so far (it is stopped first).
    async fn output(mut self) -> String {
        let _ = self.child.start_kill();
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out).await;
        }
        out
    }
}

/// The address `host-gateway` names: the engine's default bridge gateway.
async fn host_gateway() -> String {
    let network = docker()
        .await
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .expect("the default bridge");
    let config = network.ipam.and_then(|i| i.config).unwrap_or_default();
    if let Some(gateway) = config.iter().find_map(|c| c.gateway.clone()) {
        return gateway;
    }
    // An engine that does not name it uses the subnet's first address.
    let subnet = config
        .iter()
        .find_map(|c| c.subnet.clone())
        .expect("the default bridge has a subnet");
    let base: std::net::Ipv4Addr = subnet
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("an IPv4 subnet");
    std::net::Ipv4Addr::from(u32::from(base) + 1).to_string()
}

#[tokio::test]
async fn a_mail_section_recreates_only_the_notifier_and_report_send_waits_for_the_relay() {
    let mut env = Env::new("pvalertsm", (29875, 29879), (29975, 29979)).await;
    let id = unique_id("alm");
    env.run(&["start", &id]).await.ok();
    let before: BTreeMap<String, String> = {
        let mut m = BTreeMap::new();
        for role in ["ingest", "admin", "notifier"] {
            let c = docker()
                .await
                .inspect_container(&env.container(&id, role), None)
                .await
                .unwrap();
            m.insert(role.to_owned(), c.id.unwrap());
        }
        m
    };

    let relay = Relay::start(&host_gateway().await).await;
    let mail = format!(
        "[mail]\nhost = \"host.docker.internal\"\nport = {}\ntls = \"none\"\nfrom = \"Alerts <alerts@example.com>\"\nuser = \"acme\"\npassword = \"relay-s3cret\"\n\n[docker]",
        relay.port
    );
    env.edit_config("[docker]", &mail);

    // reconcile recreates the notifier, and nothing else.
    let reconciled = json(&env.run(&["--json", "reconcile"]).await.ok());
    let steps: Vec<String> = reconciled["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .filter(|s| s.starts_with(&format!("{id}:")))
        .collect();
    let notifier = env.container(&id, "notifier");
    assert_eq!(
        steps,
        [
            format!("{id}: remove container {notifier} (configuration changed)"),
            format!(
                "{id}: create and start container {notifier} from {}, no published port (configuration changed)",
                containers::notifier_image()
            ),
        ]
    );
    for role in ["ingest", "admin"] {
        let c = docker()
            .await
            .inspect_container(&env.container(&id, role), None)
            .await
            .unwrap();
        assert_eq!(c.id.as_ref(), Some(&before[role]), "{role} was recreated");
    }
    let inspect = docker()
        .await
        .inspect_container(&notifier, None)
        .await
        .unwrap();
    let text = serde_json::to_string(&inspect).unwrap();
    assert!(
        !text.contains("relay-s3cret"),
        "the password is not in the container"
    );
    let vars = inspect.config.unwrap().env.unwrap_or_default();
    for expected in [
        "NOTIFIER_SMTP_HOST=host.docker.internal".to_owned(),
        format!("NOTIFIER_SMTP_PORT={}", relay.port),
        "NOTIFIER_SMTP_TLS=none".to_owned(),
        "NOTIFIER_SMTP_USER=acme".to_owned(),
        "NOTIFIER_SMTP_PASSWORD_FILE=/run/secrets/smtp_password".to_owned(),
        "NOTIFIER_MAIL_FROM=Alerts <alerts@example.com>".to_owned(),
    ] {
        assert!(vars.contains(&expected), "{expected} not in {vars:?}");
    }
    let secret = env.dir.join(format!("secrets/{id}-notifier/smtp_password"));
    assert_eq!(std::fs::read_to_string(secret).unwrap(), "relay-s3cret");

    // The notifier comes up healthy and says mail is on; status says so.
    provision_support::healthy_within(&notifier, Duration::from_secs(90))
        .await
        .expect("the recreated notifier is healthy");
    let s = status_with_notifier(&env, &id).await;
    assert_eq!(s["mail_configured"], true, "{s}");
    assert_eq!(s["notifier"]["mail"], "on", "{s}");

    // No recipients anywhere: report send says so.
    let run = env.run(&["report", "send", &id]).await;
    refused(&run, 2, "no report recipients");
    let run = env
        .run(&["report", "send", &id, "--date", "yesterday"])
        .await;
    refused(&run, 2, "date \"yesterday\"");

    // The relay offers no AUTH, so with a user the mail cannot go: the
    // CLI waits, then says it is still queued, and why.
    let queued = json(
        &env.run(&[
            "--json",
            "report",
            "send",
            &id,
            "--to",
            "boss@example.com",
            "--wait",
            "20",
        ])
        .await
        .ok(),
    );
    assert_eq!(queued["outcome"], "queued", "{queued}");
    assert!(
        queued["reason"]
            .as_str()
            .is_some_and(|r| r.contains("authentication")),
        "{queued}"
    );

    // Without user and password: the notifier is recreated once more, its
    // password file gone.
    env.edit_config("user = \"acme\"\npassword = \"relay-s3cret\"\n", "");
    let reconciled = json(&env.run(&["--json", "reconcile"]).await.ok());
    assert!(
        reconciled.to_string().contains(&format!(
            "{id}: remove container {notifier} (configuration changed)"
        )),
        "{reconciled}"
    );
    assert!(!env
        .dir
        .join(format!("secrets/{id}-notifier/smtp_password"))
        .exists());
    provision_support::healthy_within(&notifier, Duration::from_secs(90))
        .await
        .expect("the notifier is healthy again");

    // report send: the notifier turns the request into a mail, the relay
    // takes it, and the CLI says so.
    let day = (chrono::Utc::now().date_naive() - chrono::TimeDelta::days(1)).to_string();
    let sent = json(
        &env.run(&[
            "--json",
            "report",
            "send",
            &id,
            "--date",
            &day,
            "--to",
            "boss@example.com",
        ])
        .await
        .ok(),
    );
    assert_eq!(sent["outcome"], "sent", "{sent}");
    assert_eq!(sent["day"], day.as_str());
    let request = sent["request"].as_str().unwrap();
    assert_eq!(sent["key"], format!("report/{day}/{request}"));
    assert_eq!(sent["recipients"], serde_json::json!(["boss@example.com"]));

    // The same through provisiond.
    let daemon = env.daemon(&[], None).await;
    env.through(&daemon);
    let list = json(&env.run(&["--json", "alert", "list", &id]).await.ok());
    assert_eq!(list["mail"], true, "{list}");
    let added = json(
        &env.run(&[
            "--json",
            "alert",
            "add",
            &id,
            "silent",
            "--for",
            "5m",
            "--to",
            "a@example.com",
        ])
        .await
        .ok(),
    );
    assert!(added.get("warning").is_none(), "{added}");
    let rule = added["rule"]["id"].as_str().unwrap();
    let run = env.run(&["alert", "remove", &id, "zzzzzzzzzz"]).await;
    refused(&run, 8, "unknown alert rule zzzzzzzzzz");
    env.run(&["alert", "remove", &id, rule]).await.ok();
    let sent = json(
        &env.run(&["--json", "report", "send", &id, "--to", "ops@example.com"])
            .await
            .ok(),
    );
    assert_eq!(sent["outcome"], "sent", "{sent}");

    let printed = relay.output().await;
    assert!(
        printed
            .matches("---------- MESSAGE FOLLOWS ----------")
            .count()
            >= 2,
        "{printed}"
    );
    assert!(printed.contains("boss@example.com"), "{printed}");
    assert!(printed.contains("ops@example.com"), "{printed}");

    env.run(&["destroy", &id, "--yes", "--purge-data"])
        .await
        .ok();
    assert!(tenant_containers(&id).await.is_empty());
    drop(daemon);
}
