//! `history`: the operations log, of one tenant or all.

use super::Provisioner;
use crate::domain::ProviderId;
use crate::error::Result;
use crate::store::operations::OperationRecord;

impl Provisioner {
    /// What was asked, when, by whom, and how it ended (a run whose process
    /// died shows as interrupted).
    pub async fn history(&self, id: Option<&ProviderId>) -> Result<Vec<OperationRecord>> {
        Ok(self.store.history(id).await?)
    }
}
