//! The statistics behind a verdict: the normal quantile, the Wilson score
//! interval of parity, and how many more comparisons would decide. Pure
//! arithmetic, checked against published values.

/// The standard normal quantile function (Acklam's rational approximation,
/// relative error below 1.2e-9), for 0 < p < 1.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.024_25;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The Wilson score interval of a proportion: `successes` out of `n`, with
/// the normal quantile `z`. `(0, 1)` when there is nothing to go on.
pub fn wilson_interval(successes: f64, n: f64, z: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let p = (successes / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The least number of comparisons at parity `p` that would decide: pass
/// (lower bound reaches `min`) when `p` is above it, fail (upper bound
/// below it) when under. `None` when no amount would.
pub fn comparisons_to_decide(p: f64, min: f64, z: f64) -> Option<u64> {
    let decided = |n: u64| {
        let (lo, hi) = wilson_interval(p * n as f64, n as f64, z);
        if p > min {
            lo >= min
        } else {
            hi < min
        }
    };
    const MAX: u64 = 1 << 40;
    if p == min || !decided(MAX) {
        return None;
    }
    let (mut low, mut high) = (1u64, MAX);
    while low < high {
        let mid = low + (high - low) / 2;
        if decided(mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    Some(low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Confidence;

    #[test]
    fn the_normal_quantile_matches_tables() {
        for (p, z) in [
            (0.975, 1.959_963_984_540_054),
            (0.95, 1.644_853_626_951_472),
            (0.995, 2.575_829_303_548_9),
            (0.9995, 3.290_526_731_491_926),
            (0.5, 0.0),
            (0.01, -2.326_347_874_040_841),
        ] {
            assert!((normal_quantile(p) - z).abs() < 1e-8, "p={p}");
        }
    }

    #[test]
    fn wilson_bounds_match_known_values() {
        let z = Confidence::default().z();
        // Reference values from the closed form in double precision
        // (as R's prop.test(correct = FALSE) prints them).
        for (s, n, lo, hi) in [
            (10.0, 10.0, 0.722_467_200_137, 1.0),
            (81.0, 263.0, 0.255_288_519_878, 0.366_209_576_983),
            (999.0, 1000.0, 0.994_357_441_402, 0.999_823_453_629),
            (19_990.0, 20_000.0, 0.999_079_777_125, 0.999_728_378_855),
            (20.0, 20.0, 0.838_874_841_947, 1.0),
            (0.0, 10.0, 0.0, 0.277_532_799_863),
        ] {
            let (l, h) = wilson_interval(s, n, z);
            assert!(
                (l - lo).abs() < 1e-9 && (h - hi).abs() < 1e-9,
                "{s}/{n}: {l} {h}"
            );
        }
        let (l, h) = wilson_interval(50.0, 100.0, "0.99".parse::<Confidence>().unwrap().z());
        assert!((l - 0.375_279_625_045).abs() < 1e-9 && (h - 0.624_720_374_955).abs() < 1e-9);
        assert_eq!(wilson_interval(0.0, 0.0, z), (0.0, 1.0));
    }

    #[test]
    fn a_perfect_score_needs_thousands_of_comparisons_to_pass_at_99_9() {
        let z = Confidence::default().z();
        assert_eq!(comparisons_to_decide(1.0, 0.999, z), Some(3_838));
        assert_eq!(comparisons_to_decide(0.999, 0.999, z), None);
        // Below the minimum, more data confirms the failure.
        let n = comparisons_to_decide(0.99, 0.999, z).unwrap();
        assert!(wilson_interval(0.99 * n as f64, n as f64, z).1 < 0.999);
        assert!(wilson_interval(0.99 * (n - 1) as f64, (n - 1) as f64, z).1 >= 0.999);
    }
}
