//! Great-circle distance and the round-trip floor it implies.

use std::time::Duration;

use crate::{Error, Result};

/// The speed of light in vacuum, km/s (exact, by the definition of the metre).
pub const LIGHT_KM_PER_SECOND: f64 = 299_792.458;

/// The refractive index of optical fibre's core: light in glass is this
/// many times slower than in vacuum.
pub const FIBRE_REFRACTIVE_INDEX: f64 = 1.47;

/// Light in fibre: c / 1.47 ≈ 203,940 km/s, about 204 km per millisecond.
pub const FIBRE_KM_PER_SECOND: f64 = LIGHT_KM_PER_SECOND / FIBRE_REFRACTIVE_INDEX;

/// The mean Earth radius (IUGG), km. The Earth is an oblate spheroid, so
/// the haversine over a sphere is off by up to 0.5% — far less than the
/// detours real cables take.
pub const EARTH_RADIUS_KM: f64 = 6_371.008_8;

/// A city where a data centre might stand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct City {
    pub name: &'static str,
    /// Degrees north (negative: south).
    pub latitude: f64,
    /// Degrees east (negative: west).
    pub longitude: f64,
}

const fn city(name: &'static str, latitude: f64, longitude: f64) -> City {
    City {
        name,
        latitude,
        longitude,
    }
}

/// Real cities that host cloud regions, with their coordinates.
pub const CITIES: [City; 12] = [
    city("ashburn", 39.0438, -77.4874),
    city("new-york", 40.7128, -74.0060),
    city("san-francisco", 37.7749, -122.4194),
    city("sao-paulo", -23.5505, -46.6333),
    city("london", 51.5074, -0.1278),
    city("dublin", 53.3498, -6.2603),
    city("frankfurt", 50.1109, 8.6821),
    city("mumbai", 19.0760, 72.8777),
    city("singapore", 1.3521, 103.8198),
    city("tokyo", 35.6762, 139.6503),
    city("sydney", -33.8688, 151.2093),
    city("johannesburg", -26.2041, 28.0473),
];

/// The city called `name`, from [`CITIES`].
pub fn find_city(name: &str) -> Result<City> {
    CITIES
        .iter()
        .find(|city| city.name == name)
        .copied()
        .ok_or_else(|| Error::UnknownSite {
            name: name.to_owned(),
            known: CITIES.map(|city| city.name).join(", "),
        })
}

/// The great-circle distance between two cities, km (haversine formula:
/// numerically stable for short distances, where the spherical law of
/// cosines loses digits).
pub fn great_circle_km(a: &City, b: &City) -> f64 {
    let (phi_a, phi_b) = (a.latitude.to_radians(), b.latitude.to_radians());
    let d_phi = phi_b - phi_a;
    let d_lambda = (b.longitude - a.longitude).to_radians();
    let h =
        (d_phi / 2.0).sin().powi(2) + phi_a.cos() * phi_b.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The least time light in fibre needs to cover `km` once.
pub fn one_way_floor(km: f64) -> Duration {
    Duration::from_secs_f64(km.max(0.0) / FIBRE_KM_PER_SECOND)
}

/// The least time a request and its reply need over `km`: there and back.
pub fn rtt_floor(km: f64) -> Duration {
    one_way_floor(2.0 * km)
}
