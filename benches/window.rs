//! Criterion benches of the window operator and the aggregates.
//!
//! `cargo bench -p pitwall-benches --bench window`
//!
//! * `window_engine/*`: whole chunks through `WindowEngine::process_chunk`
//!   (watermark + late split, partition by car, aggregates, firing) — rows/s.
//! * `aggregates/*`: one aggregate folding a 240-row window run, per kind.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pitwall_benches::{bench_chunks, bench_plan};
use pitwall_engine::aggregate::{AggregateKind, AggregatePlan, AggregateSpec};
use pitwall_engine::{Collector, Schema, WindowEngine, WindowResult};

struct Count(u64);
impl Collector for Count {
    fn window(&mut self, w: WindowResult) {
        self.0 += w.rows;
    }
}

fn window_engine(c: &mut Criterion) {
    let plan = bench_plan();
    let mut g = c.benchmark_group("window_engine");
    for chunk_rows in [4 * 1024, 64 * 1024] {
        let chunks = bench_chunks((480_000 / chunk_rows).max(1), chunk_rows);
        let rows: usize = chunks.iter().map(|c| c.len()).sum();
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_with_input(
            BenchmarkId::new("bench_config", chunk_rows),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    let mut engine = WindowEngine::new(plan.clone());
                    let mut out = Count(0);
                    for ch in chunks {
                        engine
                            .process_chunk(ch, &mut out)
                            .expect("well-formed chunk");
                    }
                    engine.finish(&mut out);
                    black_box(out.0)
                })
            },
        );
    }
    g.finish();
}

fn aggregates(c: &mut Criterion) {
    let schema = Schema::f1_bench();
    let chunk = &bench_chunks(1, 240)[0];
    let mut g = c.benchmark_group("aggregates");
    g.throughput(Throughput::Elements(240));
    let cases: Vec<(&str, AggregateSpec)> = vec![
        ("count", AggregateSpec::new(AggregateKind::Count, None)),
        (
            "mean",
            AggregateSpec::new(AggregateKind::Mean, Some("speed")),
        ),
        ("max", AggregateSpec::new(AggregateKind::Max, Some("speed"))),
        ("min", AggregateSpec::new(AggregateKind::Min, Some("speed"))),
        ("sum", AggregateSpec::new(AggregateKind::Sum, Some("rpm"))),
        (
            "first",
            AggregateSpec::new(AggregateKind::First, Some("gear")),
        ),
        (
            "last",
            AggregateSpec::new(AggregateKind::Last, Some("gear")),
        ),
        (
            "sum_product",
            AggregateSpec::sum_product(&["throttle", "rpm"], 1.0 / 240.0),
        ),
    ];
    for (name, spec) in cases {
        let plan = AggregatePlan::compile(&[spec], &schema).expect("compiles");
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = plan.new_accumulator();
                plan.update(&mut acc, &chunk.ts, &chunk.columns, 0..240);
                black_box(plan.finish(&acc))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, window_engine, aggregates);
criterion_main!(benches);
