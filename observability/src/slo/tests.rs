//! The policies on synthetic counters: exact, no network, days in milliseconds.

use crate::rpc::routes::RouteKind;
use std::time::Duration;

use tonic::Code;

use super::report::{AlertRecorder, Incident};
use super::*;
use crate::metrics::RedMetrics;
use crate::rpc::RpcMethod;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// Requests per minute of the synthetic service.
const RATE: f64 = 1_000.0;
/// Its everyday error ratio: a tenth of the 99.9 % budget.
const BASELINE: f64 = 0.000_1;

fn three_nines() -> Slo {
    Slo::new(0.999, 30 * DAY).expect("the workbook's SLO")
}

/// `[start, end)` at an error ratio.
struct Spell {
    start: Duration,
    end: Duration,
    ratio: f64,
}

/// Feeds `policy` a steady RATE per minute, sampled every minute for
/// `until`, failing BASELINE of requests except during `spells`. Bad
/// requests are accumulated exactly (no randomness): the test is about the
/// policy, not about noise.
fn run(policy: &mut dyn AlertPolicy, spells: &[Spell], until: Duration) -> AlertRecorder {
    let mut recorder = AlertRecorder::default();
    let (mut bad, mut total) = (0.0_f64, 0.0_f64);
    let mut at = Duration::ZERO;
    while at <= until {
        let ratio = spells
            .iter()
            .find(|s| at > s.start && at <= s.end)
            .map_or(BASELINE, |s| s.ratio);
        if !at.is_zero() {
            total += RATE;
            bad += RATE * ratio;
        }
        let (good, all) = ((total - bad.floor()) as u64, total as u64);
        policy.observe(at, good, all).expect("consistent counters");
        recorder.note(at, policy.firing());
        at += MINUTE;
    }
    recorder
}

/// Episodes 32, 36. After three quiet days: a 5-minute blip at 10 %
/// errors (1.2 % of the month's budget), then an outage at 20 % errors for
/// 10 minutes (4.6 %). The workbook policy pages on the outage within its
/// documented detection time (14.4 × 0.1 % × 1 h / 20 % = 4.3 min, plus
/// one sampling minute), clears within its 5-minute short window after,
/// and says nothing about the blip. The single-threshold twin (5 min above
/// 14.4×) pages on the blip too.
#[test]
fn slo_multi_window_pages_on_the_outage_in_time_and_not_on_the_blip() {
    let blip = Spell {
        start: 3 * DAY + 2 * HOUR,
        end: 3 * DAY + 2 * HOUR + 5 * MINUTE,
        ratio: 0.1,
    };
    let outage = Spell {
        start: 3 * DAY + 8 * HOUR,
        end: 3 * DAY + 8 * HOUR + 10 * MINUTE,
        ratio: 0.2,
    };
    let incidents = [Incident {
        name: "outage".into(),
        start: outage.start,
        end: outage.end,
    }];
    let until = 3 * DAY + 12 * HOUR;
    let spells = [blip, outage];

    let mut multi = MultiWindowPolicy::workbook(three_nines()).expect("valid");
    let promised = multi.detection_time(0.2).expect("a 200x burn pages");
    assert_eq!(promised.as_secs(), 259, "14.4 x 0.001 x 3600 s / 0.2");
    let score = run(&mut multi, &spells, until).score(&incidents, MINUTE);
    let outage_score = score.incident("outage").expect("scored");
    let detected = outage_score.detected_after.expect("the outage pages");
    assert!(detected <= promised + MINUTE, "{detected:?} > {promised:?}");
    assert!(
        outage_score.cleared_after.expect("clears") <= 5 * MINUTE + MINUTE,
        "{outage_score:?}"
    );
    assert_eq!(score.false_alarms, vec![], "the blip spent under 2 %");

    let mut naive = NaiveThresholdPolicy::new(three_nines(), 5 * MINUTE, 14.4).expect("valid");
    let score = run(&mut naive, &spells, until).score(&incidents, MINUTE);
    let missed = score
        .incident("outage")
        .and_then(|s| s.detected_after)
        .is_none();
    assert!(
        !score.false_alarms.is_empty() || missed,
        "the single threshold got both right: {score:?}"
    );
    assert_eq!(score.false_alarms, vec![3 * DAY + 2 * HOUR + MINUTE]);
}

/// Episode 32. A slow leak at 2x burn (0.2 % errors) for two days: the
/// workbook's ticket fires within its promise (1x over 3 days: 1.5 days
/// in), and no page wakes anyone. The single 5-minute threshold at 14.4x
/// never notices a leak that would empty the budget in 15 days.
#[test]
fn slo_multi_window_tickets_a_slow_leak_the_single_threshold_misses() {
    let leak = Spell {
        start: 3 * DAY,
        end: 5 * DAY,
        ratio: 0.002,
    };
    let incidents = [Incident {
        name: "leak".into(),
        start: leak.start,
        end: leak.end,
    }];
    let until = 5 * DAY + 7 * HOUR;

    let mut multi = MultiWindowPolicy::workbook(three_nines()).expect("valid");
    let promised = multi.detection_time(0.002).expect("2x burn tickets");
    assert!(
        (promised.as_secs_f64() - 36.0 * 3600.0).abs() < 1.0,
        "{promised:?}"
    );
    let recorder = run(&mut multi, std::slice::from_ref(&leak), until);
    assert!(
        multi.firing_rules().next().is_none(),
        "cleared after the fix"
    );
    let score = recorder.score(&incidents, 6 * HOUR);
    let leak_score = score.incident("leak").expect("scored");
    let detected = leak_score.detected_after.expect("the leak tickets");
    // The baseline spent a little budget too, so it is a bit early.
    assert!(
        detected <= promised + MINUTE && detected > 30 * HOUR,
        "{detected:?}"
    );
    assert_eq!((leak_score.alerts, score.false_alarms.len()), (1, 0));
    assert!(leak_score.cleared_after.expect("clears") <= 6 * HOUR + MINUTE);

    let mut naive = NaiveThresholdPolicy::new(three_nines(), 5 * MINUTE, 14.4).expect("valid");
    let score = run(&mut naive, &[leak], until).score(&incidents, 6 * HOUR);
    assert_eq!(score.alerts, 0, "{score:?}");
}

/// Episode 32. The promises, in the workbook's own numbers.
#[test]
fn slo_workbook_policy_promises_the_workbook_numbers() {
    let policy = MultiWindowPolicy::workbook(three_nines()).expect("valid");
    let spent: Vec<f64> = policy
        .rules()
        .iter()
        .map(|r| (r.budget_spent(&policy.slo()) * 1000.0).round() / 10.0)
        .collect();
    assert_eq!(spent, [2.0, 5.0, 10.0], "percent of the budget per rule");
    assert!((policy.quiet_budget() - 0.02).abs() < 1e-12);
    assert_eq!(policy.reset_time(), 6 * HOUR);
    let full_outage = policy.detection_time(1.0).expect("pages");
    assert_eq!(full_outage.as_millis(), 51_840, "0.864 minutes");
    assert_eq!(policy.detection_time(0.001), None, "1x burn never fires");
}

/// Episode 32. A freshly started policy does not page on its first hour
/// of 100 % errors until the hour is covered; then it does at once.
#[test]
fn slo_rules_wait_until_history_covers_their_long_window() {
    let mut policy = MultiWindowPolicy::workbook(three_nines()).expect("valid");
    let mut fired_at = None;
    for minute in 0..=90u32 {
        let at = MINUTE * minute;
        let total = u64::from(minute) * 100;
        let changes = policy.observe(at, 0, total).expect("consistent");
        if fired_at.is_none() && !changes.is_empty() {
            fired_at = Some(at);
        }
    }
    assert_eq!(fired_at, Some(HOUR));
}

/// Bad input: every absurd SLO, rule or sample is a typed error.
#[test]
fn slo_rejects_absurd_input_with_typed_errors() {
    for target in [1.0, 0.0, -0.5, 1.5, f64::NAN, 1.0 - 1e-17] {
        assert!(
            matches!(Slo::new(target, DAY), Err(SloError::TargetOutOfRange(_))),
            "{target}"
        );
    }
    assert!(matches!(
        Slo::new(0.99, Duration::ZERO),
        Err(SloError::PeriodOutOfRange { .. })
    ));
    let slo = three_nines();
    let rule = |long, short, burn| BurnRateRule::new("r", Severity::Page, long, short, burn);
    let cases = [
        (rule(Duration::ZERO, MINUTE, 2.0), "ZeroWindow"),
        (rule(HOUR, Duration::ZERO, 2.0), "ZeroWindow"),
        (rule(HOUR, HOUR, 2.0), "ShortWindowNotShorter"),
        (rule(40 * DAY, HOUR, 2.0), "WindowBeyondPeriod"),
        (rule(HOUR, MINUTE, 0.0), "BurnRateOutOfRange"),
        (rule(HOUR, MINUTE, f64::INFINITY), "BurnRateOutOfRange"),
        (rule(HOUR, MINUTE, 1000.0), "UnreachableThreshold"),
    ];
    for (rule, variant) in cases {
        let err = MultiWindowPolicy::new(slo, vec![rule]).expect_err(variant);
        assert!(format!("{err:?}").starts_with(variant), "{err:?}");
    }
    let ninety = Slo::new(0.9, 30 * DAY).expect("valid");
    assert!(matches!(
        MultiWindowPolicy::workbook(ninety),
        Err(SloError::UnreachableThreshold { .. })
    ));
    assert!(matches!(
        MultiWindowPolicy::new(slo, vec![]),
        Err(SloError::RuleCount { got: 0, .. })
    ));
    assert!(matches!(
        MultiWindowPolicy::new(slo, vec![rule(HOUR, MINUTE, 2.0); MAX_RULES + 1]),
        Err(SloError::RuleCount { .. })
    ));
    assert!(matches!(
        NaiveThresholdPolicy::new(slo, Duration::ZERO, 1.0),
        Err(SloError::ZeroWindow { .. })
    ));

    let mut policy = MultiWindowPolicy::workbook(slo).expect("valid");
    policy.observe(HOUR, 90, 100).expect("first sample");
    let refused = [
        policy.observe(MINUTE, 95, 110),
        policy.observe(2 * HOUR, 80, 110),
        policy.observe(2 * HOUR, 95, 99),
        policy.observe(2 * HOUR, 120, 110),
        policy.observe(2 * HOUR, 105, 106),
    ];
    assert!(matches!(
        refused[0],
        Err(SloError::TimeWentBackwards { .. })
    ));
    assert!(matches!(
        refused[1],
        Err(SloError::CounterWentBackwards {
            counter: "good",
            ..
        })
    ));
    assert!(matches!(
        refused[2],
        Err(SloError::CounterWentBackwards {
            counter: "total",
            ..
        })
    ));
    assert!(matches!(refused[3], Err(SloError::GoodExceedsTotal { .. })));
    assert!(matches!(
        refused[4],
        Err(SloError::GoodOutpacesTotal { good: 15, total: 6 })
    ));
    assert!(
        policy.observe(2 * HOUR, 95, 110).is_ok(),
        "a refused sample leaves the history usable"
    );
}

/// Bounds: sampled every second for four days, a 3-day history holds at
/// most MAX_SAMPLES samples, and its 1-hour window is still right to
/// within one merge interval.
#[test]
fn slo_history_stays_bounded_however_often_it_is_sampled() {
    let mut history = CounterHistory::new(3 * DAY);
    let seconds = 4 * 86_400u64;
    for s in 0..=seconds {
        // One request a second; every tenth fails.
        let bad = s / 10;
        let sample = Sample {
            at: Duration::from_secs(s),
            good: s - bad,
            total: s,
        };
        history.record(sample).expect("consistent");
        assert!(history.len() <= MAX_SAMPLES);
    }
    let hour = history.window(HOUR).expect("covered");
    let slack = history.spacing().as_secs() + 1;
    assert!(
        hour.total >= 3_600 && hour.total <= 3_600 + slack,
        "{hour:?}"
    );
    assert!((hour.error_ratio() - 0.1).abs() < 0.002, "{hour:?}");
    assert!(history.window(3 * DAY).is_some());
    assert!(history.window(4 * DAY).is_none(), "beyond the horizon");
}

/// Episode 32. The SLI from RED counters: server faults spend budget,
/// a client's own mistakes do not.
#[test]
fn slo_red_counts_only_server_faults_as_bad() {
    let metrics = RedMetrics::for_routes([
        ("pkg.Svc/Get".to_owned(), RouteKind::Unary),
        ("pkg.Svc/Put".to_owned(), RouteKind::Unary),
    ]);
    let (get, put) = (
        RpcMethod::from_path("/pkg.Svc/Get"),
        RpcMethod::from_path("/pkg.Svc/Put"),
    );
    for code in [Code::Ok, Code::Ok, Code::NotFound, Code::Unavailable] {
        metrics.record(&get, code, Duration::ZERO);
    }
    for code in [
        Code::Internal,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
    ] {
        metrics.record(&put, code, Duration::ZERO);
    }
    assert_eq!(
        red::read(&metrics, Some("pkg.Svc/Get")),
        WindowCounts { good: 3, total: 4 }
    );
    assert_eq!(
        red::read(&metrics, None),
        WindowCounts { good: 4, total: 7 }
    );
    assert_eq!(
        red::read(&metrics, Some("pkg.Svc/Nope")),
        WindowCounts { good: 0, total: 0 }
    );
}
