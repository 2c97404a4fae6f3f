//! `history`: the operations log, of one tenant or all, and one operation
//! with what it answered (the daemon's `/v1/operations/{op}`).

use super::report::forget_shown_once;
use super::Provisioner;
use crate::domain::ProviderId;
use crate::error::Result;
use crate::store::operations::OperationRecord;

fn without_shown_once(mut record: OperationRecord) -> OperationRecord {
    record.result.iter_mut().for_each(forget_shown_once);
    record
}

impl Provisioner {
    /// What was asked, when, by whom, and how it ended (a run whose process
    /// died shows as interrupted). What is shown once is not in it.
    pub async fn history(&self, id: Option<&ProviderId>) -> Result<Vec<OperationRecord>> {
        Ok(self
            .store
            .history(id)
            .await?
            .into_iter()
            .map(without_shown_once)
            .collect())
    }

    /// One operation, without what is shown once.
    pub async fn operation_record(&self, op: i64) -> Result<Option<OperationRecord>> {
        Ok(self.store.operation(op).await?.map(without_shown_once))
    }

    /// One operation; once it is over, what is shown once (the first admin
    /// password) is in this answer and forgotten after it.
    pub async fn take_operation(&self, op: i64) -> Result<Option<OperationRecord>> {
        let Some(record) = self.store.operation(op).await? else {
            return Ok(None);
        };
        if record.state.is_final() {
            if let Some(result) = &record.result {
                let mut forgotten = result.clone();
                forget_shown_once(&mut forgotten);
                if &forgotten != result {
                    self.store.replace_result(op, &forgotten).await?;
                }
            }
            return Ok(Some(record));
        }
        Ok(Some(without_shown_once(record)))
    }
}
