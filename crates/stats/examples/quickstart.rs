//! Records counters and bucketed metrics in the in-process store and prints what it recorded.
//!
//! Run with `cargo run --release --example quickstart`.

use std::sync::Arc;

use stats::atomics::AtomicsStore;
use stats::jiff::Timestamp;
use stats::series::ExpressionTransponder;
use stats::{Blanks, CasOutcome, Config, CounterStore, Tracker, values};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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

    // Metrics: every event counted into its minute, hour, day, week, month, quarter and year
    // bucket (in Berlin time) with one store batch.
    let tracker = Tracker::new(store.clone(), Config::new().time_zone("Europe/Berlin")?);
    let orders = [
        ("2024-05-01T09:12:00Z", 1, 12.5, "eu"),
        ("2024-05-01T09:48:00Z", 2, 30.0, "us"),
        ("2024-05-01T11:05:00Z", 1, 7.25, "eu"),
        ("2024-05-01T11:59:00Z", 3, 99.0, "eu"),
    ];
    for (at, count, amount, region) in orders {
        let at: Timestamp = at.parse()?;
        tracker
            .track(
                "orders",
                at,
                &values!({"count": count, "amount": amount, "by_region": {region: count}}),
            )
            .await?;
        tracker
            .track_max("orders", at, &values!({"largest": amount}))
            .await?;
    }

    // One range read gives the hourly series, blanks included.
    let from: Timestamp = "2024-05-01T09:00:00Z".parse()?;
    let to: Timestamp = "2024-05-01T12:00:00Z".parse()?;
    let series = tracker
        .values("orders", from, to, "1h".parse()?, Blanks::Keep)
        .await?;
    println!("hourly series of \"orders\" (Europe/Berlin):");
    let zone = tracker.config().calendar().time_zone().clone();
    for (at, doc) in series.at.iter().zip(&series.values) {
        let shown = if doc.is_empty() {
            "-".to_string()
        } else {
            doc.to_string()
        };
        println!(
            "  {}  {shown}",
            at.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M %Z")
        );
    }
    let day = tracker
        .values("orders", from, from, "1d".parse()?, Blanks::Keep)
        .await?;
    println!("the day: {}", day.values[0]);

    // Series analytics: an expression per bucket, aggregates, a timeline, categories.
    let mut series = series;
    series.transpond(&ExpressionTransponder::new(
        ["amount", "count"],
        "a / b",
        "per_order",
    )?)?;
    println!("average order value per hour:");
    if let Some(points) = series.timeline("per_order", 1)?.points("per_order") {
        for point in points {
            let shown = point
                .value
                .map_or("-".to_string(), |v| format!("{:.2}", v.as_f64()));
            println!(
                "  {}  {shown}",
                point.at.to_zoned(zone.clone()).strftime("%H:%M")
            );
        }
    }
    let total = series.sum("count", 1)?;
    let largest = series.max("largest", 1)?;
    println!(
        "orders in the range: {}, largest order: {}",
        total[0].map_or("-".into(), |n| n.to_string()),
        largest[0].map_or("-".into(), |n| n.to_string())
    );
    let regions = series.category("by_region.*", 1)?;
    println!("orders by region: {}", serde_json::to_string(&regions)?);

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
