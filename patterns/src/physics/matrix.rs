//! A placement's latency matrix: the one-way delay of every link.

use std::time::Duration;

use super::geo::{City, find_city, great_circle_km, one_way_floor};
use crate::{Error, Result};

/// Sites in one matrix at most: a placement is a handful of regions, and
/// the matrix grows as the square of its sites.
pub const MAX_SITES: usize = 16;

/// Route factors above this are a typo, not a cable.
const MAX_ROUTE_FACTOR: f64 = 10.0;

/// One-way latencies between the sites of a placement: site `i` is
/// simulated host `n{i+1}`.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyMatrix {
    sites: Vec<City>,
    route_factor: f64,
}

impl LatencyMatrix {
    /// The floor matrix for these cities (names from [`super::CITIES`]),
    /// in order; each city may appear once.
    pub fn from_sites<S: AsRef<str>>(names: &[S]) -> Result<Self> {
        if names.is_empty() || names.len() > MAX_SITES {
            return Err(Error::InvalidPlacement {
                reason: format!("{} sites; a placement has 1..={MAX_SITES}", names.len()),
            });
        }
        let mut sites: Vec<City> = Vec::with_capacity(names.len());
        for name in names {
            let city = find_city(name.as_ref())?;
            if sites.iter().any(|site| site.name == city.name) {
                return Err(Error::InvalidPlacement {
                    reason: format!("{} appears twice", city.name),
                });
            }
            sites.push(city);
        }
        Ok(Self {
            sites,
            route_factor: 1.0,
        })
    }

    /// Real cables are longer than the great circle: every link is
    /// `factor` times its floor (1.0 is the floor itself).
    pub fn with_route_factor(mut self, factor: f64) -> Result<Self> {
        if !(1.0..=MAX_ROUTE_FACTOR).contains(&factor) {
            return Err(Error::InvalidPlacement {
                reason: format!("route factor {factor} is outside 1.0..={MAX_ROUTE_FACTOR}"),
            });
        }
        self.route_factor = factor;
        Ok(self)
    }

    pub fn sites(&self) -> &[City] {
        &self.sites
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The great-circle distance between sites `a` and `b`, km.
    pub fn distance_km(&self, a: usize, b: usize) -> f64 {
        great_circle_km(&self.sites[a], &self.sites[b])
    }

    /// The floor under the one-way delay from `a` to `b` (route factor 1).
    pub fn floor(&self, a: usize, b: usize) -> Duration {
        one_way_floor(self.distance_km(a, b))
    }

    /// The modelled one-way delay from `a` to `b`: the floor times the
    /// route factor.
    pub fn one_way(&self, a: usize, b: usize) -> Duration {
        self.floor(a, b).mul_f64(self.route_factor)
    }

    /// The modelled round trip between `a` and `b`.
    pub fn rtt(&self, a: usize, b: usize) -> Duration {
        self.one_way(a, b) * 2
    }

    /// Every link once, `(a, b, one-way delay)` with `a < b`: what a
    /// simulation needs (`Simulation::set_latency(&node(a + 1), &node(b + 1), delay)`).
    pub fn links(&self) -> impl Iterator<Item = (usize, usize, Duration)> + '_ {
        (0..self.len())
            .flat_map(move |a| (a + 1..self.len()).map(move |b| (a, b, self.one_way(a, b))))
    }
}
