//! `upgrade`: a tenant's apps rolled to the images of `--image-tag` (or to
//! what the configured tags point at now, a rebuilt image), by the
//! copy-update-switch behind the front ([`Provisioner::switch_container`]);
//! the notifier, which publishes no port, is replaced in place. A tenant
//! whose new app does not get healthy is rolled back and reported, and
//! keeps its image tag. `--all` upgrades every running tenant in batches
//! of `parallelism` at once, stopping after the first batch with a failure
//! unless `keep_going`.
//!
//! Without the front, the same plan replaces the apps in place: the
//! tenant's ports close while its containers are recreated (a notice
//! says so). On a Swarm the switch is the Swarm's own rolling update in
//! `start-first` order, behind every node's front.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::executor::Execution;
use super::report::Answer;
use super::{Provisioner, StartOptions};
use crate::domain::{Desired, ProviderId};
use crate::error::{Error, ErrorInfo, Result};

/// What `upgrade` asks for.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// The tag of the images to run; `None`: the tenant's own (a rebuilt
    /// image under the same tag is an upgrade too).
    pub image_tag: Option<String>,
    /// Tenants upgraded at once (`--all`); at least 1.
    pub parallelism: usize,
    /// `--all`: go on after a tenant failed.
    pub keep_going: bool,
}

impl Default for UpgradeOptions {
    fn default() -> Self {
        UpgradeOptions {
            image_tag: None,
            parallelism: 1,
            keep_going: false,
        }
    }
}

/// How one tenant's upgrade ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeResult {
    /// Its apps run the new images.
    Upgraded,
    /// They ran them already.
    Unchanged,
    /// A new app did not get healthy: removed, the old one kept serving.
    RolledBack,
    Failed,
    /// Not tried: an earlier batch failed (no `--keep-going`).
    Skipped,
}

/// One tenant of an `upgrade`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantUpgrade {
    pub provider: ProviderId,
    pub result: UpgradeResult,
    /// The steps run, as printed.
    pub steps: Vec<String>,
    pub secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// What `upgrade` did, tenant by tenant.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeReport {
    pub image_tag: Option<String>,
    pub tenants: Vec<TenantUpgrade>,
    pub secs: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

impl UpgradeReport {
    /// The first failure (a rollback included), whose exit code the CLI
    /// ends with.
    pub fn first_error(&self) -> Option<&ErrorInfo> {
        self.tenants.iter().find_map(|t| t.error.as_ref())
    }

    /// What the CLI prints: a line per tenant.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for t in &self.tenants {
            let how = match t.result {
                UpgradeResult::Upgraded => format!("upgraded in {:.1} s", t.secs),
                UpgradeResult::Unchanged => "already runs these images".to_owned(),
                UpgradeResult::RolledBack => "rolled back".to_owned(),
                UpgradeResult::Failed => "failed".to_owned(),
                UpgradeResult::Skipped => "skipped (an earlier tenant failed)".to_owned(),
            };
            text.push_str(&format!("{}: {how}\n", t.provider));
            for step in &t.steps {
                text.push_str(&format!("  {step}\n"));
            }
            if let Some(e) = &t.error {
                text.push_str(&format!("  error: {}\n", e.message));
            }
        }
        for notice in &self.notices {
            text.push_str(&format!("note: {notice}\n"));
        }
        text
    }
}

impl Answer for TenantUpgrade {
    fn failure(&self) -> Option<ErrorInfo> {
        self.error.clone()
    }
}

impl Answer for UpgradeReport {
    fn failure(&self) -> Option<ErrorInfo> {
        self.first_error().cloned()
    }
}

impl Provisioner {
    /// Upgrades one tenant (see the module).
    pub async fn upgrade(
        &self,
        id: &ProviderId,
        options: &UpgradeOptions,
    ) -> Result<UpgradeReport> {
        let started = Instant::now();
        let text = describe(Some(id), options);
        self.operation(Some(id), "upgrade", text, async {
            let tenant = self.upgrade_one(id, options).await?;
            Ok(self.report(options, vec![tenant], started))
        })
        .await
    }

    /// Upgrades every tenant that should run, `parallelism` at once.
    pub async fn upgrade_all(&self, options: &UpgradeOptions) -> Result<UpgradeReport> {
        let started = Instant::now();
        let work = async {
            let ids: Vec<ProviderId> = self
                .store
                .tenants()
                .await?
                .into_iter()
                .filter(|r| r.desired == Desired::Running)
                .map(|r| r.id)
                .collect();
            let mut tenants = Vec::new();
            let mut failed = false;
            for batch in ids.chunks(options.parallelism.max(1)) {
                if failed && !options.keep_going {
                    tenants.extend(batch.iter().map(skipped));
                    continue;
                }
                let runs = batch.iter().map(|id| async move {
                    let text = describe(Some(id), options);
                    let outcome = match crate::lock::acquire(self.data_dir(), id.as_str()).await {
                        Ok(_lock) => {
                            self.logged(Some(id), "upgrade", text, self.upgrade_one(id, options))
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    outcome.unwrap_or_else(|e| failed_tenant(id, &e, 0.0))
                });
                let done = futures::future::join_all(runs).await;
                failed |= done.iter().any(|t| t.error.is_some());
                tenants.extend(done);
            }
            Ok(self.report(options, tenants, started))
        };
        match self.queued_waiting() {
            true => {
                self.logged(None, "upgrade", describe(None, options), work)
                    .await
            }
            false => work.await,
        }
    }

    fn report(
        &self,
        options: &UpgradeOptions,
        tenants: Vec<TenantUpgrade>,
        started: Instant,
    ) -> UpgradeReport {
        let mut notices = Vec::new();
        if !self.config.front.enabled {
            notices.push(
                "[front] is off: each app was replaced in place, its port closed meanwhile; \
                 with the front on, an upgrade switches behind a port that stays open"
                    .to_owned(),
            );
        }
        UpgradeReport {
            image_tag: options.image_tag.clone(),
            tenants,
            secs: started.elapsed().as_secs_f64(),
            notices,
        }
    }

    /// One tenant, under its lock: the start plan with the new tag, whose
    /// drifted apps are switched. A failure is the tenant's result, not
    /// the run's error.
    async fn upgrade_one(
        &self,
        id: &ProviderId,
        options: &UpgradeOptions,
    ) -> Result<TenantUpgrade> {
        let started = Instant::now();
        let record = self.known(id).await?;
        if record.desired != Desired::Running {
            return Err(Error::Usage(format!(
                "tenant {id} is {}; only a running tenant is upgraded (`provision start {id}` first)",
                record.desired
            )));
        }
        let image_tag = options.image_tag.clone().or(record.image_tag.clone());
        let start = StartOptions {
            image_tag: image_tag.clone(),
            ..StartOptions::default()
        };
        let plan = self.plan(id, start).await?;
        let mut run = Execution::new(self, id);
        let outcome = run.apply(&plan).await;
        let secs = started.elapsed().as_secs_f64();
        let mut tenant = match outcome {
            Ok(()) => {
                if image_tag != record.image_tag {
                    self.store.set_image_tag(id, image_tag.as_deref()).await?;
                }
                TenantUpgrade {
                    provider: id.clone(),
                    result: match plan.changes() {
                        true => UpgradeResult::Upgraded,
                        false => UpgradeResult::Unchanged,
                    },
                    steps: Vec::new(),
                    secs,
                    error: None,
                }
            }
            Err(e) => failed_tenant(id, &e, secs),
        };
        tenant.steps = run.applied;
        Ok(tenant)
    }
}

fn describe(id: Option<&ProviderId>, options: &UpgradeOptions) -> String {
    let mut text = match id {
        Some(id) => format!("upgrade {id}"),
        None => "upgrade --all".to_owned(),
    };
    if let Some(tag) = &options.image_tag {
        text.push_str(&format!(" --image-tag {tag}"));
    }
    if id.is_none() {
        text.push_str(&format!(" --parallelism {}", options.parallelism));
        if options.keep_going {
            text.push_str(" --keep-going");
        }
    }
    text
}

fn failed_tenant(id: &ProviderId, e: &Error, secs: f64) -> TenantUpgrade {
    TenantUpgrade {
        provider: id.clone(),
        result: match e {
            Error::RolledBack { .. } => UpgradeResult::RolledBack,
            _ => UpgradeResult::Failed,
        },
        steps: Vec::new(),
        secs,
        error: Some(ErrorInfo::from(e)),
    }
}

fn skipped(id: &ProviderId) -> TenantUpgrade {
    TenantUpgrade {
        provider: id.clone(),
        result: UpgradeResult::Skipped,
        steps: Vec::new(),
        secs: 0.0,
        error: None,
    }
}
