//! Records counters and bucketed metrics in the in-process store and prints what it recorded.
//!
//! Run with `cargo run --release --example quickstart`.

use std::sync::Arc;

use stats::atomics::AtomicsStore;
use stats::{Batch, CasOutcome, CounterStore, Granularity, Key, MetricStore, values};

#[tokio::main]
async fn main() -> stats::Result<()> {
    let store = Arc::new(AtomicsStore::new());

    // Counters: namespaces, increments with a default, compare-and-swap.
    for _ in 0..3 {
        store.inc("signups", "eu", 1, 0).await?;
    }
    store.inc("signups", "us", 5, 100).await?;
    let swapped = store.compare_and_swap("signups", "eu", 3, 10).await?;
    assert_eq!(swapped, CasOutcome::Swapped(10));
    println!("counters in namespace \"signups\":");
    for (key, value) in store.get_all("signups").await? {
        println!("  {key:<4} {value}");
    }

    // Metrics: one event counted into an hour bucket and a day bucket in one batch.
    let hour: Granularity = "1h".parse()?;
    let day: Granularity = "1d".parse()?;
    let at = 1_700_000_000_i64; // 2023-11-14T22:13:20Z
    let hour_key = Key::bucket("orders", hour, at - at.rem_euclid(3600))?;
    let day_key = hour_key.with_bucket(day, at - at.rem_euclid(86_400));
    for (count, amount) in [(1, 12.5), (2, 30.0), (1, 7.25)] {
        let mut batch = Batch::new();
        batch.inc(
            [hour_key.clone(), day_key.clone()],
            &values!({"count": count, "amount": amount, "by_region": {"eu": count}}),
        )?;
        batch.max([hour_key.clone()], &values!({"largest": amount}))?;
        store.apply(&batch).await?;
    }
    println!("metric \"orders\":");
    for (key, doc) in [&hour_key, &day_key]
        .into_iter()
        .zip(store.read(&[hour_key.clone(), day_key.clone()]).await?)
    {
        println!("  {key}: {doc}");
    }

    // A throughput figure for the in-process counter path.
    let handle = store.counters().handle("bench", "events", 0)?;
    let started = std::time::Instant::now();
    for _ in 0..1_000_000 {
        handle.inc(1)?;
    }
    let elapsed = started.elapsed();
    println!(
        "1,000,000 increments through a counter handle in {:.1} ms ({:.0} M/s)",
        elapsed.as_secs_f64() * 1e3,
        1.0 / elapsed.as_secs_f64()
    );
    Ok(())
}
