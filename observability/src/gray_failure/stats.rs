//! The statistics a differential detector needs: could this many failures
//! among this group's calls be bad luck at everyone else's failure ratio?

/// An upper bound on the binomial tail P(X ≥ `failures`) for X ~ Bin(`calls`,
/// `p`): the Chernoff bound `exp(-calls × KL(failures/calls ‖ p))`, where
/// KL is the Kullback–Leibler divergence between two Bernoullis. It is 1
/// when the observed ratio is not above `p`.
///
/// Pitfall: the textbook two-proportion z-test leans on the normal
/// approximation, which needs about five expected failures per group; a
/// caller making 40 calls at 1 % expects 0.4. There the z-test calls 6
/// failures out of 40 a 1-in-10¹¹ event when the exact tail is 3 in 10⁶,
/// and a detector built on it alarms every few hours on a healthy fleet.
/// The Chernoff bound never understates the tail, so a p-value below the
/// threshold is a real one, at any sample size.
pub fn binomial_tail_bound(failures: u64, calls: u64, p: f64) -> f64 {
    if calls == 0 || !(p > 0.0 && p < 1.0) {
        return 1.0;
    }
    let observed = failures as f64 / calls as f64;
    if observed <= p {
        return 1.0;
    }
    let mut divergence = observed * (observed / p).ln();
    // At a ratio of 1 the second term is 0 × ln 0, whose limit is 0.
    if observed < 1.0 {
        divergence += (1.0 - observed) * ((1.0 - observed) / (1.0 - p)).ln();
    }
    (-(calls as f64) * divergence).exp()
}

/// The failure ratio of `calls`, smoothed by Laplace's rule of succession
/// ((failures + 1) / (calls + 2)): a rest of the fleet that has not failed
/// yet is not proof that failing is impossible, so one failure elsewhere
/// is not infinitely surprising.
pub fn smoothed_ratio(failures: u64, calls: u64) -> f64 {
    (failures as f64 + 1.0) / (calls as f64 + 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact tail, summed term by term (fine for small `calls`).
    fn exact_tail(failures: u64, calls: u64, p: f64) -> f64 {
        let mut pmf = (1.0 - p).powf(calls as f64);
        let mut tail = if failures == 0 { pmf } else { 0.0 };
        for k in 1..=calls {
            pmf *= (calls - k + 1) as f64 / k as f64 * p / (1.0 - p);
            if k >= failures {
                tail += pmf;
            }
        }
        tail
    }

    #[test]
    fn gray_failure_chernoff_bound_never_understates_the_tail() {
        for calls in [10, 40, 80, 200] {
            for p in [0.001, 0.01, 0.05, 0.3] {
                for failures in 0..=calls {
                    let bound = binomial_tail_bound(failures, calls, p);
                    let exact = exact_tail(failures, calls, p);
                    assert!(bound >= exact * (1.0 - 1e-9), "{failures}/{calls} at {p}");
                }
            }
        }
        // Close enough to be useful: within a factor of 10 at 6 of 40.
        let (bound, exact) = (binomial_tail_bound(6, 40, 0.01), exact_tail(6, 40, 0.01));
        assert!(bound < 10.0 * exact && exact > 2e-6, "{bound} vs {exact}");
        assert_eq!(binomial_tail_bound(1, 100, 0.05), 1.0, "below p");
        assert_eq!(binomial_tail_bound(3, 0, 0.05), 1.0, "no calls");
        assert!(binomial_tail_bound(40, 40, 0.01) < 1e-70, "all failed");
        assert!((smoothed_ratio(0, 98) - 0.01).abs() < 1e-12);
    }
}
