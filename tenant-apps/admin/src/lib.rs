//! `admin`: the admin web panel of one tenant.
//!
//! Server-rendered HTML (axum + handlebars) that works without JavaScript:
//! login, a dashboard of the tenant's gateways (marking those with a firing
//! alert), a page per gateway with SVG charts of its readings, daily
//! energy/peak reports with CSV export, the alert rules with what fires now
//! and the history of their mails, the provider's settings (the daily
//! report's time and recipients among them), and gateway commissioning and
//! revocation.
//!
//! [`app`] builds the whole panel as a [`Router`] over an [`AppState`], so
//! tests drive it with `tower::ServiceExt::oneshot` and need no socket; the
//! binary (`main.rs`) only reads the environment, connects to Cassandra and
//! serves it.
//!
//! Modules: [`session`] (signed session cookies, revoked at logout),
//! [`csrf`] (form tokens), [`ratelimit`] (failed logins, kept in the tenant
//! keyspace) and [`password`] (argon2 verifications in bounded memory) are
//! the auth layer, and [`client`] tells who a request comes from (the peer,
//! or the client a trusted proxy names in `X-Forwarded-For`); [`store`] is
//! the code that talks to Cassandra, with the
//! `notifier` table's rows read and written through the notifier crate's
//! `notifier::store::AlertStore` ([`AppState::alerts`]), so the panel, the
//! CLI and the notifier share one definition of them; [`reports`] and [`charts`] are pure
//! computations over samples; [`settings`] types the provider's
//! customizations; [`templates`] holds the embedded pages; [`pages`] holds
//! the handlers; [`error`] turns every failure into a response.

use std::sync::Arc;

use axum::Router;
use scylla::client::session::Session as CassandraSession;
use tenant_common::TrustedProxies;

pub mod charts;
pub mod client;
pub mod config;
pub mod csrf;
pub mod error;
pub mod pages;
pub mod password;
pub mod ratelimit;
pub mod reports;
pub mod session;
pub mod settings;
pub mod store;
pub mod templates;

pub use config::AdminConfig;
pub use error::AppError;
pub use ratelimit::LoginLimits;
pub use store::{Store, StoreError};

/// Why the panel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot compile the page templates: {0}")]
    Templates(#[from] Box<handlebars::TemplateError>),
}

/// What the panel of one tenant needs besides its Cassandra session.
#[derive(Clone)]
pub struct PanelOptions {
    pub tenant_id: String,
    pub keyspace: String,
    /// The key that signs session cookies and CSRF tokens.
    pub session_secret: Vec<u8>,
    pub login_limits: LoginLimits,
    /// Every cookie `Secure` (`ADMIN_BEHIND_TLS`).
    pub behind_tls: bool,
}

impl std::fmt::Debug for PanelOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelOptions")
            .field("tenant_id", &self.tenant_id)
            .field("keyspace", &self.keyspace)
            .field("login_limits", &self.login_limits)
            .field("behind_tls", &self.behind_tls)
            .finish_non_exhaustive()
    }
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
    /// The proxies trusted to name the client (`ADMIN_TRUSTED_PROXIES`,
    /// [`AppState::trusting`]); none unless set.
    proxies: Arc<TrustedProxies>,
}

#[derive(Debug)]
struct Inner {
    tenant_id: String,
    keyspace: String,
    store: Store,
    templates: templates::Templates,
    keys: session::Keys,
    limiter: ratelimit::LoginLimiter,
    passwords: password::PasswordChecker,
}

impl AppState {
    /// Prepares the statements over the tenant keyspace and compiles the
    /// templates.
    pub async fn new(
        cassandra: CassandraSession,
        options: PanelOptions,
    ) -> Result<Self, InitError> {
        let store = Store::prepare(cassandra, &options.keyspace).await?;
        let templates = templates::Templates::new()?;
        Ok(AppState {
            inner: Arc::new(Inner {
                keys: session::Keys::new(options.session_secret, &options.tenant_id)
                    .behind_tls(options.behind_tls),
                tenant_id: options.tenant_id,
                keyspace: options.keyspace,
                store,
                templates,
                limiter: ratelimit::LoginLimiter::new(options.login_limits),
                passwords: password::PasswordChecker::default(),
            }),
            proxies: Arc::new(TrustedProxies::none()),
        })
    }

    /// The panel, with the requests from `proxies` naming their client in
    /// `X-Forwarded-For` ([`client`]).
    pub fn trusting(self, proxies: TrustedProxies) -> Self {
        AppState {
            proxies: Arc::new(proxies),
            ..self
        }
    }

    /// The proxies trusted to name the client.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    pub fn tenant_id(&self) -> &str {
        &self.inner.tenant_id
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The alert rules, pair states and mail records of the tenant (the
    /// `notifier` table), over the panel's session.
    pub fn alerts(&self) -> notifier::store::AlertStore<'_> {
        notifier::store::AlertStore::new(self.inner.store.session(), &self.inner.keyspace)
    }

    pub fn keys(&self) -> &session::Keys {
        &self.inner.keys
    }

    pub(crate) fn templates(&self) -> &templates::Templates {
        &self.inner.templates
    }

    pub(crate) fn limiter(&self) -> &ratelimit::LoginLimiter {
        &self.inner.limiter
    }

    pub(crate) fn passwords(&self) -> &password::PasswordChecker {
        &self.inner.passwords
    }
}

/// The whole panel.
pub fn app(state: AppState) -> Router {
    pages::router(state)
}
