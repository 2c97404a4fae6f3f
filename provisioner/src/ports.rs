//! The port pools: which port a tenant gets. The choice is a pure function
//! of the leases in the store and of what the host holds; the state store
//! runs it inside its immediate transaction, and its primary key on the
//! port makes a double lease impossible even across processes.

use std::net::TcpListener;

use crate::config::PortRange;
use crate::error::{Error, Result};
use crate::plan::Pool;

/// The configured pools.
#[derive(Debug, Clone)]
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
    pub provider: String,
}

/// What to do about one pool for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The provider holds this port already: keep it.
    Keep(u16),
    /// Lease this port.
    Lease(u16),
}

/// Chooses the port of `pool` for `provider`: the one it holds (a tenant
/// keeps its ports until destroyed), the one it asked for if free, or the
/// lowest free port of the range. A port is free when no lease holds it and
/// `host_free(port)` says nothing on the host holds it.
pub fn choose(
    provider: &str,
    pool: Pool,
    requested: Option<u16>,
    range: &PortRange,
    leases: &[Lease],
    host_free: &(dyn Fn(u16) -> Result<(), String> + Sync),
) -> Result<Choice> {
    if let Some(own) = leases
        .iter()
        .find(|l| l.provider == provider && l.pool == pool)
    {
        return match requested {
            Some(port) if port != own.port => Err(Error::PortMismatch {
                tenant: provider.to_owned(),
                pool: pool.as_str(),
                leased: own.port,
                requested: port,
            }),
            _ => Ok(Choice::Keep(own.port)),
        };
    }
    if let Some(port) = requested {
        if let Some(other) = leases.iter().find(|l| l.port == port) {
            return Err(Error::PortLeased {
                pool: pool.as_str(),
                port,
                holder: other.provider.clone(),
            });
        }
        host_free(port).map_err(|why| Error::PortHeld {
            pool: pool.as_str(),
            port,
            why,
        })?;
        return Ok(Choice::Lease(port));
    }
    range
        .ports()
        .filter(|p| !leases.iter().any(|l| l.port == *p))
        .find(|p| host_free(*p).is_ok())
        .map(Choice::Lease)
        .ok_or_else(|| Error::PortPoolExhausted {
            pool: pool.as_str(),
            range: range.to_string(),
        })
}

/// Whether nothing on this host holds `port` on `bind_address`: tries to
/// bind it (and lets it go at once).
pub fn host_port_free(bind_address: &str, port: u16) -> Result<(), String> {
    TcpListener::bind((bind_address, port))
        .map(drop)
        .map_err(|e| e.to_string())
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
            provider: provider.into(),
        }
    }

    fn all_free(_: u16) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn the_first_tenant_gets_the_first_port_of_each_pool() {
        let c = choose(
            "acme",
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
            "b",
            Pool::Gateway,
            None,
            &range("6001-6999"),
            &leases,
            &all_free,
        )
        .unwrap();
        assert_eq!(c, Choice::Keep(6002));
        let c = choose(
            "b",
            Pool::Gateway,
            Some(6002),
            &range("6001-6999"),
            &leases,
            &all_free,
        )
        .unwrap();
        assert_eq!(c, Choice::Keep(6002));
        let e = choose(
            "b",
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
            "c",
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
            "c",
            Pool::Gateway,
            Some(6001),
            &range("6001-6999"),
            &leases,
            &all_free,
        )
        .unwrap_err();
        assert!(matches!(e, Error::PortLeased { port: 6001, .. }), "{e}");
        assert!(e.to_string().contains("leased to tenant a"));
        let held = |_: u16| Err("address in use".to_owned());
        let e = choose(
            "c",
            Pool::Gateway,
            Some(7000),
            &range("6001-6999"),
            &[],
            &held,
        )
        .unwrap_err();
        assert!(matches!(e, Error::PortHeld { port: 7000, .. }), "{e}");
    }

    #[test]
    fn an_exhausted_pool_is_an_error_naming_the_range() {
        let leases = [
            lease(6001, Pool::Gateway, "a"),
            lease(6002, Pool::Gateway, "b"),
        ];
        let e = choose(
            "c",
            Pool::Gateway,
            None,
            &range("6001-6002"),
            &leases,
            &all_free,
        )
        .unwrap_err();
        assert!(matches!(e, Error::PortPoolExhausted { .. }));
        assert!(e.to_string().contains("6001-6002"), "{e}");
    }

    #[test]
    fn a_port_bound_on_the_host_is_not_free() {
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(host_port_free("0.0.0.0", port).is_err());
        drop(listener);
        assert!(host_port_free("0.0.0.0", port).is_ok());
    }
}
