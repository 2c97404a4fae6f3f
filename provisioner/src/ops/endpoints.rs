//! Where each tenant app answers now, for whatever points gateways and
//! browsers at it (the daemon's `GET /v1/endpoints`). On one engine that
//! is the public host and the tenant's leased port, while the app runs. On
//! a Swarm ports are published in host mode, so an endpoint is the address
//! of the node the app's task runs on, and it moves with the task; the
//! daemon's watcher follows it after a node event. Behind the front
//! (`[front] enabled`) an endpoint never moves: the public host and the
//! leased port, on a Swarm too (every node's front binds it).

use std::collections::HashSet;

use super::Provisioner;
use crate::backend::AppEndpoint;
use crate::domain::Role;
use crate::error::Result;

impl Provisioner {
    /// The endpoint of every tenant app that publishes a port (ingest and
    /// admin), sorted by tenant and app.
    pub async fn app_endpoints(&self) -> Result<Vec<AppEndpoint>> {
        if let Some(cluster) = self
            .backend
            .cluster()
            .filter(|_| !self.config.front.enabled)
        {
            return Ok(cluster.endpoints().await?);
        }
        let running: HashSet<String> = self
            .backend
            .observe_containers(None)
            .await?
            .into_iter()
            .filter(|c| c.running())
            .map(|c| c.name)
            .collect();
        let host = &self.config.ports.public_host;
        let mut out = Vec::new();
        for record in self.store.tenants().await? {
            for role in [Role::Ingest, Role::Admin] {
                let Some(port) = record.port(role) else {
                    continue;
                };
                let up = running.contains(&self.config.container_name(&record.id, role));
                out.push(AppEndpoint {
                    tenant: record.id.clone(),
                    app: role.as_str().to_owned(),
                    node: None,
                    endpoint: up.then(|| format!("{host}:{port}")),
                });
            }
        }
        out.sort_by(|a, b| (&a.tenant, &a.app).cmp(&(&b.tenant, &b.app)));
        Ok(out)
    }
}
