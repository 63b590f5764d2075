//! Tail probabilities in log space: how surprising is a value under a count model?
//!
//! Every function returns `-ln P` (a *surprise*, in nats) so tiny probabilities of large
//! bursts never underflow, and costs a bounded number of steps (O(1) per point): sums run
//! from the observed value away from the mode and stop once terms are negligible or after
//! [`MAX_TERMS`]; past that, a normal approximation on the variance-stabilised scale takes
//! over, which is accurate exactly where the sum would be long (large means).

/// Longest tail sum; beyond it the normal approximation is used.
const MAX_TERMS: usize = 400;
/// Surprises are capped: beyond this, "impossible" is all we need to know.
pub const MAX_SURPRISE: f64 = 200.0;

/// `ln Γ(x)` for x > 0 (Lanczos, g = 7, n = 9; relative error < 1e-13).
pub fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Surprise of a standard normal value at least `z` (upper tail), `-ln Q(z)`.
pub fn normal_upper(z: f64) -> f64 {
    if z <= 0.0 {
        // Q(z) ≥ 1/2: barely surprising; keep it continuous.
        return -(1.0 - 0.5 * erfc_scaled(-z / std::f64::consts::SQRT_2)).ln();
    }
    let x = z / std::f64::consts::SQRT_2;
    // Q(z) = erfc(x) / 2, with erfc(x) = exp(-x²) · scaled(x): no underflow for large z.
    (x * x - erfc_scaled(x).ln() + std::f64::consts::LN_2).min(MAX_SURPRISE)
}

/// `exp(x²) · erfc(x)` for x ≥ 0 (Chebyshev fit, relative error < 1.2e-7).
fn erfc_scaled(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    t * (-1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
        .exp()
}

/// A count distribution given by its mean and variance: Poisson when the variance does not
/// exceed the mean, negative binomial (Poisson with gamma-distributed rate) when it does.
#[derive(Debug, Clone, Copy)]
pub struct CountModel {
    pub mean: f64,
    pub variance: f64,
}

impl CountModel {
    /// Overdispersion `k` of the negative binomial (variance = mean + mean²/k), or `None`
    /// for Poisson.
    fn dispersion(&self) -> Option<f64> {
        let excess = self.variance - self.mean;
        (excess > 1e-9 * self.mean.max(1e-9)).then(|| self.mean * self.mean / excess)
    }

    fn ln_pmf(&self, x: f64) -> f64 {
        let mean = self.mean.max(1e-12);
        match self.dispersion() {
            None => x * mean.ln() - mean - ln_gamma(x + 1.0),
            Some(k) => {
                ln_gamma(x + k) - ln_gamma(k) - ln_gamma(x + 1.0)
                    + k * (k / (k + mean)).ln()
                    + x * (mean / (k + mean)).ln()
            }
        }
    }

    /// Ratio pmf(x + 1) / pmf(x).
    fn step_up(&self, x: f64) -> f64 {
        let mean = self.mean.max(1e-12);
        match self.dispersion() {
            None => mean / (x + 1.0),
            Some(k) => (x + k) / (x + 1.0) * mean / (k + mean),
        }
    }

    /// Surprise of seeing at least `x` events: `-ln P(X ≥ x)`. Zero when `x` ≤ mean.
    pub fn upper(&self, x: f64) -> f64 {
        let x = x.round();
        if x <= self.mean || x <= 0.0 {
            return 0.0;
        }
        if self.mean > 1_000.0 {
            return self.normal_approximation(x);
        }
        // From x upwards the terms shrink (x is above the mode): sum until negligible.
        let first = self.ln_pmf(x);
        let (mut term, mut sum, mut at) = (1.0, 1.0, x);
        for _ in 0..MAX_TERMS {
            term *= self.step_up(at);
            at += 1.0;
            sum += term;
            if term < sum * 1e-10 {
                return (-(first + sum.ln())).clamp(0.0, MAX_SURPRISE);
            }
        }
        self.normal_approximation(x)
    }

    /// Surprise of seeing at most `x` events: `-ln P(X ≤ x)`. Zero when `x` ≥ mean.
    pub fn lower(&self, x: f64) -> f64 {
        let x = x.round().max(0.0);
        if x >= self.mean {
            return 0.0;
        }
        if x as usize > MAX_TERMS {
            return -self.normal_approximation_signed(x);
        }
        // From 0 up to x every term is below the mode: at most MAX_TERMS of them.
        let mut ln_term = self.ln_pmf(0.0);
        let mut total = ln_term.exp();
        let mut at = 0.0;
        while at < x {
            ln_term += self.step_up(at).ln();
            at += 1.0;
            total += ln_term.exp();
        }
        if total > 0.0 {
            (-total.ln()).clamp(0.0, MAX_SURPRISE)
        } else {
            // Every term underflowed: the first one alone bounds the surprise from above.
            (-(self.ln_pmf(x) + (x + 1.0).ln())).clamp(0.0, MAX_SURPRISE)
        }
    }

    fn normal_approximation(&self, x: f64) -> f64 {
        self.normal_approximation_signed(x).max(0.0)
    }

    /// Anscombe's square-root transform makes counts near-normal with unit variance
    /// (scaled for overdispersion); positive for excess, negative for deficit.
    fn normal_approximation_signed(&self, x: f64) -> f64 {
        let mean = self.mean.max(1e-12);
        let inflation = (self.variance / mean).max(1.0).sqrt();
        let z = 2.0 * ((x + 0.375).sqrt() - (mean + 0.375).sqrt()) / inflation;
        if z >= 0.0 {
            normal_upper(z)
        } else {
            -normal_upper(-z)
        }
    }
}

/// Surprise of at least `failed` failures among `requests` when each fails with
/// probability `p`: `-ln P(X ≥ failed)`, X ~ Binomial(requests, p). Zero at or below the
/// expected number.
pub fn binomial_upper(failed: f64, requests: f64, p: f64) -> f64 {
    let (x, n) = (failed.round(), requests.round());
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    if n <= 0.0 || x <= n * p {
        return 0.0;
    }
    if x >= n && n > 0.0 {
        return (-(n * p.ln())).clamp(0.0, MAX_SURPRISE);
    }
    let ln_pmf = |k: f64| {
        ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
            + k * p.ln()
            + (n - k) * (1.0 - p).ln()
    };
    let first = ln_pmf(x);
    let (mut term, mut sum, mut at) = (1.0, 1.0, x);
    for _ in 0..MAX_TERMS {
        if at >= n {
            break;
        }
        term *= (n - at) / (at + 1.0) * p / (1.0 - p);
        at += 1.0;
        sum += term;
        if term < sum * 1e-10 {
            break;
        }
    }
    (-(first + sum.ln())).clamp(0.0, MAX_SURPRISE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-12)
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut factorial = 1.0f64;
        for n in 1..30 {
            factorial *= n as f64;
            assert!(
                close(ln_gamma(n as f64 + 1.0), factorial.ln(), 1e-12),
                "{n}"
            );
        }
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
    }

    #[test]
    fn poisson_tails_match_direct_sums() {
        let model = CountModel {
            mean: 2.0,
            variance: 2.0,
        };
        // P(X ≥ 5) for Poisson(2) = 1 - Σ_{k<5} e^-2 2^k / k! = 0.052653017...
        assert!(close(
            model.upper(5.0),
            -(0.052_653_017_343_711_2f64).ln(),
            1e-9
        ));
        // P(X ≤ 0) = e^-2 → surprise 2.
        assert!(close(model.lower(0.0), 2.0, 1e-9));
        assert_eq!(
            model.upper(1.0),
            0.0,
            "below the mean is not surprising upwards"
        );
    }

    #[test]
    fn overdispersion_makes_bursts_less_surprising() {
        let poisson = CountModel {
            mean: 10.0,
            variance: 10.0,
        };
        let negative_binomial = CountModel {
            mean: 10.0,
            variance: 40.0,
        };
        assert!(negative_binomial.upper(30.0) < poisson.upper(30.0));
        assert!(negative_binomial.upper(30.0) > 2.0);
    }

    #[test]
    fn huge_bursts_and_means_stay_finite() {
        let model = CountModel {
            mean: 0.01,
            variance: 0.01,
        };
        assert_eq!(model.upper(1.0e6), MAX_SURPRISE);
        let busy = CountModel {
            mean: 1.0e6,
            variance: 1.0e6,
        };
        assert!(busy.upper(1.0e6 + 5_000.0) > 10.0);
        assert!(busy.lower(0.0) >= 50.0);
    }

    #[test]
    fn normal_tail_is_right() {
        // Q(1.96) ≈ 0.025, Q(5) ≈ 2.8665e-7.
        assert!(close(normal_upper(1.96), -(0.024_997_9f64).ln(), 1e-4));
        assert!(close(normal_upper(5.0), -(2.866_515_7e-7f64).ln(), 1e-4));
    }

    #[test]
    fn binomial_tail_matches_direct_sum() {
        // P(X ≥ 3), X ~ Bin(10, 0.1) = 1 - (0.9^10 + 10·0.1·0.9^9 + 45·0.01·0.9^8) = 0.0701908
        assert!(close(
            binomial_upper(3.0, 10.0, 0.1),
            -(0.070_190_8f64).ln(),
            1e-5
        ));
        assert_eq!(binomial_upper(1.0, 10.0, 0.1), 0.0);
    }
}
