//! NTP's clock-offset estimate, and the error nobody can see.
//!
//! Episode 3. A client stamps its request `t1` (its clock), the server
//! stamps arrival `t2` and reply `t3` (its clock), the client stamps the
//! reply's arrival `t4`. NTP estimates
//!
//! ```text
//! offset = ((t2 - t1) + (t3 - t4)) / 2      (server clock − client clock)
//! delay  =  (t4 - t1) - (t3 - t2)           (round trip minus server time)
//! ```
//!
//! The offset formula assumes the request and the reply took equally
//! long. When they did not — an asymmetric route, a queue one way — the
//! estimate is wrong by exactly half the difference, `(d_out − d_back)/2`,
//! and the four timestamps are the same as for a symmetric path with a
//! different offset: no protocol built on them can tell the two apart.
//! That is why clock error bounds, not exact times, are what a
//! distributed system can rely on (see [`super::truetime`]).

/// What one exchange tells a client about a server's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpEstimate {
    /// Estimated server clock minus client clock, in nanoseconds.
    pub offset_ns: i64,
    /// Round-trip time spent on the network, in nanoseconds.
    pub delay_ns: i64,
}

/// The four timestamps of one exchange, in nanoseconds: `t1`, `t4` on the
/// client's clock, `t2`, `t3` on the server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpExchange {
    pub t1_ns: i64,
    pub t2_ns: i64,
    pub t3_ns: i64,
    pub t4_ns: i64,
}

impl NtpExchange {
    /// The timestamps an exchange produces when the server's clock is
    /// `true_offset_ns` ahead of the client's, the request takes
    /// `out_ns`, the server holds it `hold_ns`, and the reply takes
    /// `back_ns`: what a test or the demo uses to know the truth.
    pub fn simulate(
        t1_ns: i64,
        true_offset_ns: i64,
        out_ns: i64,
        hold_ns: i64,
        back_ns: i64,
    ) -> Self {
        let t2_ns = t1_ns + out_ns + true_offset_ns;
        let t3_ns = t2_ns + hold_ns;
        let t4_ns = t3_ns - true_offset_ns + back_ns;
        Self {
            t1_ns,
            t2_ns,
            t3_ns,
            t4_ns,
        }
    }

    /// NTP's estimate from the four timestamps.
    pub fn estimate(&self) -> NtpEstimate {
        // In i128 throughout, so clocks any distance apart cannot
        // overflow; halving the sum, not each term, keeps odd nanoseconds.
        let [t1, t2, t3, t4] = [self.t1_ns, self.t2_ns, self.t3_ns, self.t4_ns].map(i128::from);
        let clamp = |value: i128| {
            i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
        };
        NtpEstimate {
            offset_ns: clamp(((t2 - t1) + (t3 - t4)).div_euclid(2)),
            delay_ns: clamp((t4 - t1) - (t3 - t2)),
        }
    }
}
