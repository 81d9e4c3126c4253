//! The baseline of `stats import`'s benchmark: the library's buffered tracker writing the same
//! events, parsed beforehand (not timed), into the same kind of store with the same settings.
//!
//! ```text
//! cargo run --release -p stats-cli --example import_baseline -- sqlite:///tmp/base.db big.jsonl
//! ```

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use stats::Fields;
use stats::buffer::{BufferedTracker, Coalescing};
use stats_cli::cli::Cli;
use stats_cli::contract::Event;

// The allocator of the `stats` binary, so that the two are compared on the same footing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, store, file] = args.as_slice() else {
        return Err("usage: import_baseline STORE FILE".into());
    };
    let cli = Cli::parse_from(["stats", "--store", store, "import", file]);
    let cx = cli.global.context().await?;
    let now = stats::Timestamp::now();
    let text = std::fs::read_to_string(file)?;
    let mut events = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let event = Event::parse(line, now)?;
        let fields = Fields::from_values(&event.values)?;
        events.push((event, fields));
    }
    let started = Instant::now();
    let tracker = BufferedTracker::with(
        Arc::clone(&cx.stores.metrics),
        cx.config.clone(),
        Coalescing::default(),
    )?;
    for (event, fields) in &events {
        tracker
            .write(event.op, &event.key, event.at, fields)
            .await?;
    }
    let unwritten = tracker.shutdown().await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "library buffered tracker: {} events in {secs:.2} s ({:.0} events/s), {} batches unwritten",
        events.len(),
        events.len() as f64 / secs,
        unwritten.len()
    );
    Ok(())
}
