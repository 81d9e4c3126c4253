//! The command line: global options and every command's arguments.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use stats::{Config, Tracker, Weekday};

use crate::error::{CliError, CliResult};
use crate::store::{DEFAULT_STORE, Stores};

/// Application statistics on the database you already run: count events into every time
/// bucket at once, keep counters, and query, import and serve them.
///
/// ```
/// use clap::Parser;
/// use stats_cli::cli::{Cli, Command};
/// let cli = Cli::try_parse_from(["stats", "--store", "memory:", "--tz", "Europe/Berlin", "values", "orders", "-g", "1d"])?;
/// assert!(matches!(cli.command, Command::Values(_)));
/// assert_eq!(cli.global.config()?.granularity_list().len(), 7);
/// // Options are checked before a store is opened, naming the option.
/// let bad = Cli::try_parse_from(["stats", "--tz", "Mars/Base", "setup"])?;
/// assert!(bad.global.config().unwrap_err().to_string().starts_with("--tz: "));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Parser)]
#[command(name = "stats", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The store: sqlite://FILE, memory:, redis://HOST, rediss://HOST, a comma-separated list
    /// of Redis Cluster nodes, postgres://..., mysql://..., mongodb://...
    #[arg(long, global = true, env = "STATS_STORE", default_value = DEFAULT_STORE, hide_env_values = true)]
    pub store: String,
    /// The store's own name prefix, to share a server: the Redis key prefix, the SQL table
    /// prefix, the MongoDB collection (default: the store's own, `stats`).
    #[arg(long, global = true, env = "STATS_PREFIX")]
    pub prefix: Option<String>,
    /// The IANA time zone whose wall clock the buckets follow (a day starts at midnight there).
    #[arg(long, global = true, env = "STATS_TZ", default_value = "UTC")]
    pub tz: String,
    /// The first day of a week, for `w` granularities.
    #[arg(long, global = true, env = "STATS_WEEK_START", default_value = "monday", value_parser = parse_weekday)]
    pub week_start: Weekday,
    /// The granularities every write goes to, comma-separated (`<n><unit>`, unit one of
    /// s m h d w mo q y).
    #[arg(
        long,
        global = true,
        env = "STATS_GRANULARITIES",
        default_value = "1m,1h,1d,1w,1mo,1q,1y",
        value_delimiter = ','
    )]
    pub granularities: Vec<String>,
}

fn parse_weekday(text: &str) -> Result<Weekday, String> {
    let days = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];
    let lower = text.trim().to_ascii_lowercase();
    days.iter()
        .find(|(name, _)| lower.len() >= 3 && name.starts_with(&lower))
        .map(|(_, day)| *day)
        .ok_or_else(|| format!("{text:?} is not a day of the week (monday ... sunday)"))
}

impl Global {
    /// The tracker configuration these options give (the system index is on: it lists the
    /// metric keys for `stats metrics` and `GET /v1/metrics`). Checked before any store is
    /// opened.
    ///
    /// # Errors
    /// [`CliError::Input`] for an unknown zone or a bad granularity, naming the option.
    pub fn config(&self) -> CliResult<Config> {
        let config = Config::new()
            .time_zone(&self.tz)
            .map_err(|e| CliError::input(format!("--tz: {e}")))?
            .week_start(self.week_start)
            .granularities(&self.granularities)
            .map_err(|e| CliError::input(format!("--granularities: {e}")))?
            .system_index(true);
        Ok(config)
    }

    /// Checks the options, then opens the store.
    ///
    /// # Errors
    /// As [`Global::config`] and [`Stores::open`].
    pub async fn context(&self) -> CliResult<Context> {
        let config = self.config()?;
        let stores = Stores::open_with(&self.store, self.prefix.as_deref()).await?;
        Ok(Context { stores, config })
    }
}

/// An opened store with the tracker configuration.
#[derive(Debug, Clone)]
pub struct Context {
    /// The store.
    pub stores: Stores,
    /// The tracker configuration.
    pub config: Config,
}

impl Context {
    /// A tracker writing straight to the store.
    pub fn tracker(&self) -> Tracker {
        Tracker::new(Arc::clone(&self.stores.metrics), self.config.clone())
    }

    /// The zone of the buckets.
    pub fn zone(&self) -> &jiff::tz::TimeZone {
        self.config.calendar().time_zone()
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the store's tables and indexes (idempotent; SQLite and memory: need none).
    Setup,
    /// Count an event: add its values into every granularity's bucket.
    Track(TrackArgs),
    /// Set values: replace them in every granularity's bucket (the latest write wins).
    Assert(AssertArgs),
    /// Print a metric's series.
    Values(ValuesArgs),
    /// List the metric keys the store has seen (from the system index).
    Metrics(MetricsArgs),
    /// Plain counters with namespaces.
    #[command(subcommand)]
    Counter(CounterCommand),
    /// Throttles: "at most once per TTL".
    #[command(subcommand)]
    Throttle(ThrottleCommand),
    /// Import events from a JSON-lines file (`-` for standard input), through the write buffer.
    Import(ImportArgs),
    /// Write a realistic week of a shop's orders and show them.
    Demo(DemoArgs),
    /// Serve the HTTP JSON API and the dashboard.
    Serve(ServeArgs),
}

/// `stats track`.
#[derive(Debug, Args)]
pub struct TrackArgs {
    /// The metric key.
    pub key: String,
    /// The values as JSON, such as '{"count": 1, "amount": 49.9}'.
    #[arg(long)]
    pub values: String,
    /// When it happened (default now): unix seconds, RFC 3339, a date, or -2h.
    #[arg(long, allow_hyphen_values = true)]
    pub at: Option<String>,
    /// inc (add, the default), set, max or min.
    #[arg(long, default_value = "inc")]
    pub op: String,
}

/// `stats assert`.
#[derive(Debug, Args)]
pub struct AssertArgs {
    /// The metric key.
    pub key: String,
    /// The values as JSON.
    #[arg(long)]
    pub values: String,
    /// When (default now): unix seconds, RFC 3339, a date, or -2h.
    #[arg(long, allow_hyphen_values = true)]
    pub at: Option<String>,
}

/// How `stats values` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table, one row per bucket, one column per value path.
    Table,
    /// The JSON series document (see the README).
    Json,
    /// CSV with a header row.
    Csv,
    /// A chart of one path in the terminal.
    Chart,
}

/// `stats values`.
#[derive(Debug, Args)]
pub struct ValuesArgs {
    /// The metric key.
    pub key: String,
    /// The first instant (default: 23 buckets before --to); the series starts at the bucket
    /// holding it.
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// The last instant (default now), included.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// The granularity of the buckets (need not be one of --granularities).
    #[arg(long, short, default_value = "1h")]
    pub granularity: String,
    /// table, json, csv or chart.
    #[arg(long, short, value_enum, default_value = "table")]
    pub format: Format,
    /// The value path to chart (default: `count`, or the only path).
    #[arg(long)]
    pub path: Option<String>,
}

/// `stats metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The first instant (default: 30 days before --to).
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// The last instant (default now).
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// table or json.
    #[arg(long, short, value_enum, default_value = "table")]
    pub format: ListFormat,
}

/// How a listing prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
}

/// `stats counter ...`.
#[derive(Debug, Subcommand)]
pub enum CounterCommand {
    /// Add to a counter (created at --default first) and print the new value.
    Inc {
        /// The namespace.
        namespace: String,
        /// The counter.
        key: String,
        /// The step (may be negative).
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        by: i64,
        /// The value a missing counter starts from.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        default: i64,
    },
    /// Print a counter's value (exit code 3 when it does not exist).
    Get {
        /// The namespace.
        namespace: String,
        /// The counter.
        key: String,
    },
    /// Set a counter.
    Set {
        /// The namespace.
        namespace: String,
        /// The counter.
        key: String,
        /// The value.
        #[arg(allow_negative_numbers = true)]
        value: i64,
    },
    /// Compare and swap: set NEW only if the counter holds EXPECTED (a missing counter holds
    /// 0); exit code 3 and the current value when it does not.
    Cas {
        /// The namespace.
        namespace: String,
        /// The counter.
        key: String,
        /// The value it must hold.
        #[arg(allow_negative_numbers = true)]
        expected: i64,
        /// The value to set.
        #[arg(allow_negative_numbers = true)]
        new: i64,
    },
    /// List a namespace's counters.
    List {
        /// The namespace.
        namespace: String,
        /// table or json.
        #[arg(long, short, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Delete a counter (exit code 3 when it did not exist).
    Delete {
        /// The namespace.
        namespace: String,
        /// The counter.
        key: String,
    },
    /// Delete every counter of a namespace; prints how many.
    DeleteNamespace {
        /// The namespace.
        namespace: String,
    },
    /// The namespaces and how many counters each holds.
    Info {
        /// table or json.
        #[arg(long, short, value_enum, default_value = "table")]
        format: ListFormat,
    },
}

/// `stats throttle ...`.
#[derive(Debug, Subcommand)]
pub enum ThrottleCommand {
    /// Take the throttle KEY for TTL unless someone holds it: exit code 0 and `acquired`, or
    /// exit code 3 and `held`.
    Acquire {
        /// The throttle.
        key: String,
        /// How long it is held: 30s, 5m, 1h 30m, 2d.
        #[arg(long, allow_hyphen_values = true)]
        ttl: String,
    },
}

/// What `stats import` does with a line it cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    /// Report it (with its line number) on standard error and go on.
    Skip,
    /// Report it and stop (lines before it are written).
    Fail,
}

/// When `stats import` shows a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// On a terminal only.
    Auto,
    /// Always (on standard error).
    Always,
    /// Never.
    Never,
}

/// `stats import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSON-lines file, or `-` for standard input.
    pub file: PathBuf,
    /// What to do with a bad line.
    #[arg(long, value_enum, default_value = "skip")]
    pub on_error: OnError,
    /// When to show a progress bar.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
}

/// `stats demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many days of orders, ending now.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// The seed of the random orders (the same seed writes the same orders).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `stats serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (127.0.0.1: this machine only; 0.0.0.0 exposes the API to the
    /// network: give it a --token then).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A bearer token every request must carry (`Authorization: Bearer <token>`).
    #[arg(long, env = "STATS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_body: usize,
    /// The most events in one `POST /v1/track`.
    #[arg(long, default_value_t = 10_000)]
    pub max_batch: usize,
    /// Also keep the server's own metrics (the ones `GET /metrics` shows: requests by route
    /// and status, their durations, events tracked, the write buffer) as history in the served
    /// store, under the keys `stats_http_requests_total`, `stats_http_request_duration_seconds`,
    /// `stats_events_tracked_total`, `stats_buffer_pending` and `stats_buffer_flushed_total`.
    /// Without it nothing of them is written to the store.
    #[arg(long)]
    pub record_metrics: bool,
}
