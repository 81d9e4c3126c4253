//! Records counters and bucketed metrics in the in-process store and prints what it recorded.
//!
//! Run with `cargo run --release --example quickstart`.

use std::sync::Arc;
use std::time::Duration;

use stats::atomics::AtomicsStore;
use stats::series::ExpressionTransponder;
use stats::{
    Blanks, CasOutcome, Config, CounterStore, Retention, Timestamp, Tracker, try_values, values,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Minute buckets are kept for two days, the larger ones forever. Without a retention, a
    // long-running process would keep every minute bucket it ever wrote.
    let retention = Retention::new().keep("1m".parse()?, Duration::from_secs(2 * 86_400))?;
    let store = Arc::new(AtomicsStore::new().retention(retention));

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
    // bucket (on Berlin's wall clock) with one store write.
    let tracker = Tracker::new(store.clone(), Config::new().time_zone("Europe/Berlin")?);
    // Events as they might arrive from outside: the region is runtime data, so the event is
    // built with `try_values!` (an error for a bad name or number), not the panicking
    // `values!`, which is for literals.
    let orders = [
        ("2024-05-01T09:12:00Z", 1, 12.5, "eu"),
        ("2024-05-01T09:48:00Z", 2, 30.0, "us"),
        ("2024-05-01T11:05:00Z", 1, 7.25, "eu"),
        ("2024-05-01T11:59:00Z", 3, 99.0, "eu"),
    ];
    let mut events = Vec::new();
    for (at, count, amount, region) in orders {
        let at: Timestamp = at.parse()?;
        let event = try_values!({"count": count, "amount": amount, "by_region": {region: count}})?;
        let largest = try_values!({"largest": amount})?;
        tracker.track_max("orders", at, &largest).await?;
        events.push((at, event));
    }
    // Many events in one store write.
    tracker
        .track_many(events.iter().map(|(at, event)| ("orders", *at, event)))
        .await?;
    // And one happening now.
    tracker.track_now("visits", &values!({"count": 1})).await?;

    // One range read gives the hourly series, blanks included. `from` and `to` are both
    // inclusive: every bucket an event from 09:00 to 12:00 UTC lands in.
    let from: Timestamp = "2024-05-01T09:00:00Z".parse()?;
    let to: Timestamp = "2024-05-01T12:00:00Z".parse()?;
    let series = tracker
        .values("orders", from, to, "1h".parse()?, Blanks::Keep)
        .await?;
    println!("hourly series of \"orders\" (bucket starts in Europe/Berlin):");
    let zone = tracker.config().calendar().time_zone();
    for (start, doc) in series.at_zoned(zone).iter().zip(&series.values) {
        let shown = if doc.is_empty() {
            "-".to_string()
        } else {
            doc.to_string()
        };
        println!("  {}  {shown}", start.strftime("%Y-%m-%d %H:%M %Z"));
    }
    let day = tracker
        .total("orders", from, from, "1d".parse()?, "count")
        .await?;
    println!(
        "orders that day: {}",
        day.map_or("-".into(), |n| n.to_string())
    );

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
    let total = series.total("count")?;
    let largest = series.max("largest", 1)?;
    println!(
        "orders in the range: {}, largest order: {}",
        total.map_or("-".into(), |n| n.to_string()),
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
