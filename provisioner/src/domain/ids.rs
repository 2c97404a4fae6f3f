//! The identifiers of the domain: [`ProviderId`] (a provider, or tenant,
//! validated once at the edge), the three app [`Role`]s of a tenant and
//! the two port [`Pool`]s.
//!
//! The same id names the keyspace, the Cassandra role, the containers and
//! the labels, so it is restricted to what is safe in all of them:
//! lowercase ASCII, starting with a letter, then letters, digits or
//! underscores, at most 32 characters.

use std::fmt;
use std::str::FromStr;

/// Why a provider id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid provider id {given:?}: {reason}; use 1-32 characters, lowercase letters, digits and '_', starting with a letter (e.g. \"acme\" or \"solar_co2\")")]
pub struct InvalidProviderId {
    pub given: String,
    pub reason: &'static str,
}

/// A validated provider id. Construct it with [`ProviderId::parse`] or
/// `str::parse`; inner code never re-checks it. It serializes as its
/// string, and deserializing validates it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ProviderId(String);

impl<'de> serde::Deserialize<'de> for ProviderId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ProviderId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl ProviderId {
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, InvalidProviderId> {
        let refuse = |reason| {
            Err(InvalidProviderId {
                given: raw.to_owned(),
                reason,
            })
        };
        let Some(first) = raw.bytes().next() else {
            return refuse("it is empty");
        };
        if raw.len() > Self::MAX_LEN {
            return refuse("it is longer than 32 characters");
        }
        if !first.is_ascii_lowercase() {
            return refuse("it must start with a lowercase letter");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return refuse("it may hold only lowercase letters, digits and '_'");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant's Cassandra keyspace: the one place its name is made.
    /// Prefixed, so no provider id can name a system keyspace.
    pub fn keyspace(&self) -> String {
        format!("tenant_{}", self.0)
    }

    /// The tenant's Cassandra role, with rights on its keyspace only. It
    /// is named like the keyspace.
    pub fn cassandra_role(&self) -> String {
        self.keyspace()
    }
}

impl FromStr for ProviderId {
    type Err = InvalidProviderId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// The three apps of a tenant: ingest and the panel publish a port each,
/// the notifier none.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ingest,
    Admin,
    /// Alerts and daily reports by mail; reaches out only (Cassandra, the
    /// operator's relay), so it publishes no port.
    Notifier,
}

impl Role {
    /// In the order `start` creates them: the notifier last.
    pub const ALL: [Role; 3] = [Role::Ingest, Role::Admin, Role::Notifier];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => crate::labels::ROLE_INGEST,
            Role::Admin => crate::labels::ROLE_ADMIN,
            Role::Notifier => crate::labels::ROLE_NOTIFIER,
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The pool the role's published port comes from; `None` for a role
    /// that publishes no port (the notifier).
    pub fn pool(self) -> Option<Pool> {
        match self {
            Role::Ingest => Some(Pool::Gateway),
            Role::Admin => Some(Pool::Admin),
            Role::Notifier => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The two port pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    Gateway,
    Admin,
}

impl Pool {
    pub const ALL: [Pool; 2] = [Pool::Gateway, Pool::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Pool::Gateway => "gateway",
            Pool::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Pool> {
        Pool::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_shape() {
        for ok in ["acme", "a", "solar_co2", "p1", &"a".repeat(32)] {
            assert!(ProviderId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_anything_else_with_a_reason() {
        for bad in [
            "",
            "Acme",
            "1acme",
            "_acme",
            "ac-me",
            "ac me",
            "acmé",
            &"a".repeat(33),
        ] {
            let err = ProviderId::parse(bad).unwrap_err();
            assert!(
                err.to_string().contains("lowercase letters"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn names_derive_from_the_id() {
        let id = ProviderId::parse("acme").unwrap();
        assert_eq!(id.keyspace(), "tenant_acme");
        assert_eq!(id.cassandra_role(), "tenant_acme");
    }
}
