//! The tenants table and their port leases: records read into typed
//! [`TenantRecord`]s (an id or a desired state the code does not know is
//! an error, never a default), registration with fresh secrets, the
//! desired state, progress flags, and leases taken one port at a time in
//! an immediate transaction.

use sqlx::Row;

use super::{new_secret, now, Result, Store, StoreError};
use crate::domain::ports::Lease;
use crate::domain::state::TenantRecord;
use crate::domain::{Desired, GatewayTls, Pool, ProviderId, TenantLimits};

const SELECT_TENANT: &str = "SELECT p.id, p.desired, p.cassandra_password, p.session_secret, \
     p.schema_version, p.role_ready, p.admin_user_created, p.created_at, p.gateway_tls, \
     p.max_readings_per_sec, p.max_gateways, p.image_tag, \
     (SELECT port FROM port_leases WHERE provider = p.id AND pool = 'gateway') AS gw, \
     (SELECT port FROM port_leases WHERE provider = p.id AND pool = 'admin') AS ad, \
     COALESCE((SELECT cluster FROM placements WHERE provider = p.id), 'default') AS cluster \
     FROM providers p";

impl Store {
    fn unknown(&self, what: &'static str, value: impl Into<String>) -> StoreError {
        StoreError::Unknown {
            url: self.url.clone(),
            what,
            value: value.into(),
        }
    }

    fn id_from(&self, raw: String) -> Result<ProviderId> {
        ProviderId::parse(&raw).map_err(|_| self.unknown("the provider id", raw))
    }

    fn record_from_row(&self, r: &sqlx::sqlite::SqliteRow) -> Result<TenantRecord> {
        let desired: String = r.get("desired");
        let gateway_tls: String = r.get("gateway_tls");
        Ok(TenantRecord {
            gateway_tls: GatewayTls::parse(&gateway_tls)
                .ok_or_else(|| self.unknown("the gateway TLS mode", gateway_tls))?,
            id: self.id_from(r.get("id"))?,
            desired: Desired::parse(&desired)
                .ok_or_else(|| self.unknown("the desired state", desired))?,
            cassandra_password: r.get("cassandra_password"),
            session_secret: r.get("session_secret"),
            schema_version: r.get::<i64, _>("schema_version") as u32,
            role_ready: r.get::<i64, _>("role_ready") != 0,
            admin_user_created: r.get::<i64, _>("admin_user_created") != 0,
            created_at: r.get("created_at"),
            limits: TenantLimits {
                max_readings_per_sec: self.limit(r, "max_readings_per_sec")?,
                max_gateways: self.limit(r, "max_gateways")?,
            },
            image_tag: r.get("image_tag"),
            cluster: r.get("cluster"),
            gateway_port: r.get::<Option<i64>, _>("gw").map(|p| p as u16),
            admin_port: r.get::<Option<i64>, _>("ad").map(|p| p as u16),
        })
    }

    /// One tenant with its leases, if known.
    pub async fn tenant(&self, id: &ProviderId) -> Result<Option<TenantRecord>> {
        let row = sqlx::query(&format!("{SELECT_TENANT} WHERE p.id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        row.map(|r| self.record_from_row(&r)).transpose()
    }

    /// Every tenant, by id.
    pub async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        let rows = sqlx::query(&format!("{SELECT_TENANT} ORDER BY p.id"))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter().map(|r| self.record_from_row(r)).collect()
    }

    /// Every port lease.
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT port, pool, provider FROM port_leases ORDER BY port")
                .fetch_all(&self.pool)
                .await
                .map_err(self.err())?;
        rows.into_iter()
            .map(|(port, pool, provider)| {
                Ok(Lease {
                    port: port as u16,
                    pool: Pool::parse(&pool).ok_or_else(|| self.unknown("the pool", pool))?,
                    provider: self.id_from(provider)?,
                })
            })
            .collect()
    }

    /// Records a tenant with fresh secrets (the panel's session secret, the
    /// role's password); a tenant known already only gets `desired`.
    pub async fn register(&self, id: &ProviderId, desired: Desired) -> Result<()> {
        let t = now();
        sqlx::query(
            "INSERT INTO providers (id, desired, cassandra_password, session_secret, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET desired = excluded.desired, updated_at = excluded.updated_at",
        )
        .bind(id.as_str())
        .bind(desired.as_str())
        .bind(tenant_schema::model::new_password())
        .bind(new_secret())
        .bind(&t)
        .bind(&t)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// Leases `port` of `pool` to `id` in one immediate transaction. Done
    /// already counts as done; a port another tenant took since the plan
    /// was made, or another port of the same pool, is
    /// [`StoreError::LeaseTaken`].
    pub async fn lease(&self, id: &ProviderId, pool: Pool, port: u16) -> Result<()> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err())?;
        let holders: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT port, pool, provider FROM port_leases WHERE port = ? OR (provider = ? AND pool = ?)",
        )
        .bind(port as i64)
        .bind(id.as_str())
        .bind(pool.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(self.err())?;
        if let Some((_, _, holder)) = holders.iter().find(|(p, pl, holder)| {
            !(*p == port as i64 && pl == pool.as_str() && holder == id.as_str())
        }) {
            return Err(StoreError::LeaseTaken {
                pool,
                port,
                holder: holder.clone(),
            });
        }
        if holders.is_empty() {
            sqlx::query(
                "INSERT INTO port_leases (port, pool, provider, leased_at) VALUES (?, ?, ?, ?)",
            )
            .bind(port as i64)
            .bind(pool.as_str())
            .bind(id.as_str())
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())
    }

    pub async fn set_desired(&self, id: &ProviderId, desired: Desired) -> Result<()> {
        self.set_column(id, "desired", desired.as_str().to_owned())
            .await
    }

    /// The image tag the tenant's apps run (`None`: the configured images).
    pub async fn set_image_tag(&self, id: &ProviderId, tag: Option<&str>) -> Result<()> {
        self.set_column(id, "image_tag", tag.map(str::to_owned))
            .await
    }

    pub async fn set_gateway_tls(&self, id: &ProviderId, mode: GatewayTls) -> Result<()> {
        self.set_column(id, "gateway_tls", mode.as_str().to_owned())
            .await
    }

    pub async fn set_limits(&self, id: &ProviderId, limits: TenantLimits) -> Result<()> {
        let value = |n: Option<std::num::NonZeroU32>| n.map(|n| i64::from(n.get()));
        self.set_column(
            id,
            "max_readings_per_sec",
            value(limits.max_readings_per_sec),
        )
        .await?;
        self.set_column(id, "max_gateways", value(limits.max_gateways))
            .await
    }

    /// A limit column: NULL is none; anything but 1..=u32::MAX is an error.
    fn limit(
        &self,
        r: &sqlx::sqlite::SqliteRow,
        column: &'static str,
    ) -> Result<Option<std::num::NonZeroU32>> {
        match r.get::<Option<i64>, _>(column) {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .ok()
                .and_then(std::num::NonZeroU32::new)
                .map(Some)
                .ok_or_else(|| self.unknown(column, n.to_string())),
        }
    }

    pub async fn set_schema_version(&self, id: &ProviderId, version: u32) -> Result<()> {
        self.set_column(id, "schema_version", version as i64).await
    }

    pub async fn set_role_ready(&self, id: &ProviderId) -> Result<()> {
        self.set_column(id, "role_ready", 1).await
    }

    pub async fn set_admin_user_created(&self, id: &ProviderId) -> Result<()> {
        self.set_column(id, "admin_user_created", 1).await
    }

    async fn set_column<V>(&self, id: &ProviderId, column: &'static str, value: V) -> Result<()>
    where
        V: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + 'static,
    {
        sqlx::query(&format!(
            "UPDATE providers SET {column} = ?, updated_at = ? WHERE id = ?"
        ))
        .bind(value)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// Releases every port of `id`.
    pub async fn release_ports(&self, id: &ProviderId) -> Result<()> {
        sqlx::query("DELETE FROM port_leases WHERE provider = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Forgets `id` entirely (its leases and record; its operations stay
    /// in the history).
    pub async fn forget(&self, id: &ProviderId) -> Result<()> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err())?;
        for statement in [
            "DELETE FROM port_leases WHERE provider = ?",
            "DELETE FROM placements WHERE provider = ?",
            "DELETE FROM providers WHERE id = ?",
        ] {
            sqlx::query(statement)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(name: &str) -> (Store, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("provision-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir.join("state.db")).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn a_lease_is_idempotent_and_a_taken_port_is_refused() {
        let (store, dir) = store("lease").await;
        let a = ProviderId::parse("a").unwrap();
        let b = ProviderId::parse("b").unwrap();
        store.register(&a, Desired::Running).await.unwrap();
        store.register(&b, Desired::Running).await.unwrap();
        store.lease(&a, Pool::Gateway, 6001).await.unwrap();
        store.lease(&a, Pool::Gateway, 6001).await.unwrap();
        let taken = store.lease(&b, Pool::Gateway, 6001).await.unwrap_err();
        assert!(
            matches!(taken, StoreError::LeaseTaken { port: 6001, .. }),
            "{taken}"
        );
        let other = store.lease(&a, Pool::Gateway, 6002).await.unwrap_err();
        assert!(matches!(other, StoreError::LeaseTaken { .. }), "{other}");
        assert_eq!(
            store.tenant(&a).await.unwrap().unwrap().gateway_port,
            Some(6001)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_unknown_desired_state_is_an_error_not_a_default() {
        let (store, dir) = store("unknown").await;
        let a = ProviderId::parse("a").unwrap();
        store.register(&a, Desired::Stopped).await.unwrap();
        sqlx::query("UPDATE providers SET desired = 'hibernating'")
            .execute(&store.pool)
            .await
            .unwrap();
        let e = store.tenant(&a).await.unwrap_err();
        assert!(e.to_string().contains("\"hibernating\""), "{e}");
        assert!(store.tenants().await.is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
