//! SLO burn-rate alerting: page on what spends the error budget, not on
//! every bad five minutes.
//!
//! Episode: 32, "Metrics & Monitoring" (also 36)
//! Pattern: observability / SLO, multi-window multi-burn-rate alerts
//! Try it:  cargo run -- demo slo-burn --svg target/figures
//! Test it: cargo test -p observability slo_
//!
//! An SLO — 99.9 % of requests good over 30 days — turns "is it healthy?"
//! into arithmetic: the error budget is the 0.1 % of requests allowed to
//! fail, and the *burn rate* is how fast the current error ratio spends it
//! (1× spends it exactly in 30 days, 14.4× in two). Alerts follow the
//! budget: a fast burn pages a human now, a slow one opens a ticket. The
//! SRE workbook's chapter "Alerting on SLOs" walks through the alerts
//! everyone writes first and how each fails, ending at the policy built
//! here ([`MultiWindowPolicy::workbook`]): page at 14.4× over 1 h *and*
//! 5 min (2 % of the budget gone), page at 6× over 6 h *and* 30 min (5 %),
//! ticket at 1× over 3 days *and* 6 h (10 %). The long window makes an
//! alert significant; the short one makes it stop within minutes of the
//! fix. [`NaiveThresholdPolicy`] is the twin everyone starts with: one
//! short window, one threshold, which pages on a harmless blip or misses
//! a slow leak — whichever way its threshold is set.
//!
//! What the policy promises, on a clean history (and each is a function,
//! so a test can hold it to it):
//! - detection: a constant error ratio `e` fires the rule with threshold
//!   `k` after `k × budget × long / e` ([`MultiWindowPolicy::detection_time`];
//!   a full outage of a 99.9 % SLO pages in 52 s);
//! - quiet: a blip spending less than [`MultiWindowPolicy::quiet_budget`]
//!   of the budget (2 %: e.g. 100 % errors for 52 s, or 10 % for 8 min)
//!   alerts nobody;
//! - reset: an alert stops at most [`MultiWindowPolicy::reset_time`] (its
//!   short window) after the errors do.
//!
//! Each holds to within one sampling interval: a policy only sees the
//! counters when [`AlertPolicy::observe`] is called.
//!
//! The pure core takes cumulative good/total counters and the time they
//! were read — `observe(t, good_total, all_total)` — and returns the
//! alerts that started or stopped; [`red`] reads those counters from a
//! server's RED metrics. [`report`] scores a run against the incidents
//! that were scripted into it.
//!
//! Bounds: each policy keeps at most [`MAX_SAMPLES`] samples (under
//! 200 KiB), merging samples closer than its longest window / 8,184 (32 s
//! for 3 days), and at most [`MAX_RULES`] rules; an [`report::AlertRecorder`]
//! keeps at most [`report::MAX_TRANSITIONS`] alerts. Absurd input — a
//! target of 1 or 0, zero or inverted windows, a threshold no error ratio
//! can reach, counters or time going backwards — is a typed [`SloError`],
//! never a panic.
//!
//! Simplified: one SLI (availability, from status codes); latency SLOs
//! alert the same way on "requests slower than X" counters. A restarted
//! server's counters start over: here that is an error (start a new
//! history), where Prometheus's `increase()` detects the reset and adds.

mod core;
mod naive;
mod policy;
pub mod red;
pub mod report;

pub use core::{
    CounterHistory, MAX_PERIOD, MAX_RULE_NAME, MAX_RULES, MAX_SAMPLES, Sample, Slo, SloError,
    WindowCounts,
};
pub use naive::NaiveThresholdPolicy;
pub use policy::{AlertChange, AlertPolicy, BurnRateRule, MultiWindowPolicy, Severity};

#[cfg(test)]
mod tests;
