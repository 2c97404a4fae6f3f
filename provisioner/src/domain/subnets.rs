//! The choice of a tenant network's subnet on one engine: the first
//! subnet of the configured pool (`[docker] tenant_subnets`) that no
//! network of the engine overlaps. The engine's own default pools hold
//! about 30 bridge networks, far fewer than the tenants one host runs.

use tenant_common::trusted_proxies::Network;

/// The first subnet of length `prefix` in `pool` that overlaps none of
/// `taken` (every subnet the engine's networks have), or `None` when the
/// pool is used up.
pub fn first_free(pool: &Network, prefix: u8, taken: &[Network]) -> Option<Network> {
    pool.subnets_v4(prefix)
        .find(|candidate| !taken.iter().any(|t| t.overlaps(candidate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Network {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_subnet_no_network_overlaps_is_chosen() {
        let pool = net("10.240.0.0/22");
        assert_eq!(first_free(&pool, 24, &[]), Some(net("10.240.0.0/24")));
        let taken = [
            net("172.17.0.0/16"),
            net("10.240.0.0/24"),
            net("10.240.2.0/24"),
        ];
        assert_eq!(first_free(&pool, 24, &taken), Some(net("10.240.1.0/24")));
        // a wider network of someone else's covers several candidates
        let taken = [net("10.240.0.0/23")];
        assert_eq!(first_free(&pool, 24, &taken), Some(net("10.240.2.0/24")));
        // a narrower one inside a candidate rules that candidate out
        let taken = [net("10.240.0.128/25")];
        assert_eq!(first_free(&pool, 24, &taken), Some(net("10.240.1.0/24")));
    }

    #[test]
    fn a_used_up_pool_has_no_subnet() {
        let pool = net("10.240.0.0/23");
        let taken = [net("10.240.0.0/24"), net("10.240.1.0/24")];
        assert_eq!(first_free(&pool, 24, &taken), None);
        assert_eq!(first_free(&pool, 24, &[net("10.0.0.0/8")]), None);
    }
}
