//! `stop`: the desired state becomes stopped and the running containers
//! stop; ports and data stay (behind the front, their routes lose their
//! targets).

use super::executor::Execution;
use super::{PlanReport, Provisioner};
use crate::domain::planner;
use crate::domain::state::FrontObserved;
use crate::domain::ProviderId;
use crate::error::Result;

impl Provisioner {
    pub async fn stop(&self, id: &ProviderId, dry_run: bool) -> Result<PlanReport> {
        let plan = async {
            let record = self.known(id).await?;
            let observed = self.backend.observe_containers(Some(id)).await?;
            let front = match self.config.front.enabled {
                true => self.observe_backend_infra(Some(id)).await?.front,
                false => FrontObserved::Off,
            };
            Ok::<_, crate::error::Error>(planner::plan_stop(
                &self.view(id, Some(record)),
                &observed,
                front,
            ))
        };
        if dry_run {
            return Ok(PlanReport::new(&plan.await?, true));
        }
        self.operation(Some(id), "stop", format!("stop {id}"), async {
            let plan = plan.await?;
            Execution::new(self, id).apply(&plan).await?;
            Ok(PlanReport::new(&plan, false))
        })
        .await
    }
}
