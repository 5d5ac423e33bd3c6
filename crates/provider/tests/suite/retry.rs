//! The retry policy's delays: exponential caps, full jitter over `[0, cap)`, and a provider's
//! own ask taken exactly.

use std::collections::BTreeSet;
use std::time::Duration;

use pod_provider::RetryPolicy;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        budget: Duration::from_secs(60),
    }
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn the_cap_doubles_per_attempt_up_to_max_delay() {
    let p = policy();
    let caps: Vec<Duration> = (1..=7).map(|n| p.backoff_cap(n)).collect();
    assert_eq!(
        caps,
        [
            MS(100),
            MS(200),
            MS(400),
            MS(800),
            MS(1000),
            MS(1000),
            MS(1000)
        ]
    );
    assert_eq!(
        p.backoff_cap(0),
        MS(100),
        "attempt 0 is treated as the first"
    );
    assert_eq!(p.backoff_cap(u32::MAX), MS(1000), "no overflow");
    let unbounded = RetryPolicy {
        max_delay: Duration::MAX,
        ..policy()
    };
    assert!(unbounded.backoff_cap(u32::MAX) > Duration::from_secs(3600));
    // No panic on extreme inputs.
    let _ = unbounded.delay_with_jitter(u32::MAX, None, 0.999_999);
}

#[test]
fn the_jitter_sample_scales_the_cap() {
    let p = policy();
    for attempt in 1..=6 {
        let cap = p.backoff_cap(attempt);
        assert_eq!(p.delay_with_jitter(attempt, None, 0.0), Duration::ZERO);
        assert_eq!(p.delay_with_jitter(attempt, None, 0.5), cap / 2);
        assert_eq!(p.delay_with_jitter(attempt, None, 0.25), cap / 4);
        let top = p.delay_with_jitter(attempt, None, 0.999);
        assert!(top < cap && top >= cap.mul_f64(0.99), "{top:?} vs {cap:?}");
    }
    // Out-of-range samples are clamped into [0, 1).
    assert_eq!(p.delay_with_jitter(2, None, -3.0), Duration::ZERO);
    assert_eq!(p.delay_with_jitter(2, None, f64::NAN), Duration::ZERO);
    assert!(p.delay_with_jitter(2, None, 7.0) < MS(200));
}

#[test]
fn full_jitter_spreads_the_real_delays_over_zero_to_the_cap() {
    let p = policy();
    for attempt in [1, 3, 5] {
        let cap = p.backoff_cap(attempt);
        let delays: Vec<Duration> = (0..1000).map(|_| p.delay(attempt, None)).collect();
        assert!(delays.iter().all(|d| *d < cap), "all below {cap:?}");
        let distinct: BTreeSet<Duration> = delays.iter().copied().collect();
        assert!(distinct.len() > 900, "{} distinct", distinct.len());
        let min = *distinct.first().unwrap();
        let max = *distinct.last().unwrap();
        assert!(min < cap / 10, "min {min:?} of cap {cap:?}");
        assert!(max > cap.mul_f64(0.9), "max {max:?} of cap {cap:?}");
        let mean = delays.iter().sum::<Duration>() / delays.len() as u32;
        assert!(
            mean > cap.mul_f64(0.4) && mean < cap.mul_f64(0.6),
            "mean {mean:?} of cap {cap:?}"
        );
    }
}

#[test]
fn a_provider_ask_is_taken_exactly_whatever_the_jitter_or_cap() {
    let p = policy();
    for jitter in [0.0, 0.5, 0.99] {
        assert_eq!(p.delay_with_jitter(1, Some(1234), jitter), MS(1234));
        assert_eq!(p.delay_with_jitter(4, Some(0), jitter), Duration::ZERO);
    }
    assert_eq!(p.delay(3, Some(60_000)), MS(60_000), "above max_delay too");
    assert_eq!(p.delay(1, Some(7)), MS(7));
}
