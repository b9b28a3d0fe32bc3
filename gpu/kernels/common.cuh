// Shared by every Pitwall kernel: fixed-width types, IEEE constants, the
// Philox4x32-10 counter-based generator and the lap-time model. Each function
// mirrors a Rust function (named in its comment) operation for operation; the
// kernels are compiled with --fmad=false so that `a * b + c` rounds twice, as
// in Rust, and CPU and GPU produce the same bits.

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define PW_NAN __longlong_as_double(0x7ff8000000000000LL)
#define PW_INF __longlong_as_double(0x7ff0000000000000LL)

// 2^-32, exact; sqrt(3) rounded to double (rng::INV_2_32, rng::SQRT_3).
#define PW_INV_2_32 2.3283064365386962890625e-10
#define PW_SQRT_3 1.7320508075688772

// Parameter block indices (model::param).
#define P_DEG 0
#define P_OFFSET 3
#define P_LIFE 6
#define P_CLIFF 9
#define P_FUEL 10
#define P_TRAFFIC 11
#define P_TRAFFIC_GAP 12
#define P_NOISE 13
#define P_PIT_LOSS 14
#define P_P_SC 15
#define P_P_VSC 16
#define P_SC_LAP_S 17
#define P_VSC_FACTOR 18
#define P_SC_PIT_FACTOR 19
#define P_VSC_PIT_FACTOR 20
#define P_SC_GAP_S 21

// Draw streams (rng::stream) and the race-wide "car" word (rng::RACE).
#define STREAM_LAP_NOISE 1u
#define STREAM_RACE_EVENT 2u
#define RNG_RACE 0xFFFFFFFFu

// rng::philox4x32_10
__device__ __forceinline__ void philox4x32_10(u32 c[4], u32 k0, u32 k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        u64 p0 = (u64)0xD2511F53u * (u64)c[0];
        u64 p1 = (u64)0xCD9E8D57u * (u64)c[2];
        u32 hi0 = (u32)(p0 >> 32), lo0 = (u32)p0;
        u32 hi1 = (u32)(p1 >> 32), lo1 = (u32)p1;
        u32 n0 = hi1 ^ c[1] ^ k0;
        u32 n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

// rng::draw
__device__ __forceinline__ void pw_draw(u32 out[4], u32 seed_lo, u32 seed_hi, u32 run, u32 lap,
                                        u32 car, u32 stream) {
    out[0] = run;
    out[1] = lap;
    out[2] = car;
    out[3] = stream;
    philox4x32_10(out, seed_lo, seed_hi);
}

// rng::uniform
__device__ __forceinline__ double pw_uniform(u32 x) { return (double)x * PW_INV_2_32; }

// rng::approx_normal
__device__ __forceinline__ double pw_approx_normal(const u32 w[4]) {
    double s = (pw_uniform(w[0]) + pw_uniform(w[1])) + (pw_uniform(w[2]) + pw_uniform(w[3]));
    return (s - 2.0) * PW_SQRT_3;
}

// model::LapModel::mean_lap_s (and cpu::monte_carlo::mean_lap)
__device__ __forceinline__ double pw_mean_lap(const double* p, double base, u32 c, double age,
                                              double lap) {
    double over = age - p[P_LIFE + c];
    double cliff = over > 0.0 ? p[P_CLIFF] * over : 0.0;
    return (((base + p[P_OFFSET + c]) + p[P_DEG + c] * age) + cliff) + p[P_FUEL] * lap;
}

// model::Compound::next
__device__ __forceinline__ u32 pw_next_compound(u32 c) { return c == 2u ? 1u : 2u; }
