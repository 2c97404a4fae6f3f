//! Port choice: which port of a pool a tenant gets. A pure function of
//! the leases in the store and of a probe that says whether the host holds
//! a port (the backend's); the store's primary key on the port makes a
//! double lease impossible even across processes.

use std::ops::RangeInclusive;

use super::ids::{Pool, ProviderId};

/// A range of ports, validated once when the config is read: `first-last`
/// with `1 <= first <= last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange(RangeInclusive<u16>);

impl PortRange {
    pub fn parse(raw: &str) -> Option<PortRange> {
        let (a, b) = raw
            .trim()
            .split_once('-')
            .unwrap_or((raw.trim(), raw.trim()));
        let first: u16 = a.trim().parse().ok()?;
        let last: u16 = b.trim().parse().ok()?;
        (first >= 1 && first <= last).then_some(PortRange(first..=last))
    }

    pub fn ports(&self) -> RangeInclusive<u16> {
        self.0.clone()
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.0.start() <= other.0.end() && other.0.start() <= self.0.end()
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0.start(), self.0.end())
    }
}

/// The configured pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pools {
    pub gateway: PortRange,
    pub admin: PortRange,
}

impl Pools {
    pub fn range(&self, pool: Pool) -> &PortRange {
        match pool {
            Pool::Gateway => &self.gateway,
            Pool::Admin => &self.admin,
        }
    }
}

/// One port leased to one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub port: u16,
    pub pool: Pool,
    pub provider: ProviderId,
}

/// What to do about one pool for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The provider holds this port already: keep it.
    Keep(u16),
    /// Lease this port.
    Lease(u16),
}

impl Choice {
    pub fn port(self) -> u16 {
        match self {
            Choice::Keep(p) | Choice::Lease(p) => p,
        }
    }
}

/// Why no port could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("the {pool} port pool {range} is exhausted: every port is leased or held on the host; destroy unused tenants or widen [ports].{pool} in the config")]
    Exhausted { pool: Pool, range: String },
    #[error("{pool} port {port} is already leased to tenant {holder}; pick another port or omit it to get one from the pool")]
    Leased {
        pool: Pool,
        port: u16,
        holder: ProviderId,
    },
    #[error("{pool} port {port} is held by another process on this host ({why}); pick another port or free it")]
    Held { pool: Pool, port: u16, why: String },
    #[error("tenant {tenant} already has {pool} port {leased}; it keeps it until destroyed (asked for {requested})")]
    Mismatch {
        tenant: ProviderId,
        pool: Pool,
        leased: u16,
        requested: u16,
    },
}

/// Chooses the port of `pool` for `provider`: the one it holds (a tenant
/// keeps its ports until destroyed), the one it asked for if free, or the
/// lowest free port of the range. A port is free when no lease holds it and
/// `host_free(port)` says nothing on the host holds it.
pub fn choose(
    provider: &ProviderId,
    pool: Pool,
    requested: Option<u16>,
    range: &PortRange,
    leases: &[Lease],
    host_free: &(dyn Fn(u16) -> Result<(), String> + Sync),
) -> Result<Choice, PortError> {
    if let Some(own) = leases
        .iter()
        .find(|l| &l.provider == provider && l.pool == pool)
    {
        return match requested {
            Some(port) if port != own.port => Err(PortError::Mismatch {
                tenant: provider.clone(),
                pool,
                leased: own.port,
                requested: port,
            }),
            _ => Ok(Choice::Keep(own.port)),
        };
    }
    if let Some(port) = requested {
        if let Some(other) = leases.iter().find(|l| l.port == port) {
            return Err(PortError::Leased {
                pool,
                port,
                holder: other.provider.clone(),
            });
        }
        host_free(port).map_err(|why| PortError::Held { pool, port, why })?;
        return Ok(Choice::Lease(port));
    }
    range
        .ports()
        .filter(|p| !leases.iter().any(|l| l.port == *p))
        .find(|p| host_free(*p).is_ok())
        .map(Choice::Lease)
        .ok_or_else(|| PortError::Exhausted {
            pool,
            range: range.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> PortRange {
        PortRange::parse(s).unwrap()
    }

    fn lease(port: u16, pool: Pool, provider: &str) -> Lease {
        Lease {
            port,
            pool,
            provider: ProviderId::parse(provider).unwrap(),
        }
    }

    fn id(s: &str) -> ProviderId {
        ProviderId::parse(s).unwrap()
    }

    fn all_free(_: u16) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn the_first_tenant_gets_the_first_port_of_each_pool() {
        let c = choose(
            &id("acme"),
            Pool::Gateway,
            None,
            &range("6001-6999"),
            &[],
            &all_free,
        )
        .unwrap();
        assert_eq!(c, Choice::Lease(6001));
    }

    #[test]
    fn a_tenant_keeps_its_port() {
        let leases = [
            lease(6001, Pool::Gateway, "a"),
            lease(6002, Pool::Gateway, "b"),
        ];
        let c = choose(
            &id("b"),
            Pool::Gateway,
            None,
            &range("6001-6999"),
            &leases,
            &all_free,
        )
        .unwrap();
        assert_eq!(c, Choice::Keep(6002));
        let c = choose(
            &id("b"),
            Pool::Gateway,
            Some(6002),
            &range("6001-6999"),
            &leases,
            &all_free,
        )
        .unwrap();
        assert_eq!(c, Choice::Keep(6002));
        let e = choose(
            &id("b"),
            Pool::Gateway,
            Some(6005),
            &range("6001-6999"),
            &leases,
            &all_free,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("already has gateway port 6002"),
            "{e}"
        );
    }

    #[test]
    fn leased_and_host_held_ports_are_skipped() {
        let leases = [lease(6001, Pool::Gateway, "a")];
        let held = |p: u16| {
            if p == 6002 {
                Err("in use".to_owned())
            } else {
                Ok(())
            }
        };
        let c = choose(
            &id("c"),
            Pool::Gateway,
            None,
            &range("6001-6999"),
            &leases,
            &held,
        )
        .unwrap();
        assert_eq!(c, Choice::Lease(6003));
    }

    #[test]
    fn a_requested_port_must_be_free() {
        let leases = [lease(6001, Pool::Gateway, "a")];
        let e = choose(
            &id("c"),
            Pool::Gateway,
            Some(6001),
            &range("6001-6999"),
            &leases,
            &all_free,
        )
        .unwrap_err();
        assert!(matches!(e, PortError::Leased { port: 6001, .. }), "{e}");
        assert!(e.to_string().contains("leased to tenant a"));
        let held = |_: u16| Err("address in use".to_owned());
        let e = choose(
            &id("c"),
            Pool::Gateway,
            Some(7000),
            &range("6001-6999"),
            &[],
            &held,
        )
        .unwrap_err();
        assert!(matches!(e, PortError::Held { port: 7000, .. }), "{e}");
    }

    #[test]
    fn an_exhausted_pool_is_an_error_naming_the_range() {
        let leases = [
            lease(6001, Pool::Gateway, "a"),
            lease(6002, Pool::Gateway, "b"),
        ];
        let e = choose(
            &id("c"),
            Pool::Gateway,
            None,
            &range("6001-6002"),
            &leases,
            &all_free,
        )
        .unwrap_err();
        assert!(matches!(e, PortError::Exhausted { .. }));
        assert!(e.to_string().contains("6001-6002"), "{e}");
    }
}
