// Segmented window reduction (cpu::segmented_reduce). One thread per
// (channel, segment): it folds the segment's rows strictly in input order,
// so count/min/max are exact and sum/mean bit-identical to the CPU reference
// (with --fmad=false). Output index t = channel * n_segments + segment.

extern "C" __global__ void segmented_reduce(const u32* __restrict__ rows,
                                            const u32* __restrict__ seg_offsets,
                                            u32 n_segments,
                                            const double* __restrict__ channels,
                                            u32 n_channels,
                                            u64 n_rows,
                                            u32* __restrict__ count,
                                            double* __restrict__ sum,
                                            double* __restrict__ mean,
                                            double* __restrict__ mn,
                                            double* __restrict__ mx) {
    u64 t = (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x;
    if (t >= (u64)n_segments * (u64)n_channels) return;
    u64 c = t / n_segments;
    u32 s = (u32)(t % n_segments);
    const double* col = channels + c * n_rows;
    u32 n = 0;
    double acc = 0.0, lo = PW_INF, hi = -PW_INF;
    for (u32 k = seg_offsets[s]; k < seg_offsets[s + 1]; ++k) {
        double v = col[rows[k]];
        if (v != v) continue;
        n += 1;
        acc = acc + v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    count[t] = n;
    if (n == 0) {
        sum[t] = PW_NAN;
        mean[t] = PW_NAN;
        mn[t] = PW_NAN;
        mx[t] = PW_NAN;
    } else {
        sum[t] = acc;
        mean[t] = acc / (double)n;
        mn[t] = lo;
        mx[t] = hi;
    }
}

// The product statistic: per segment, sum of factor * (a * b) over rows where
// a * b is not NaN, in input order.
extern "C" __global__ void segmented_product(const u32* __restrict__ rows,
                                             const u32* __restrict__ seg_offsets,
                                             u32 n_segments,
                                             const double* __restrict__ a,
                                             const double* __restrict__ b,
                                             double factor,
                                             u32* __restrict__ count,
                                             double* __restrict__ sum) {
    u32 s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= n_segments) return;
    u32 n = 0;
    double acc = 0.0;
    for (u32 k = seg_offsets[s]; k < seg_offsets[s + 1]; ++k) {
        u32 r = rows[k];
        double p = a[r] * b[r];
        if (p != p) continue;
        n += 1;
        acc = acc + factor * p;
    }
    count[s] = n;
    sum[s] = n == 0 ? PW_NAN : acc;
}
