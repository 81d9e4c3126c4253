//! `stats demo`: a realistic few days of a shop's orders, written into the store and shown.
//!
//! ```text
//! $ stats demo                      # 7 days into ./stats.db (created), then a chart and a table
//! $ stats demo --days 30 --seed 7   # a month, other random orders
//! $ stats --store redis://127.0.0.1 demo
//! ```
//!
//! What it writes, through the write buffer ([`BufferedTracker`]), for `--days` days ending
//! now:
//!
//! - `shop.orders`: one event per order, `{"count": 1, "revenue": 42.5, "items": 2,
//!   "channel": {"web": 1}}` (channels `web`, `app`, `phone`), a few thousand orders a day
//!   with a daily rhythm (night lows, a lunch and an evening peak) and busier, later-starting
//!   weekends, in the wall clock of `--tz`;
//! - `shop.inventory`: the units in stock, set (`op` `set`) at the end of every hour,
//!   restocked every morning at 6;
//! - the counters `orders_total` and `items_total` in the namespace `shop`.
//!
//! The orders are random from `--seed`: the same seed draws the same orders relative to now.
//! Running the demo again adds another set of orders on top of what the store holds (the
//! output says so, with the count it found before); use another `--store` to start afresh.
//!
//! Then it prints, from what the store holds: a chart of orders per hour over the range, a
//! table of orders, revenue and items per day with the totals, and commands to explore
//! further.

use std::fmt::Write as _;
use std::sync::Arc;

use comfy_table::{CellAlignment, Table, presets};
use jiff::{SignedDuration, Timestamp};
use stats::buffer::{BufferedTracker, Coalescing};
use stats::{Blanks, Fields, Granularity, Number, Op, Series, Unit};

use crate::chart;
use crate::cli::{Context, DemoArgs};
use crate::commands::number_f64;
use crate::error::{CliError, CliResult};
use crate::store::DEFAULT_STORE;

/// The metric of the orders.
pub const ORDERS: &str = "shop.orders";

/// The metric of the stock (a gauge, set every hour).
pub const INVENTORY: &str = "shop.inventory";

/// The namespace of the demo's counters.
pub const NAMESPACE: &str = "shop";

/// The most days one run writes.
pub const MAX_DAYS: u32 = 366;

/// Orders in an average hour of a weekday, before the rhythm.
const BASE_PER_HOUR: f64 = 140.0;

/// The weekday rhythm, per hour of the day (a weight around 1).
const WEEKDAY: [f64; 24] = [
    0.15, 0.10, 0.07, 0.05, 0.05, 0.08, 0.20, 0.45, 0.70, 0.85, 0.95, 1.20, 1.60, 1.45, 1.00,
    0.90, 0.95, 1.10, 1.40, 1.80, 1.90, 1.50, 0.90, 0.45,
];

/// The units in stock after the morning restock.
const RESTOCK: i64 = 20_000;

/// The channels and their shares.
const CHANNELS: [(&str, f64); 3] = [("web", 0.58), ("app", 0.32), ("phone", 0.10)];

/// Runs `stats demo`.
///
/// # Errors
/// [`CliError::Input`] for `--days` outside 1 to [`MAX_DAYS`], or granularities without `1h`
/// and `1d`; [`CliError::Failed`] when the store fails or refuses writes.
pub async fn run(cx: &Context, args: &DemoArgs) -> CliResult<String> {
    if args.days == 0 || args.days > MAX_DAYS {
        return Err(CliError::input(format!(
            "--days: {} is not a number of days from 1 to {MAX_DAYS}",
            args.days
        )));
    }
    let hour = Granularity::new(1, Unit::Hour).map_err(CliError::from)?;
    let day = Granularity::new(1, Unit::Day).map_err(CliError::from)?;
    let tracked = cx.config.granularity_list();
    if !tracked.contains(&hour) || !tracked.contains(&day) {
        return Err(CliError::input(
            "--granularities: the demo shows orders per hour and per day: include 1h and 1d",
        ));
    }
    let now = Timestamp::now();
    let start = now
        .checked_sub(SignedDuration::from_hours(24 * i64::from(args.days)))
        .map_err(|e| CliError::input(format!("--days: {e}")))?;

    let before = total_count(&read(cx, start, now, day).await?);

    let refused = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let on_refused = Arc::clone(&refused);
    let settings = Coalescing::default().on_refused(move |batch, error| {
        if let Ok(mut all) = on_refused.lock() {
            all.push(format!("{} leaf updates: {error}", batch.len()));
        }
    });
    let tracker = BufferedTracker::with(Arc::clone(&cx.stores.metrics), cx.config.clone(), settings)
        .map_err(|e| CliError::failed(format!("cannot start the write buffer: {e}")))?;
    let written = write_orders(cx, &tracker, args.seed, start, now).await;
    let unwritten = tracker.shutdown().await;
    let written = written?;
    if !unwritten.is_empty() {
        return Err(CliError::failed(format!(
            "{} batches could not be written to the store {}",
            unwritten.len(),
            cx.stores.shown()
        )));
    }
    if let Some(first) = refused.lock().ok().and_then(|r| r.first().cloned()) {
        return Err(CliError::failed(format!("the store refused writes: {first}")));
    }
    let counters = &cx.stores.counters;
    counters
        .inc(NAMESPACE, "orders_total", written.orders, 0)
        .await?;
    counters
        .inc(NAMESPACE, "items_total", written.items, 0)
        .await?;

    let hours = read(cx, start, now, hour).await?;
    let days = read(cx, start, now, day).await?;
    let mut out = String::new();
    let points: Vec<_> = hours
        .iter()
        .map(|(at, v)| (at, v.number_at("count").map(number_f64)))
        .collect();
    out.push_str(&chart::render(
        &format!("{ORDERS}: orders per hour, last {} days", args.days),
        &points,
        cx.zone(),
        chart::Size::terminal(),
    ));
    out.push('\n');
    out.push_str(&day_table(&days, cx));
    out.push('\n');
    let _ = writeln!(
        out,
        "\nWrote {} orders ({} items, revenue {:.2}) of the last {} days (seed {}) into {}: \
         {ORDERS} (count, revenue, items, channel.web/app/phone), {INVENTORY} (units, set \
         every hour) and the counters {NAMESPACE}/orders_total and {NAMESPACE}/items_total.",
        written.orders,
        written.items,
        written.revenue,
        args.days,
        args.seed,
        cx.stores.shown(),
    );
    if before > 0 {
        let _ = writeln!(
            out,
            "The store already held {before} orders of {ORDERS} in this range: this run added \
             another set on top (every run adds one; use another --store to start afresh)."
        );
    }
    let stats = if cx.stores.shown() == DEFAULT_STORE {
        "stats".to_owned()
    } else {
        format!("stats --store '{}'", cx.stores.shown())
    };
    let _ = write!(
        out,
        "\nExplore further:\n  {stats} values {ORDERS} -g 1d\n  {stats} values {ORDERS} -g 1h \
         --format chart --path revenue\n  {stats} values {INVENTORY} -g 1h\n  {stats} counter \
         list {NAMESPACE}\n  {stats} serve    # the HTTP API and a dashboard on \
         http://127.0.0.1:8080/\n"
    );
    Ok(out)
}

/// What one run wrote.
#[derive(Debug, Default)]
struct Written {
    orders: i64,
    items: i64,
    revenue: f64,
}

/// Writes the orders from `start` to `end`, hour by hour, and the stock at each hour's end.
async fn write_orders(
    cx: &Context,
    tracker: &BufferedTracker,
    seed: u64,
    start: Timestamp,
    end: Timestamp,
) -> CliResult<Written> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let zone = cx.zone();
    let mut written = Written::default();
    let mut stock = RESTOCK;
    // A busier or quieter day, drawn once per calendar day.
    let mut day_factor = (jiff::civil::Date::MIN, 1.0);
    let mut from = start;
    while from < end {
        let to = from
            .checked_add(SignedDuration::from_hours(1))
            .map_or(end, |t| t.min(end));
        let span = (to.as_second() - from.as_second()).max(1);
        let local = from.to_zoned(zone.clone());
        if day_factor.0 != local.date() {
            day_factor = (local.date(), 0.85 + 0.3 * rng.f64());
        }
        if local.hour() == 6 {
            stock = RESTOCK;
        }
        let weekend = matches!(
            local.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        );
        let rate = BASE_PER_HOUR
            * rhythm(local.hour(), weekend)
            * day_factor.1
            * (span as f64 / 3600.0);
        let orders = (rate * (0.85 + 0.3 * rng.f64())).round() as i64;
        let mut times: Vec<i64> = (0..orders)
            .map(|_| from.as_second() + rng.i64(0..span))
            .collect();
        times.sort_unstable();
        for second in times {
            let at = Timestamp::from_second(second).map_err(|e| CliError::failed(e.to_string()))?;
            let items = match rng.u8(0..100) {
                0..=54 => 1,
                55..=79 => 2,
                80..=91 => 3,
                92..=97 => 4,
                _ => 6,
            };
            let revenue = (0..items)
                .map(|_| 6.0 + 54.0 * rng.f64() * rng.f64())
                .sum::<f64>();
            let revenue = (revenue * 100.0).round() / 100.0;
            let pick = rng.f64();
            let mut share = 0.0;
            let channel = CHANNELS
                .iter()
                .find(|(_, s)| {
                    share += s;
                    pick < share
                })
                .map_or("web", |(name, _)| name);
            let fields = Fields::from_pairs([
                ("count".to_owned(), Number::Int(1)),
                ("revenue".to_owned(), Number::Float(revenue)),
                ("items".to_owned(), Number::Int(items)),
                (format!("channel.{channel}"), Number::Int(1)),
            ])?;
            tracker.write(Op::Inc, ORDERS, at, &fields).await?;
            written.orders += 1;
            written.items += items;
            written.revenue += revenue;
            stock = (stock - items).max(0);
        }
        let last = Timestamp::from_second(to.as_second() - 1).unwrap_or(from);
        let units = Fields::from_pairs([("units", Number::Int(stock))])?;
        tracker.write(Op::Set, INVENTORY, last, &units).await?;
        from = to;
    }
    Ok(written)
}

/// The weight of an hour of the day.
fn rhythm(hour: i8, weekend: bool) -> f64 {
    let weight = WEEKDAY[usize::try_from(hour).unwrap_or(0) % 24];
    if !weekend {
        return weight;
    }
    // Weekends start later and go on longer: a quieter morning, a busier afternoon.
    match hour {
        6..=10 => weight * 0.6,
        14..=22 => weight * 1.35,
        _ => weight * 1.1,
    }
}

async fn read(
    cx: &Context,
    from: Timestamp,
    to: Timestamp,
    granularity: Granularity,
) -> CliResult<Series> {
    Ok(cx
        .tracker()
        .values(ORDERS, from, to, granularity, Blanks::Keep)
        .await?)
}

fn total_count(series: &Series) -> i64 {
    series
        .iter()
        .filter_map(|(_, v)| match v.number_at("count") {
            Some(Number::Int(n)) => Some(n),
            _ => None,
        })
        .sum()
}

/// Orders, revenue and items per day (the day in the zone's wall clock), and the totals.
fn day_table(days: &Series, cx: &Context) -> String {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(vec!["day", "orders", "revenue", "items"]);
    let int = |v: &stats::Values, path: &str| match v.number_at(path) {
        Some(Number::Int(n)) => n,
        Some(Number::Float(f)) => f as i64,
        None => 0,
    };
    let (mut orders, mut revenue, mut items) = (0_i64, 0.0_f64, 0_i64);
    for (at, v) in days.iter() {
        let local = at.to_zoned(cx.zone().clone());
        let r = v.number_at("revenue").map_or(0.0, number_f64);
        table.add_row(vec![
            local.strftime("%Y-%m-%d %a").to_string(),
            int(v, "count").to_string(),
            format!("{r:.2}"),
            int(v, "items").to_string(),
        ]);
        orders += int(v, "count");
        revenue += r;
        items += int(v, "items");
    }
    table.add_row(vec![
        "total".to_owned(),
        orders.to_string(),
        format!("{revenue:.2}"),
        items.to_string(),
    ]);
    for column in 1..=3 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("{ORDERS} per day\n{table}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rhythm_has_night_lows_and_evening_peaks() {
        assert!(rhythm(3, false) < 0.1);
        assert!(rhythm(12, false) > rhythm(10, false));
        assert!(rhythm(20, false) > rhythm(16, false));
        assert!(rhythm(8, true) < rhythm(8, false));
        assert!(rhythm(17, true) > rhythm(17, false));
        let day: f64 = (0..24).map(|h| rhythm(h, false)).sum::<f64>() * BASE_PER_HOUR;
        assert!((2_000.0..5_000.0).contains(&day), "{day} orders a weekday");
    }
}
