//! The gateway registry has two writers, the `provision gateway` CLI and the
//! admin panel, and one reader that matters most, ingest's token check. With
//! the real `provision` binary, the real panel over HTTP and the real ingest
//! over TCP, each writer undoes what the other did: a gateway commissioned
//! by one is revoked by the other and commissioned again by the first. After
//! every step the row in Cassandra is what the registry says it is (a
//! revoke deletes the hash and sets `revoked_at`; a commission stores the
//! new token's hash and clears `revoked_at`), ingest welcomes the newest
//! token only, and the other writer's list shows the same state.

mod provision_support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use provision_support::{Env, Gateway};
use provision_testkit::http::{admin_login, csrf_field, form_urlencode, request, HttpAnswer};
use provision_testkit::unique_id;
use scylla::client::session::Session;
use tenant_schema::model::hash_gateway_token;

/// How long ingest may take to close the connection of a gateway revoked
/// meanwhile: its revocation check runs every 5 s, plus a read.
const REVOCATION_CLOSES_WITHIN: Duration = Duration::from_secs(15);

/// One running tenant, driven through both writers.
struct Tenant {
    env: Env,
    id: String,
    keyspace: String,
    gateway_port: u16,
    /// The panel, `127.0.0.1:<admin port>`.
    admin: String,
    /// The first admin's session cookies, and the CSRF token of its forms.
    cookies: Vec<String>,
    csrf: String,
    db: Session,
}

impl Tenant {
    async fn start(env: Env) -> Tenant {
        let id = unique_id("reg");
        let started = env.run(&["--json", "start", &id]).await.ok();
        let admin = format!("127.0.0.1:{}", started.port("admin_port"));
        let user = started.field("admin_user").expect("the first admin's name");
        let password = started
            .field("admin_password")
            .expect("the first admin's password, on the first start");
        let cookies = admin_login(&admin, &user, &password).await;
        let page = request(&admin, "GET", "/gateways", &cookies, None)
            .await
            .expect("the panel answers");
        assert_eq!(page.status, 200, "GET /gateways: {}", page.body);
        Tenant {
            keyspace: started.field("keyspace").expect("the tenant's keyspace"),
            gateway_port: started.port("gateway_port"),
            csrf: csrf_field(&page.body),
            db: env.node.admin_session().await,
            id,
            admin,
            cookies,
            env,
        }
    }

    async fn cli_commission(&self, gateway: &str) -> String {
        let run = self
            .env
            .run(&["--json", "gateway", "add", &self.id, gateway])
            .await
            .ok();
        let token = run.field("token").expect("a token");
        assert_eq!(token.len(), 64, "{}", run.stdout);
        token
    }

    async fn cli_revoke(&self, gateway: &str) {
        self.env
            .run(&["gateway", "revoke", &self.id, gateway])
            .await
            .ok();
    }

    /// `revoked_at` of `gateway` in `provision gateway list`.
    async fn cli_revoked_at(&self, gateway: &str) -> Option<String> {
        let run = self
            .env
            .run(&["--json", "gateway", "list", &self.id])
            .await
            .ok();
        let list: serde_json::Value = serde_json::from_str(&run.stdout).expect("a JSON list");
        let entry = list
            .as_array()
            .and_then(|gws| gws.iter().find(|g| g["gateway"] == gateway))
            .unwrap_or_else(|| panic!("{gateway} is not listed: {}", run.stdout));
        entry["revoked_at"].as_str().map(str::to_owned)
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> HttpAnswer {
        let mut fields = fields.to_vec();
        fields.push(("csrf", &self.csrf));
        request(
            &self.admin,
            "POST",
            path,
            &self.cookies,
            Some(&form_urlencode(&fields)),
        )
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn panel_commission(&self, gateway: &str) -> String {
        let answer = self.post("/gateways", &[("gateway_id", gateway)]).await;
        assert_eq!(answer.status, 200, "commission {gateway}: {}", answer.body);
        let marker = r#"<code class="token">"#;
        let at = answer
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no token shown: {}", answer.body))
            + marker.len();
        let token = answer.body[at..].split('<').next().unwrap().to_owned();
        assert_eq!(token.len(), 64, "{token}");
        token
    }

    async fn panel_revoke(&self, gateway: &str) {
        let answer = self.post(&format!("/gateways/{gateway}/revoke"), &[]).await;
        assert_eq!(answer.status, 303, "revoke {gateway}: {}", answer.body);
    }

    /// The `<tr>` of `gateway` on the panel's gateway list.
    async fn panel_row(&self, gateway: &str) -> String {
        let page = request(&self.admin, "GET", "/gateways", &self.cookies, None)
            .await
            .expect("the panel answers");
        assert_eq!(page.status, 200, "GET /gateways: {}", page.body);
        let link = format!(r#"<a href="/gateways/{gateway}">"#);
        let at = page
            .body
            .find(&link)
            .unwrap_or_else(|| panic!("{gateway} is not listed: {}", page.body));
        let start = page.body[..at].rfind("<tr>").expect("a table row");
        let end = at + page.body[at..].find("</tr>").expect("the row ends");
        page.body[start..end].to_owned()
    }

    /// `(token_hash, revoked_at)` of `gateway`'s row.
    async fn stored(&self, gateway: &str) -> (Option<String>, Option<DateTime<Utc>>) {
        self.db
            .query_unpaged(
                format!(
                    "SELECT token_hash, revoked_at FROM {}.gateways WHERE gateway_id = ?",
                    self.keyspace
                ),
                (gateway,),
            )
            .await
            .expect("the gateways table answers")
            .into_rows_result()
            .expect("rows")
            .maybe_first_row()
            .expect("a (token_hash, revoked_at) row")
            .unwrap_or_else(|| panic!("{gateway} has no row"))
    }

    /// The row holds the hash of `token` and no revocation, and ingest
    /// welcomes `token` and refuses every one of `old`. Returns the welcomed
    /// connection.
    async fn assert_live(&self, gateway: &str, token: &str, old: &[&str]) -> Gateway {
        let (hash, revoked_at) = self.stored(gateway).await;
        assert_eq!(
            hash.as_deref(),
            Some(hash_gateway_token(token).as_str()),
            "{gateway}: the newest token's hash is stored"
        );
        assert_eq!(revoked_at, None, "{gateway}: revoked_at is cleared");
        for old in old {
            let refused = self.refused(gateway, old).await;
            assert!(
                refused.contains("wrong token"),
                "{gateway}: an old token: {refused}"
            );
        }
        Gateway::hello(self.gateway_port, gateway, token)
            .await
            .unwrap_or_else(|answer| panic!("{gateway}: the newest token: {answer}"))
    }

    /// The row has no hash and a revocation time, `connected` (logged in
    /// before the revoke) is closed, and ingest refuses `token`.
    async fn assert_revoked(&self, gateway: &str, token: &str, mut connected: Gateway) {
        let (hash, revoked_at) = self.stored(gateway).await;
        assert_eq!(hash, None, "{gateway}: revoking deletes the token hash");
        assert!(revoked_at.is_some(), "{gateway}: revoking sets revoked_at");
        let closed = tokio::time::timeout(REVOCATION_CLOSES_WITHIN, connected.read_element())
            .await
            .unwrap_or_else(|_| panic!("{gateway}: the open connection stays open"));
        assert!(closed.contains(r#"code="auth""#), "{gateway}: {closed}");
        let refused = self.refused(gateway, token).await;
        assert!(
            refused.contains("gateway token revoked"),
            "{gateway}: the revoked token: {refused}"
        );
    }

    /// Ingest's answer to a hello it must refuse.
    async fn refused(&self, gateway: &str, token: &str) -> String {
        match Gateway::hello(self.gateway_port, gateway, token).await {
            Ok(_) => panic!("ingest welcomed {gateway} with a token it must refuse"),
            Err(answer) => {
                assert!(answer.contains(r#"code="auth""#), "{answer}");
                answer
            }
        }
    }

    async fn destroy(self) {
        self.env
            .run(&["destroy", &self.id, "--yes", "--purge-data"])
            .await
            .ok();
        self.env.scope.cleanup().await;
    }
}

#[tokio::test]
async fn a_gateway_revoked_by_the_panel_is_recommissioned_by_the_cli_and_the_other_way_round() {
    let tenant = Tenant::start(Env::new("pvreg", (28401, 28409), (28501, 28509)).await).await;

    // (a) commissioned by the CLI, revoked by the panel, commissioned
    // again by the CLI.
    let first = tenant.cli_commission("gw-a").await;
    let connected = tenant.assert_live("gw-a", &first, &[]).await;
    assert!(tenant.panel_row("gw-a").await.contains("Revoke token"));
    tenant.panel_revoke("gw-a").await;
    tenant.assert_revoked("gw-a", &first, connected).await;
    assert!(
        tenant.cli_revoked_at("gw-a").await.is_some(),
        "the CLI lists the panel's revoke"
    );
    let second = tenant.cli_commission("gw-a").await;
    assert_ne!(second, first, "a new token");
    drop(tenant.assert_live("gw-a", &second, &[&first]).await);
    assert_eq!(tenant.cli_revoked_at("gw-a").await, None);
    let row = tenant.panel_row("gw-a").await;
    assert!(
        row.contains("active") && row.contains("Revoke token"),
        "{row}"
    );

    // (b) commissioned by the panel, revoked by the CLI, commissioned
    // again by the panel.
    let first = tenant.panel_commission("gw-b").await;
    let connected = tenant.assert_live("gw-b", &first, &[]).await;
    assert_eq!(tenant.cli_revoked_at("gw-b").await, None);
    tenant.cli_revoke("gw-b").await;
    tenant.assert_revoked("gw-b", &first, connected).await;
    let row = tenant.panel_row("gw-b").await;
    assert!(
        row.contains("revoked ")
            && row.contains("Issue a new token")
            && !row.contains("Revoke token"),
        "the panel lists the CLI's revoke: {row}"
    );
    let second = tenant.panel_commission("gw-b").await;
    assert_ne!(second, first, "a new token");
    drop(tenant.assert_live("gw-b", &second, &[&first]).await);
    assert!(tenant.panel_row("gw-b").await.contains("Revoke token"));
    assert_eq!(tenant.cli_revoked_at("gw-b").await, None);

    tenant.destroy().await;
}
