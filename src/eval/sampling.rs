//! Count samplers for the synthetic streams: Poisson and negative binomial (a Poisson
//! whose rate is itself Gamma-distributed: over-dispersed, as error counts are when
//! errors come in small storms). Written out because the project has no distribution
//! crate and needs only these.

use rand::Rng;

/// A Poisson draw with mean `mean` (≤ 0 gives 0).
pub fn poisson<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> u64 {
    if mean <= 0.0 || !mean.is_finite() {
        0
    } else if mean < 10.0 {
        poisson_by_products(rng, mean)
    } else {
        poisson_by_transformed_rejection(rng, mean)
    }
}

/// A negative binomial draw with mean `mean` and size `size` (variance `mean + mean²/size`).
pub fn negative_binomial<R: Rng + ?Sized>(rng: &mut R, mean: f64, size: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    let rate = gamma(rng, size, mean / size);
    poisson(rng, rate)
}

/// Knuth: count uniforms until their product falls under e^-mean. O(mean), exact.
fn poisson_by_products<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> u64 {
    let limit = (-mean).exp();
    let mut count = 0;
    let mut product: f64 = rng.random();
    while product > limit {
        count += 1;
        product *= rng.random::<f64>();
    }
    count
}

/// Hörmann's PTRS (transformed rejection with squeeze, 1993): O(1) for large means.
fn poisson_by_transformed_rejection<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> u64 {
    let b = 0.931 + 2.53 * mean.sqrt();
    let a = -0.059 + 0.02483 * b;
    let inverse_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let squeeze = 0.9277 - 3.6224 / (b - 2.0);
    let log_mean = mean.ln();
    loop {
        let u = rng.random::<f64>() - 0.5;
        let v: f64 = rng.random();
        let us = 0.5 - u.abs();
        if us <= 0.0 {
            continue;
        }
        let k = ((2.0 * a / us + b) * u + mean + 0.43).floor();
        if us >= 0.07 && v <= squeeze {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let accept = v.ln() + inverse_alpha.ln() - (a / (us * us) + b).ln();
        if accept <= -mean + k * log_mean - ln_factorial(k as u64) {
            return k as u64;
        }
    }
}

/// ln(k!): exact sum for small k, Stirling's series (error < 1e-12) beyond.
fn ln_factorial(k: u64) -> f64 {
    if k < 20 {
        return (2..=k).map(|i| (i as f64).ln()).sum();
    }
    let n = k as f64;
    n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
        - 1.0 / (360.0 * n.powi(3))
        + 1.0 / (1260.0 * n.powi(5))
}

/// A Gamma draw (shape, scale) by Marsaglia and Tsang's method (2000).
pub fn gamma<R: Rng + ?Sized>(rng: &mut R, shape: f64, scale: f64) -> f64 {
    if shape < 1.0 {
        // Gamma(a) = Gamma(a + 1) · U^(1/a): the method itself needs a ≥ 1.
        let boost = rng.random::<f64>().powf(1.0 / shape);
        return gamma(rng, shape + 1.0, scale) * boost;
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v * scale;
        }
    }
}

/// Box–Muller; one of the pair is enough here.
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln(0) would be -inf
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn moments(draws: impl Iterator<Item = f64>) -> (f64, f64) {
        let values: Vec<f64> = draws.collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, variance)
    }

    // Seeded, so these never flake; the tolerances are ~5 standard errors anyway.
    #[test]
    fn poisson_has_mean_and_variance_equal_to_its_rate() {
        let mut rng = StdRng::seed_from_u64(7);
        for rate in [0.05, 3.0, 9.9, 10.0, 40.0, 250.0] {
            let (mean, variance) = moments((0..40_000).map(|_| poisson(&mut rng, rate) as f64));
            let tolerance = 5.0 * (rate / 40_000.0).sqrt();
            assert!((mean - rate).abs() < tolerance, "rate {rate}: mean {mean}");
            assert!(
                (variance / rate - 1.0).abs() < 0.05,
                "rate {rate}: variance {variance}"
            );
        }
    }

    #[test]
    fn negative_binomial_is_over_dispersed_as_specified() {
        let mut rng = StdRng::seed_from_u64(8);
        for (target, size) in [(5.0, 2.0), (30.0, 10.0), (0.5, 0.8)] {
            let draws = (0..60_000).map(|_| negative_binomial(&mut rng, target, size) as f64);
            let (mean, variance) = moments(draws);
            let expected = target + target * target / size;
            assert!(
                (mean / target - 1.0).abs() < 0.03,
                "mean {mean} for {target}"
            );
            assert!(
                (variance / expected - 1.0).abs() < 0.08,
                "variance {variance}"
            );
        }
    }

    #[test]
    fn stirling_agrees_with_the_exact_sum_where_they_meet() {
        let exact: f64 = (2..=25u64).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(25) - exact).abs() < 1e-10);
    }
}
