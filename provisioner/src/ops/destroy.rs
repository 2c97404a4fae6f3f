//! `destroy`: the containers, the tenant's network, its ports and secrets
//! files go; with `purge`, its keyspace and role too, and the store forgets
//! it.

use super::executor::Execution;
use super::{PlanReport, Provisioner};
use crate::domain::planner;
use crate::domain::ProviderId;
use crate::error::Result;

impl Provisioner {
    pub async fn destroy(&self, id: &ProviderId, purge: bool, dry_run: bool) -> Result<PlanReport> {
        let plan = async {
            let record = self.known(id).await?;
            let observed = self.backend.observe_containers(Some(id)).await?;
            let mut infra = self.observe_backend_infra(Some(id)).await?;
            self.observe_front(&mut infra, id, &observed).await?;
            Ok::<_, crate::error::Error>(planner::plan_destroy(
                &self.view(id, Some(record)),
                &infra,
                &observed,
                purge,
            ))
        };
        if dry_run {
            return Ok(PlanReport::new(&plan.await?, true));
        }
        let text = match purge {
            true => format!("destroy {id} --purge-data"),
            false => format!("destroy {id}"),
        };
        self.operation(Some(id), "destroy", text, async {
            let plan = plan.await?;
            Execution::new(self, id).apply(&plan).await?;
            Ok(PlanReport::new(&plan, false))
        })
        .await
    }
}
