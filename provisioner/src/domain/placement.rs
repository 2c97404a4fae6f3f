//! Which Cassandra cluster a new tenant goes to: the one with the most
//! room (capacity less the tenants placed on it; a cluster without a
//! capacity has room without end), the config's order breaking ties. A
//! full cluster is skipped; when every one is full there is no choice.

use std::collections::BTreeMap;

/// A cluster as placement sees it: its name and how many tenants it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSlot {
    pub name: String,
    /// `None`: no limit.
    pub capacity: Option<u32>,
}

impl ClusterSlot {
    /// Tenants it still takes with `placed` on it (`None`: no limit).
    pub fn room(&self, placed: usize) -> Option<u64> {
        self.capacity
            .map(|c| u64::from(c).saturating_sub(placed as u64))
    }
}

/// The cluster a new tenant goes to, given how many tenants each cluster
/// holds (`placed`, by name); `None` when every cluster is full.
pub fn choose<'a>(slots: &'a [ClusterSlot], placed: &BTreeMap<String, usize>) -> Option<&'a str> {
    let mut best: Option<(&ClusterSlot, Option<u64>)> = None;
    for slot in slots {
        let room = slot.room(placed.get(&slot.name).copied().unwrap_or(0));
        if room == Some(0) {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, best_room)) => more(room, best_room),
        };
        if better {
            best = Some((slot, room));
        }
    }
    best.map(|(slot, _)| slot.name.as_str())
}

/// Whether `a` is strictly more room than `b` (`None` is no limit).
fn more(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (None, None) => false,
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, capacity: Option<u32>) -> ClusterSlot {
        ClusterSlot {
            name: name.into(),
            capacity,
        }
    }

    fn placed(counts: &[(&str, usize)]) -> BTreeMap<String, usize> {
        counts.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn the_cluster_with_the_most_room_wins_and_ties_go_in_order() {
        let slots = [slot("a", Some(2)), slot("b", Some(3))];
        assert_eq!(choose(&slots, &placed(&[])), Some("b"));
        assert_eq!(choose(&slots, &placed(&[("b", 1)])), Some("a"));
        assert_eq!(choose(&slots, &placed(&[("a", 1), ("b", 2)])), Some("a"));
    }

    #[test]
    fn a_full_cluster_is_skipped_and_all_full_is_no_choice() {
        let slots = [slot("a", Some(1)), slot("b", Some(1)), slot("c", Some(0))];
        assert_eq!(choose(&slots, &placed(&[("a", 1)])), Some("b"));
        assert_eq!(choose(&slots, &placed(&[("a", 1), ("b", 1)])), None);
        // Over capacity (a capacity lowered later) is full, not a wrap.
        assert_eq!(choose(&slots[..1], &placed(&[("a", 5)])), None);
    }

    #[test]
    fn no_limit_is_the_most_room() {
        let slots = [slot("a", Some(100)), slot("b", None), slot("c", None)];
        assert_eq!(choose(&slots, &placed(&[("b", 1000)])), Some("b"));
        assert_eq!(slots[1].room(7), None);
        assert_eq!(slots[0].room(7), Some(93));
    }
}
