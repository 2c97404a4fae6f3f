//! Which Cassandra cluster each tenant is on. A tenant is placed once, by
//! its first `start`, before anything of it exists, and stays there until
//! it is destroyed: the choice ([`crate::domain::placement::choose`]) and
//! its record happen in one immediate transaction, so concurrent starts
//! never overfill a cluster. Tenants placed before there were clusters are
//! on [`crate::config::DEFAULT_CLUSTER`] (store migration v7).

use std::collections::BTreeMap;

use super::{now, Result, Store};
use crate::domain::placement::{choose, ClusterSlot};
use crate::domain::ProviderId;

/// Where `place` put a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// On this cluster (now, or since an earlier start).
    On(String),
    /// Every cluster is full, with these tenants on each.
    Full(BTreeMap<String, usize>),
}

impl Store {
    /// The cluster `id` is placed on, if it is.
    pub async fn placement(&self, id: &ProviderId) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT cluster FROM placements WHERE provider = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())
    }

    /// How many tenants each cluster holds.
    pub async fn placed_per_cluster(&self) -> Result<BTreeMap<String, usize>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT cluster, COUNT(*) FROM placements GROUP BY cluster")
                .fetch_all(&self.pool)
                .await
                .map_err(self.err())?;
        Ok(rows.into_iter().map(|(c, n)| (c, n as usize)).collect())
    }

    /// Places `id` on the cluster of `slots` with the most room, unless it
    /// is placed already.
    pub async fn place(&self, id: &ProviderId, slots: &[ClusterSlot]) -> Result<Placed> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err())?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT cluster FROM placements WHERE provider = ?")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(self.err())?;
        if let Some(cluster) = existing {
            return Ok(Placed::On(cluster));
        }
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT cluster, COUNT(*) FROM placements GROUP BY cluster")
                .fetch_all(&mut *tx)
                .await
                .map_err(self.err())?;
        let placed: BTreeMap<String, usize> =
            rows.into_iter().map(|(c, n)| (c, n as usize)).collect();
        let Some(cluster) = choose(slots, &placed).map(str::to_owned) else {
            return Ok(Placed::Full(placed));
        };
        sqlx::query("INSERT INTO placements (provider, cluster, placed_at) VALUES (?, ?, ?)")
            .bind(id.as_str())
            .bind(&cluster)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(Placed::On(cluster))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Desired;

    fn slot(name: &str, capacity: u32) -> ClusterSlot {
        ClusterSlot {
            name: name.into(),
            capacity: Some(capacity),
        }
    }

    #[tokio::test]
    async fn a_placement_is_kept_and_a_full_set_of_clusters_places_nobody() {
        let dir = std::env::temp_dir().join(format!("provision-place-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("state.db")).await.unwrap();
        let slots = [slot("a", 1), slot("b", 2)];
        let id = |s: &str| ProviderId::parse(s).unwrap();
        assert_eq!(
            store.place(&id("t1"), &slots).await.unwrap(),
            Placed::On("b".into())
        );
        assert_eq!(
            store.place(&id("t1"), &slots).await.unwrap(),
            Placed::On("b".into())
        );
        assert_eq!(
            store.place(&id("t2"), &slots).await.unwrap(),
            Placed::On("a".into())
        );
        assert_eq!(
            store.place(&id("t3"), &slots).await.unwrap(),
            Placed::On("b".into())
        );
        let Placed::Full(placed) = store.place(&id("t4"), &slots).await.unwrap() else {
            panic!("every cluster is full");
        };
        assert_eq!(placed, BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));
        assert_eq!(store.placement(&id("t4")).await.unwrap(), None);
        store.register(&id("t2"), Desired::Running).await.unwrap();
        assert_eq!(store.tenant(&id("t2")).await.unwrap().unwrap().cluster, "a");
        store.forget(&id("t2")).await.unwrap();
        assert_eq!(
            store.place(&id("t4"), &slots).await.unwrap(),
            Placed::On("a".into())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
