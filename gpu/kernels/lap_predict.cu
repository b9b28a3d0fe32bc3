// Lap-time prediction (cpu::lap_predict). One thread per (car, h): the mean
// lap h laps ahead and the error estimate sqrt(noise^2 + var(base)).

extern "C" __global__ void lap_predict(const double* __restrict__ base,
                                       const double* __restrict__ base_var,
                                       const u32* __restrict__ compound,
                                       const u32* __restrict__ tyre_age,
                                       const u32* __restrict__ lap,
                                       u32 n_cars,
                                       u32 horizon,
                                       const double* __restrict__ p,
                                       double* __restrict__ out_mean,
                                       double* __restrict__ out_err) {
    u64 t = (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x;
    if (horizon == 0 || t >= (u64)n_cars * (u64)horizon) return;
    u32 car = (u32)(t / horizon);
    u32 h = (u32)(t % horizon);
    u32 c = compound[car];
    double age = (double)tyre_age[car] + (double)h;
    double l = (double)lap[car] + (double)h;
    out_mean[t] = pw_mean_lap(p, base[car], c, age, l);
    out_err[t] = sqrt(p[P_NOISE] * p[P_NOISE] + base_var[car]);
}
