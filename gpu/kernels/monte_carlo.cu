// Race-strategy Monte Carlo (cpu::monte_carlo). One thread per (scenario,
// run); mc_run mirrors cpu::monte_carlo::simulate_one statement for statement
// (see that module for the lap model and the rules). Outputs are per run, so
// no atomics and no order-dependent sums: the host reduces them in run order.

#define MC_MAX_CARS 32
#define MC_FLAG_ACTIVE 1u
#define MC_FLAG_IN_PIT 2u
#define MC_MIN_LAPS_LEFT_TO_STOP 5u

__device__ __forceinline__ void mc_sort(int* order, u32 n, const double* t) {
    for (u32 k = 1; k < n; ++k) {
        int x = order[k];
        u32 j = k;
        while (j > 0 && t[order[j - 1]] > t[x]) {
            order[j] = order[j - 1];
            j -= 1;
        }
        order[j] = x;
    }
}

extern "C" __global__ void monte_carlo(const double* __restrict__ base_s,
                                       const double* __restrict__ start_s,
                                       const u32* __restrict__ compound,
                                       const u32* __restrict__ tyre_age,
                                       const u32* __restrict__ car_flags,
                                       u32 n,
                                       const int* __restrict__ sc_focus,
                                       const int* __restrict__ sc_stop1,
                                       const int* __restrict__ sc_stop2,
                                       u32 n_scenarios,
                                       const double* __restrict__ p,
                                       u32 lap0,
                                       u32 total_laps,
                                       u32 sc_laps_left,
                                       u32 vsc_laps_left,
                                       u32 seed_lo,
                                       u32 seed_hi,
                                       u32 runs,
                                       u32* __restrict__ focus_pos,
                                       double* __restrict__ focus_time,
                                       u32* __restrict__ base_pos) {
    u64 tid = (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x;
    if (tid >= (u64)n_scenarios * (u64)runs) return;
    u32 si = (u32)(tid / runs);
    u32 run = (u32)(tid % runs);
    int focus = sc_focus[si], stop1 = sc_stop1[si], stop2 = sc_stop2[si];

    double t[MC_MAX_CARS];
    double age[MC_MAX_CARS];
    u32 comp[MC_MAX_CARS];
    u32 flags[MC_MAX_CARS];
    int order[MC_MAX_CARS];
    u32 pos[MC_MAX_CARS];
    for (u32 i = 0; i < n; ++i) {
        t[i] = start_s[i];
        age[i] = (double)tyre_age[i];
        comp[i] = compound[i];
        flags[i] = car_flags[i];
        order[i] = (int)i;
    }
    mc_sort(order, n, t);
    u32 sc_left = sc_laps_left, vsc_left = vsc_laps_left;
    for (u32 lap = lap0 + 1; lap <= total_laps; ++lap) {
        bool new_sc = false;
        if (sc_left == 0 && vsc_left == 0) {
            u32 w[4];
            pw_draw(w, seed_lo, seed_hi, run, lap, RNG_RACE, STREAM_RACE_EVENT);
            double u = pw_uniform(w[0]);
            if (u < p[P_P_SC]) {
                sc_left = 3u + w[1] % 3u;
                new_sc = true;
            } else if (u < p[P_P_SC] + p[P_P_VSC]) {
                vsc_left = 1u + w[1] % 2u;
            }
        }
        int mode = sc_left > 0 ? 2 : (vsc_left > 0 ? 1 : 0);
        double lapf = (double)lap;
        bool have_prev = false;
        double prev_t = 0.0;
        for (u32 k = 0; k < n; ++k) {
            int i = order[k];
            if ((flags[i] & MC_FLAG_ACTIVE) == 0) continue;
            u32 c = comp[i];
            double lt = pw_mean_lap(p, base_s[i], c, age[i], lapf);
            u32 w[4];
            pw_draw(w, seed_lo, seed_hi, run, lap, (u32)i, STREAM_LAP_NOISE);
            lt = lt + p[P_NOISE] * pw_approx_normal(w);
            if (mode == 0 && have_prev && t[i] - prev_t < p[P_TRAFFIC_GAP]) {
                lt = lt + p[P_TRAFFIC];
            }
            if (mode == 2) {
                lt = p[P_SC_LAP_S];
            } else if (mode == 1) {
                lt = lt * p[P_VSC_FACTOR];
            }
            have_prev = true;
            prev_t = t[i];
            double pit_factor = mode == 2 ? p[P_SC_PIT_FACTOR] : (mode == 1 ? p[P_VSC_PIT_FACTOR] : 1.0);
            bool pending = (flags[i] & MC_FLAG_IN_PIT) != 0;
            bool stop;
            if (pending) {
                stop = true;
            } else if (focus == i) {
                stop = (int)lap == stop1 || (int)lap == stop2;
            } else {
                stop = age[i] >= p[P_LIFE + c] && total_laps - lap >= MC_MIN_LAPS_LEFT_TO_STOP;
            }
            if (stop) {
                double loss;
                if (pending) {
                    flags[i] &= ~MC_FLAG_IN_PIT;
                    loss = p[P_PIT_LOSS] * 0.5;
                } else {
                    loss = p[P_PIT_LOSS] * pit_factor;
                }
                lt = lt + loss;
                comp[i] = pw_next_compound(comp[i]);
                age[i] = 0.0;
            } else {
                age[i] = age[i] + 1.0;
            }
            t[i] = t[i] + lt;
        }
        if (new_sc) {
            double rank = 0.0, lead = 0.0;
            for (u32 k = 0; k < n; ++k) {
                int i = order[k];
                if ((flags[i] & MC_FLAG_ACTIVE) == 0) continue;
                if (rank == 0.0) {
                    lead = t[i];
                } else {
                    double cap = lead + rank * p[P_SC_GAP_S];
                    if (t[i] > cap) t[i] = cap;
                }
                rank = rank + 1.0;
            }
        }
        if (sc_left > 0) sc_left -= 1;
        if (vsc_left > 0) vsc_left -= 1;
        mc_sort(order, n, t);
    }
    u32 place = 1;
    for (u32 k = 0; k < n; ++k) {
        int i = order[k];
        if ((flags[i] & MC_FLAG_ACTIVE) != 0) pos[i] = place++;
    }
    for (u32 i = 0; i < n; ++i) {
        if ((flags[i] & MC_FLAG_ACTIVE) == 0) pos[i] = place++;
    }
    if (si == 0) {
        for (u32 i = 0; i < n; ++i) base_pos[(u64)run * n + i] = pos[i];
    }
    if (focus >= 0) {
        focus_pos[tid] = pos[focus];
        focus_time[tid] = t[focus];
    } else {
        focus_pos[tid] = 0;
        focus_time[tid] = 0.0;
    }
}
