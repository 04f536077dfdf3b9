//! The Universal Scalability Law itself: the model, its peak, Amdahl's
//! special case. Pure numbers, no IO; fitting it is in [`mod@super::fit`].

/// One measurement: `throughput` (completions per second) with
/// `concurrency` workers (clients in a closed loop, threads, nodes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub concurrency: f64,
    pub throughput: f64,
}

impl Point {
    pub fn new(concurrency: f64, throughput: f64) -> Self {
        Self {
            concurrency,
            throughput,
        }
    }
}

/// Why a model could not be built or fitted. Never a NaN in disguise.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UslError {
    #[error("no points to fit")]
    NoPoints,
    #[error("{count} points exceed the limit of {max}")]
    TooManyPoints { count: usize, max: usize },
    #[error("point {index} (N = {concurrency}, X = {throughput}): {reason}")]
    InvalidPoint {
        index: usize,
        concurrency: f64,
        throughput: f64,
        reason: &'static str,
    },
    #[error("{distinct} distinct concurrency levels; this fit needs at least {needed}")]
    TooFewLevels { distinct: usize, needed: usize },
    #[error("{name} = {value} is out of range: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        reason: &'static str,
    },
    /// The points admit no model with λ > 0, σ ≥ 0, κ ≥ 0 (e.g.
    /// throughput that grows faster than linearly everywhere).
    #[error("the fit is degenerate: {reason}")]
    Degenerate { reason: &'static str },
}

/// The law: `X(N) = λN / (1 + σ(N−1) + κN(N−1))`.
///
/// λ is the throughput of one worker, σ the share of the work that is
/// serialised (contention: queueing for a lock, a disk, a leader), κ the
/// cost of keeping N workers consistent with one another (coherency: each
/// pair exchanges something, so it grows with N(N−1)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usl {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
}

impl Usl {
    /// A model; λ must be positive, σ and κ non-negative, all finite.
    pub fn new(lambda: f64, sigma: f64, kappa: f64) -> Result<Self, UslError> {
        let check = |name, value: f64, ok: bool, reason| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(UslError::InvalidParameter {
                    name,
                    value,
                    reason,
                })
            }
        };
        check("lambda", lambda, lambda > 0.0, "must be positive")?;
        check("sigma", sigma, sigma >= 0.0, "must be at least 0")?;
        check("kappa", kappa, kappa >= 0.0, "must be at least 0")?;
        Ok(Self {
            lambda,
            sigma,
            kappa,
        })
    }

    /// Amdahl's law is the USL without coherency: κ = 0, so throughput
    /// never falls, it only flattens towards λ/σ.
    pub fn amdahl(lambda: f64, sigma: f64) -> Result<Self, UslError> {
        Self::new(lambda, sigma, 0.0)
    }

    /// Predicted throughput with `n` workers.
    pub fn throughput(&self, n: f64) -> f64 {
        self.lambda * self.capacity(n)
    }

    /// Relative capacity C(N) = X(N)/X(1): the speed-up over one worker.
    pub fn capacity(&self, n: f64) -> f64 {
        n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }

    /// The concurrency of peak throughput, N* = √((1−σ)/κ). `None` when
    /// there is no peak: κ = 0 (Amdahl: throughput rises towards λ/σ
    /// forever) or σ ≥ 1 (one worker is already the best).
    pub fn peak_concurrency(&self) -> Option<f64> {
        (self.kappa > 0.0 && self.sigma < 1.0).then(|| ((1.0 - self.sigma) / self.kappa).sqrt())
    }

    /// Throughput at [`Self::peak_concurrency`].
    pub fn peak_throughput(&self) -> Option<f64> {
        self.peak_concurrency().map(|n| self.throughput(n))
    }

    /// Amdahl's ceiling λ/σ, which the USL approaches only when κ = 0.
    pub fn amdahl_ceiling(&self) -> Option<f64> {
        (self.sigma > 0.0).then(|| self.lambda / self.sigma)
    }
}
