//! Who serves each request in a progressive cutover: the primary, or the
//! candidate for the share of clients its weight gives. The proxy asks on
//! every request, so the answer is one atomic load per request at weight 0
//! and a hash of the client's key above it; weights can change while
//! serving (a plan's step, a rollback, the kill switch) without a lock.
//!
//! Cohorts are sticky and nested: with a `sticky_key` a client's draw is a
//! stable hash of its key (salted apart from the sampling draw), admitted
//! below the weight, so a client served at 5% is served at 25%. Without a
//! key each request draws anew.
//!
//! `sync` keeps the weights shared: every instance on one database applies
//! the stored weights every second (or 0 for all while the kill file
//! exists), and moves each route along its plan, its gate decided from the
//! store.

mod command;
mod live;
pub mod remote;
mod sync;

pub use command::{Command, CommandError};
pub use sync::{Cutover, ROUTE_DEFAULT};

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, Method};

use crate::config::{Fallback, Settings, Writes};
use crate::sampling::{StickyKey, Weight};

/// Which backend answers a client: the gate's sides, one type for both.
pub use crate::gate::Side;

/// The serving weights and what they did.
#[derive(Debug)]
pub struct Rollout {
    /// Each weight's percent as f64 bits: the default first, then each route's.
    weights: Vec<AtomicU64>,
    /// Each weight's name in the store and the API: `*`, then each route's `match`.
    keys: Vec<String>,
    /// The weights the settings give, in the same order.
    configured: Vec<Weight>,
    writes: Vec<Writes>,
    sticky: Option<StickyKey>,
    fallback: Fallback,
    served: [AtomicU64; 2],
    fallbacks: AtomicU64,
}

impl Rollout {
    /// The weights the settings give; a route without one has the default's.
    pub fn new(settings: &Settings) -> Rollout {
        let default = settings.weight;
        let configured: Vec<Weight> = std::iter::once(default)
            .chain(settings.routes.iter().map(|r| r.weight.unwrap_or(default)))
            .collect();
        let weights = configured
            .iter()
            .map(|w| AtomicU64::new(w.percent().to_bits()))
            .collect();
        let keys = std::iter::once(ROUTE_DEFAULT.to_string())
            .chain(settings.routes.iter().map(|r| r.pattern.to_string()))
            .collect();
        let writes = std::iter::once(settings.writes)
            .chain(
                settings
                    .routes
                    .iter()
                    .map(|r| r.writes.unwrap_or(settings.writes)),
            )
            .collect();
        Rollout {
            weights,
            keys,
            configured,
            writes,
            sticky: settings.sticky_key.clone(),
            fallback: settings.fallback,
            served: Default::default(),
            fallbacks: AtomicU64::new(0),
        }
    }

    fn slot(&self, route: Option<usize>) -> usize {
        route.map_or(0, |i| i + 1).min(self.weights.len() - 1)
    }

    /// The weight of a route (`None`: requests no route matches).
    pub fn weight(&self, route: Option<usize>) -> Weight {
        let bits = self.weights[self.slot(route)].load(Ordering::Relaxed);
        Weight::new(f64::from_bits(bits)).unwrap_or(Weight::ZERO)
    }

    /// Each weight's slot by its name: `*` or a route's `match`.
    pub fn slot_of(&self, key: &str) -> Option<Option<usize>> {
        let i = self.keys.iter().position(|k| k == key)?;
        Some(i.checked_sub(1))
    }

    /// Every weight's name, the default's (`*`) first, then each route's.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The weight the settings give a route.
    pub fn configured(&self, route: Option<usize>) -> Weight {
        self.configured[self.slot(route)]
    }

    /// Sets a route's weight; every request from now on is decided by it.
    pub fn set_weight(&self, route: Option<usize>, weight: Weight) {
        self.weights[self.slot(route)].store(weight.percent().to_bits(), Ordering::Relaxed);
    }

    /// Who serves this request of `route`.
    pub fn serves(
        &self,
        route: Option<usize>,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Side {
        let weight = self.weight(route);
        if weight.percent() <= 0.0 {
            return Side::Primary;
        }
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && self.writes[self.slot(route)] == Writes::Primary {
            return Side::Primary;
        }
        let draw = match self.sticky.as_ref().and_then(|k| k.find(headers, query)) {
            Some(key) => Weight::draw(key),
            None => rand::random::<u64>(),
        };
        match weight.admits(draw) {
            true => Side::Candidate,
            false => Side::Primary,
        }
    }

    /// Whether a failed candidate's safe request goes to the primary.
    pub fn falls_back(&self) -> bool {
        self.fallback == Fallback::Primary
    }

    /// Counts a request served (after any fallback) by `side`.
    pub fn count_served(&self, side: Side) {
        self.served[side as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a safe request the primary answered after the candidate failed.
    pub fn count_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests served by the primary and by the candidate, and fallbacks.
    pub fn served(&self) -> (u64, u64, u64) {
        (
            self.served[0].load(Ordering::Relaxed),
            self.served[1].load(Ordering::Relaxed),
            self.fallbacks.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rollout(weight: f64) -> Rollout {
        let mut settings = Settings::new("http://a".parse().unwrap(), "http://b".parse().unwrap());
        settings.sticky_key = Some("header:x-user-id".parse().unwrap());
        settings.weight = Weight::new(weight).unwrap();
        Rollout::new(&settings)
    }

    fn user(id: u32) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-user-id",
            HeaderValue::from_str(&format!("user-{id}")).unwrap(),
        );
        h
    }

    #[test]
    fn cohorts_are_sticky_nested_and_the_weights_share() {
        let r = rollout(5.0);
        let served = |r: &Rollout| -> Vec<bool> {
            (0..10_000)
                .map(|id| r.serves(None, &Method::GET, &user(id), None) == Side::Candidate)
                .collect()
        };
        let at5 = served(&r);
        // Sticky: the same decision every time.
        assert_eq!(at5, served(&r));
        let share = at5.iter().filter(|s| **s).count() as f64 / 100.0;
        assert!((share - 5.0).abs() < 1.0, "{share}%");
        r.set_weight(None, Weight::new(25.0).unwrap());
        let at25 = served(&r);
        let share = at25.iter().filter(|s| **s).count() as f64 / 100.0;
        assert!((share - 25.0).abs() < 1.0, "{share}%");
        assert!(at5
            .iter()
            .zip(&at25)
            .all(|(five, quarter)| !five || *quarter));
        r.set_weight(None, Weight::ZERO);
        assert!(served(&r).iter().all(|s| !s));
    }

    #[test]
    fn the_served_are_not_the_sampled() {
        // At 10% each, about 1% of clients are both sampled and served.
        let r = rollout(10.0);
        let sampler = crate::sampling::Sampler::new(Some("header:x-user-id".parse().unwrap()));
        let rate: crate::sampling::SampleRate = "0.1".parse().unwrap();
        let both = (0..10_000)
            .filter(|id| {
                let h = user(*id);
                sampler.decide(rate, &h, None)
                    && r.serves(None, &Method::GET, &h, None) == Side::Candidate
            })
            .count();
        assert!((50..150).contains(&both), "{both}");
    }

    #[test]
    fn writes_can_stay_on_the_primary() {
        let mut settings = Settings::new("http://a".parse().unwrap(), "http://b".parse().unwrap());
        settings.weight = Weight::new(100.0).unwrap();
        settings.writes = Writes::Primary;
        let r = Rollout::new(&settings);
        let h = HeaderMap::new();
        assert_eq!(r.serves(None, &Method::GET, &h, None), Side::Candidate);
        assert_eq!(r.serves(None, &Method::POST, &h, None), Side::Primary);
    }
}
