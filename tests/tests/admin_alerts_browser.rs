//! The admin panel's alert pages in a real browser: headless Chromium
//! (Debian's `chromium`) driven over WebDriver (Debian's `chromium-driver`,
//! through fantoccini), against the panel served on a loopback port, the
//! real Cassandra, and the real notifier evaluating the rule.
//!
//! The test starts `chromedriver` on a free loopback port itself and ends
//! it (and the browser it started) at the end, also when the test fails. The
//! notifier runs as a container from `PROVISION_NOTIFIER_IMAGE` (default
//! `provision/notifier:dev`, built by scripts/setup) on the test network,
//! with mail off and a check every second. A missing browser, driver or
//! image fails the test with what to run; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use admin::{app, AppState, LoginLimits, PanelOptions};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use provision_testkit::apps::commission_gateway;
use provision_testkit::containers::{container_logs, is_running, TestContainer};
use provision_testkit::{cassandra, docker, Scope, TestTenant};
use tenant_schema::model::hash_password;

/// How long the notifier may take from the rule's creation to the firing
/// state: it reads the rules again at least once a minute, checks every
/// second (`NOTIFIER_CHECK_INTERVAL_SECS=1`), and the rule waits 2 s.
const FIRING_DEADLINE: Duration = Duration::from_secs(150);

/// The notifier image: `PROVISION_NOTIFIER_IMAGE`, or the one scripts/setup
/// builds.
fn notifier_image() -> String {
    std::env::var("PROVISION_NOTIFIER_IMAGE")
        .unwrap_or_else(|_| "provision/notifier:dev".to_owned())
}

/// `name` on the `PATH` (or the path in `env`), or a failure saying what
/// to install.
fn program(env: &str, names: &[&str], package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env}={} is not a file: this test needs Debian's {package} package; run scripts/setup, which installs chromium and chromium-driver",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} is not on the PATH (nor set in {env}): this test needs Debian's {package} package; run scripts/setup, which installs chromium and chromium-driver",
                names[0]
            )
        })
}

/// A `chromedriver` this test started, in a process group of its own, and
/// the browser profile folder: dropping it kills the driver and every
/// browser it started, and removes the profile.
struct Driver {
    child: std::process::Child,
    url: String,
    profile: PathBuf,
    /// The driver's log, kept when the test fails.
    log: PathBuf,
}

impl Driver {
    async fn start(chromedriver: &Path, profile: PathBuf) -> Driver {
        use std::os::unix::process::CommandExt;
        let port = provision_testkit::containers::free_port();
        let log = std::env::temp_dir().join(format!("admin-alerts-chromedriver-{port}.log"));
        let child = std::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
            log: log.clone(),
        };
        // Ready when its port answers (it listens only on loopback).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on 127.0.0.1:{port} within 20 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: the driver and the browsers it started.
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A headless Chromium session over the driver, with a profile of its own.
async fn browser(driver: &Driver, chromium: &Path) -> Client {
    let profile = &driver.profile;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                // root in a container: Chromium's sandbox needs user namespaces
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "chromedriver at {} did not open a Chromium session: {e}",
                driver.url
            )
        })
}

/// The panel of `tenant`, served on a free loopback port.
async fn serve_panel(tenant: &TestTenant, node: &provision_testkit::CassandraNode) -> String {
    let options = PanelOptions {
        tenant_id: tenant.id.to_string(),
        keyspace: tenant.keyspace.clone(),
        session_secret: b"browser-test-secret-0123456789abcdef".to_vec(),
        login_limits: LoginLimits::default(),
        behind_tls: false,
    };
    let state = AppState::new(tenant.session(node).await, options)
        .await
        .expect("the panel prepares its statements");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port for the panel");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app(state))
            .await
            .expect("the panel serves");
    });
    format!("http://{addr}")
}

/// Types into the input of `name` inside `form` (cleared first).
async fn type_into(client: &Client, form: &str, name: &str, text: &str) {
    let input = client
        .find(Locator::Css(&format!("{form} [name=\"{name}\"]")))
        .await
        .unwrap_or_else(|e| panic!("no field {name} in {form}: {e}"));
    input.clear().await.unwrap();
    if !text.is_empty() {
        input.send_keys(text).await.unwrap();
    }
}

/// The element `css` selects once the page the browser moves to shows it
/// (a click on a submit button can return before the next page is there),
/// or a failure after 20 s with a screenshot.
async fn wait_for(client: &Client, css: &str, what: &str) -> fantoccini::elements::Element {
    match client
        .wait()
        .at_most(Duration::from_secs(20))
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => {
            let url = client
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let shot = screenshot(client, "failure").await;
            panic!(
                "{what}: no {css} on {url} within 20 s ({e}); screenshot {}",
                shot.display()
            )
        }
    }
}

/// Clicks the submit button of `form`.
async fn submit(client: &Client, form: &str) {
    client
        .find(Locator::Css(&format!("{form} button[type=submit]")))
        .await
        .unwrap_or_else(|e| panic!("no submit button in {form}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Saves what the browser shows, for a person to look at after a failure.
async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("admin-alerts-browser-{name}.png"));
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(&path, png);
    }
    path
}

#[tokio::test]
async fn in_a_real_browser_a_silent_rule_created_on_the_alerts_page_marks_its_gateway_firing_on_the_dashboard(
) {
    // What the test needs, checked first: each missing part fails here
    // with what to run.
    let chromium = program("CHROMIUM", &["chromium", "chromium-browser"], "chromium");
    let chromedriver = program("CHROMEDRIVER", &["chromedriver"], "chromium-driver");
    let docker = docker().await;
    let image = notifier_image();
    docker.inspect_image(&image).await.unwrap_or_else(|e| {
        panic!("the notifier image {image} is missing ({e}): run scripts/setup")
    });
    let node = cassandra().await;
    let scope = Scope::new("admin_browser");

    // A tenant with an admin and one commissioned gateway, never seen.
    let tenant = TestTenant::create(node, "admin_browser").await;
    let db = tenant.session(node).await;
    db.query_unpaged(
        format!(
            "INSERT INTO {}.admin_users (username, password_hash, created_at) VALUES (?, ?, toTimestamp(now()))",
            tenant.keyspace
        ),
        ("admin", hash_password("browser-pw-1").unwrap()),
    )
    .await
    .expect("add the admin user");
    commission_gateway(&db, &tenant.keyspace, "gw-browser").await;
    let panel = serve_panel(&tenant, node).await;

    // The real notifier of the tenant: mail off, a check every second.
    let mut env = tenant.app_env(node);
    env.push("NOTIFIER_CHECK_INTERVAL_SECS=1".to_owned());
    let notifier = TestContainer::scoped(&scope, "notifier", &image)
        .env(env)
        .on_network(&node.network)
        .hardened()
        .memory(64 << 20)
        .start(&docker)
        .await
        .expect("start the notifier container");

    let profile = std::env::temp_dir().join(format!("admin-alerts-profile-{}", tenant.id));
    let driver = Driver::start(&chromedriver, profile).await;
    let client = browser(&driver, &chromium).await;

    // Log in.
    client.goto(&format!("{panel}/login")).await.unwrap();
    type_into(&client, "form", "username", "admin").await;
    type_into(&client, "form", "password", "browser-pw-1").await;
    submit(&client, "form").await;
    let row = wait_for(
        &client,
        "table.gateways tr[data-gateway=\"gw-browser\"]",
        "the login leads to the dashboard, which lists the commissioned gateway",
    )
    .await;
    assert!(!row.text().await.unwrap().contains("alert firing"));

    // To the Alerts page through the navigation.
    client
        .find(Locator::LinkText("Alerts"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let form = "#new-rule-form";
    wait_for(&client, form, "the Alerts link leads to the Alerts page").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/alerts");

    // A bad duration is refused with the field named, and nothing is made.
    type_into(&client, form, "for", "soon").await;
    type_into(&client, form, "gateway", "gw-browser").await;
    type_into(&client, form, "recipients", "ops@example.com").await;
    submit(&client, form).await;
    let error = wait_for(&client, "#rule-error", "the refused form says why")
        .await
        .text()
        .await
        .unwrap();
    assert!(error.starts_with("For: duration \"soon\""), "{error}");
    assert!(client
        .find_all(Locator::Css("#rules tr[data-rule]"))
        .await
        .unwrap()
        .is_empty());

    // The rule: silent for 2 s, for the gateway (the typed values are kept).
    client
        .find(Locator::Css(&format!("{form} select[name=kind]")))
        .await
        .unwrap()
        .select_by_value("silent")
        .await
        .unwrap();
    type_into(&client, form, "for", "2s").await;
    submit(&client, form).await;
    let notice = wait_for(&client, "p.notice", "the rule is saved")
        .await
        .text()
        .await
        .unwrap();
    assert!(notice.starts_with("Rule saved."), "{notice}");
    let rules = client
        .find_all(Locator::Css("#rules tr[data-rule]"))
        .await
        .unwrap();
    assert_eq!(rules.len(), 1);
    let rule_text = rules[0].text().await.unwrap();
    assert!(
        rule_text.contains("silent")
            && rule_text.contains("2s")
            && rule_text.contains("gw-browser"),
        "{rule_text}"
    );
    let rule_id = rules[0].attr("data-rule").await.unwrap().unwrap();

    // The dashboard, reloaded until the notifier's check marks the gateway.
    let started = Instant::now();
    client.goto(&format!("{panel}/")).await.unwrap();
    let mark = loop {
        let found = client
            .find_all(Locator::Css(
                "tr[data-gateway=\"gw-browser\"] a.badge.firing",
            ))
            .await
            .unwrap();
        if let Some(mark) = found.into_iter().next() {
            break mark;
        }
        if Instant::now() - started > FIRING_DEADLINE || !is_running(&docker, &notifier).await {
            let shot = screenshot(&client, "dashboard").await;
            let logs = container_logs(&docker, &notifier).await.unwrap_or_default();
            panic!(
                "gw-browser was not marked firing within {FIRING_DEADLINE:?} (notifier running: {}; screenshot {}); notifier logs: {logs:#?}",
                is_running(&docker, &notifier).await,
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.refresh().await.unwrap();
    };
    eprintln!(
        "gw-browser marked firing {:.1} s after the rule was saved",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(mark.text().await.unwrap(), "alert firing");
    screenshot(&client, "dashboard-firing").await;

    // The mark leads to the Alerts page, where the pair is firing now and
    // its transition is in the history, unsent because mail is off.
    mark.click().await.unwrap();
    let firing = wait_for(
        &client,
        &format!("#firing tr[data-rule=\"{rule_id}\"][data-gateway=\"gw-browser\"]"),
        "the mark leads to the pair, firing now on the Alerts page",
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/alerts");
    assert!(
        firing.contains("silent for 2s") && firing.contains("never seen"),
        "{firing}"
    );
    let history = client
        .find(Locator::Css("#history table"))
        .await
        .expect("the firing transition is in the history")
        .text()
        .await
        .unwrap();
    assert!(
        history.contains("gw-browser")
            && history.contains("firing")
            && history.contains("not sent: mail is off"),
        "{history}"
    );
    screenshot(&client, "alerts-firing").await;
    client
        .goto(&format!("{panel}/alerts#history"))
        .await
        .unwrap();
    screenshot(&client, "alerts-history").await;

    client.close().await.unwrap();
    drop(driver);
    scope.cleanup().await;
    tenant.drop(node).await;
}
