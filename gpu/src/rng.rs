//! The counter-based random numbers shared by the CPU and CUDA paths.
//!
//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
//! SC'11): a keyed bijection of a 128-bit counter, ten rounds of 32×32→64-bit
//! multiplies and xors. A draw is a pure function of `(seed, counter)`, so a
//! Monte Carlo thread needs no state and no sequence position: the draw for
//! `(run, lap, car, stream)` is the same whichever thread, order or device
//! computes it. `gpu/kernels/philox.cuh` is the same function in CUDA C, using
//! only integer operations, so both paths draw bit-identical numbers.
//!
//! Uniforms and normals are built from the integers with `+`, `−`, `×` only
//! (no `log`/`cos`, whose last bit differs between libm and CUDA's math
//! library): that is what makes the Monte Carlo's CPU/GPU parity exact rather
//! than statistical.

/// Philox4x32 round multipliers and Weyl key increments (the published constants).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// 2⁻³², exact in `f64`.
pub const INV_2_32: f64 = 1.0 / 4_294_967_296.0;

/// √3 rounded to `f64`, written out so CUDA C uses the very same constant.
pub const SQRT_3: f64 = 1.732_050_807_568_877_2;

/// Philox4x32-10 of `ctr` under `key`.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = u64::from(M0) * u64::from(c[0]);
        let p1 = u64::from(M1) * u64::from(c[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The key for a 64-bit seed: its low and high halves.
#[inline]
pub fn seed_key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// A uniform in `[0, 1)` from 32 random bits (exact: `x · 2⁻³²`).
#[inline]
pub fn uniform(x: u32) -> f64 {
    f64::from(x) * INV_2_32
}

/// An approximately standard-normal draw from four 32-bit words: the
/// Irwin–Hall sum of four uniforms, centred and scaled to unit variance,
/// `((u0 + u1) + (u2 + u3) − 2) · √3`. Bounded to ±2√3 ≈ ±3.46, which suits
/// lap-time noise (a lap that is 4σ off is an incident, not noise, and the
/// model handles those separately). The evaluation order is fixed and has no
/// transcendental function, so the CUDA path gets the same bits.
#[inline]
pub fn approx_normal(w: [u32; 4]) -> f64 {
    let s = (uniform(w[0]) + uniform(w[1])) + (uniform(w[2]) + uniform(w[3]));
    (s - 2.0) * SQRT_3
}

/// Draw streams: which counter word 3 a draw uses, so lap noise and race
/// events never share numbers.
pub mod stream {
    /// Per-car lap-time noise.
    pub const LAP_NOISE: u32 = 1;
    /// Race-wide safety-car / VSC events (counter word 2 = [`super::RACE`]).
    pub const RACE_EVENT: u32 = 2;
}

/// The "car" counter word of race-wide draws.
pub const RACE: u32 = 0xFFFF_FFFF;

/// The four words for `(run, lap, car, stream)` under `seed`.
#[inline]
pub fn draw(seed: u64, run: u32, lap: u32, car: u32, stream: u32) -> [u32; 4] {
    philox4x32_10([run, lap, car, stream], seed_key(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123's `kat_vectors` for philox4x32_10.
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let n = 200_000u32;
        let (mut s, mut s2) = (0.0, 0.0);
        for i in 0..n {
            let z = approx_normal(draw(7, i, 3, 5, stream::LAP_NOISE));
            assert!(z.abs() <= 2.0 * SQRT_3);
            s += z;
            s2 += z * z;
        }
        let mean = s / f64::from(n);
        let var = s2 / f64::from(n) - mean * mean;
        // Standard errors: mean 1/sqrt(n) = 0.0022, variance ~0.003.
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
        assert!((SQRT_3 * SQRT_3 - 3.0).abs() < 1e-15);
    }

    #[test]
    fn streams_and_seeds_differ() {
        let a = draw(1, 0, 0, 0, stream::LAP_NOISE);
        assert_ne!(a, draw(1, 0, 0, 0, stream::RACE_EVENT));
        assert_ne!(a, draw(2, 0, 0, 0, stream::LAP_NOISE));
        assert_eq!(a, draw(1, 0, 0, 0, stream::LAP_NOISE));
    }
}
