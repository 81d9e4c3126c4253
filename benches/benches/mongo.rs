//! The MongoDB store beside the raw driver on the same server, in the same run.
//!
//! Needs `STATS_BENCH_MONGO_URL` (`cargo xtask bench mongo` starts a throwaway MongoDB-wire
//! server, mongoeco, and sets it). Both sides talk to that server through the same driver
//! (`stats_backend_mongo::mongodb`), ours through [`MongoStore`], raw through a client of its
//! own; every case of ours writes to or reads from a collection set up by
//! [`MongoStore::setup`], and raw writes to a collection of its own with the same unique index.
//! One task sends one command at a time on both sides.
//!
//! The test server is an in-memory server in Python: a few hundred upsert statements per second
//! in `full` mode, and in `partial` and `separated` it checks the compound unique index by
//! scanning the collection, so every statement costs more as the collection grows. Each
//! measured iteration therefore meets the same small collection on both sides: the buckets a
//! batch creates are deleted after it, outside the timed part (otherwise the side criterion
//! gives more iterations per sample would meet a larger collection and look slower), and the
//! tracker's buckets all exist before it is measured. Every group samples flat (criterion's
//! minimum is then 10 iterations per case), and only the ratios mean something: on a shared
//! machine, load that comes and goes between the measurement of ours and that of raw moves a
//! ratio by more than any difference between the two.
//!
//! - `mongo/apply`, cases `<mode>-10x10` (`full`, `partial`, `separated`) and `full-100x10`:
//!   ours is [`MetricStore::apply`] of a batch of bucket-field increments (10 or 100 buckets x
//!   10 integer fields; half of the buckets exist, half are new); raw sends the same upserts in
//!   the same shape: one `update` command through `Database::run_command`, `ordered: false`,
//!   `q` the bucket's identifier in that mode, `u: {$inc: {"data.f0": 1, ...}}`, `upsert: true`.
//!   Both build their batch or command inside the timed part; the new buckets are deleted
//!   after each batch, untimed. Counted in field increments per second; `full-100x10` against
//!   `full-10x10` shows whether the cost per statement stays the same when batches grow.
//! - `mongo/tracker`, cases `<mode>-7-granularities-3-fields`: ours is [`Tracker::track`] of
//!   one event (`{count: 1, amount: 2.5, by: {eu: 1}}`) into the default granularities
//!   (`1m 1h 1d 1w 1mo 1q 1y`: 7 upserts in one command); raw sends the same 7 upserts, their
//!   bucket starts computed beforehand. The events cycle through the 60 minutes of one hour,
//!   whose 66 buckets are written once before the measurement, so every measured statement
//!   updates one of 66 documents. Counted in events per second.
//! - `mongo/range`, cases `<mode>-30-days-at-1h`: ours reads 720 hourly buckets of 4 leaves
//!   each with [`MetricStore::range`]; raw runs the `find` that selects the same documents
//!   (`full`: an `$in` of the 720 keys; `partial` and `separated`: the metric and granularity
//!   and an `at` range) and collects them, without turning them into values. Counted in
//!   buckets per second.
//!
//! After each group the totals are read back from both sides' collections and checked against
//! the number of iterations criterion ran, so a case that wrote nothing cannot pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use futures_util::TryStreamExt;
use stats_backend_mongo::mongodb::bson::{Bson, DateTime, Document, doc};
use stats_backend_mongo::mongodb::options::IndexOptions;
use stats_backend_mongo::mongodb::{Client, Collection, Database, IndexModel};
use stats_backend_mongo::{IdMode, MongoConfig, MongoStore};
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Config, Tracker};
use stats_core::{Batch, Granularity, Key, MetricStore, Number, Values, values};

/// The database every collection of the run lives in.
const DATABASE: &str = "stats_bench";
/// The separator of joined identifiers (the store's default, Trifle's).
const SEP: &str = "::";
/// Integer fields per bucket in `mongo/apply`.
const FIELDS: usize = 10;
/// The metric of the buckets every batch writes again.
const HOT: &str = "hot";
/// The metric of the buckets each batch creates.
const NEW: &str = "new";
/// A bucket start on a full hour (2024-05-01T00:00:00Z).
const BASE: i64 = 1_714_521_600;
/// Buckets read by `mongo/range` (30 days of hours).
const RANGE_BUCKETS: i64 = 720;
/// Buckets per fill batch of the range collections.
const FILL_CHUNK: usize = 120;
/// Distinct event times of `mongo/tracker` (the minutes of one hour).
const TRACK_MINUTES: i64 = 60;

fn url() -> String {
    stats_benches::server_url("STATS_BENCH_MONGO_URL", "mongo")
}

fn runtime() -> tokio::runtime::Runtime {
    stats_benches::runtime()
}

fn hour() -> Granularity {
    "1h".parse().expect("granularity")
}

/// A set-up store of a fresh collection in `mode`.
async fn store(collection: &str, mode: IdMode) -> MongoStore {
    let config = MongoConfig::from_url(&url())
        .expect("url")
        .database(DATABASE)
        .expect("database")
        .collection(collection)
        .expect("collection")
        .mode(mode);
    let store = MongoStore::connect(config).await.expect("connect");
    store.drop_collections().await.expect("drop");
    store.setup().await.expect("setup");
    store
}

/// The raw side: the driver, a client of its own, without the store.
#[derive(Clone)]
struct Raw {
    database: Database,
}

impl Raw {
    async fn connect() -> Self {
        let client = Client::with_uri_str(url()).await.expect("raw client");
        Raw {
            database: client.database(DATABASE),
        }
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.database.collection(name)
    }

    /// A fresh collection with the unique index the store makes in `mode`.
    async fn fresh(&self, name: &str, mode: IdMode) -> Collection<Document> {
        let collection = self.collection(name);
        collection.drop().await.expect("raw drop");
        let keys = match mode {
            IdMode::Full => doc! {"key": 1},
            IdMode::Partial => doc! {"key": 1, "at": -1},
            IdMode::Separated => doc! {"key": 1, "granularity": 1, "at": -1},
        };
        let unique = IndexOptions::builder().unique(true).build();
        collection
            .create_index(IndexModel::builder().keys(keys).options(unique).build())
            .await
            .expect("raw index");
        collection
    }

    /// Sends `statements` as one unordered `update` command and checks that each one matched
    /// or created its document.
    async fn update(&self, collection: &str, statements: Vec<Document>) {
        let sent = statements.len() as i64;
        let reply = self
            .database
            .run_command(doc! {
                "update": collection,
                "updates": statements,
                "ordered": false,
                "writeConcern": {"w": 1},
            })
            .await
            .expect("raw update");
        assert!(reply.get("writeErrors").is_none(), "raw update: {reply}");
        let n = match reply.get("n") {
            Some(Bson::Int32(n)) => i64::from(*n),
            Some(Bson::Int64(n)) => *n,
            other => panic!("raw update: no count in {reply} ({other:?})"),
        };
        assert_eq!(n, sent, "raw update: {reply}");
    }
}

/// A bucket's identifier document in `mode`, built by hand as a raw driver user would.
fn identity(mode: IdMode, metric: &str, granularity: &str, start: i64) -> Document {
    let at = DateTime::from_millis(start * 1000);
    match mode {
        IdMode::Full => doc! {"key": format!("{metric}{SEP}{granularity}{SEP}{start}")},
        IdMode::Partial => doc! {"key": format!("{metric}{SEP}{granularity}"), "at": at},
        IdMode::Separated => doc! {"key": metric, "granularity": granularity, "at": at},
    }
}

/// One upsert statement.
fn upsert(q: Document, inc: &Document) -> Document {
    doc! {"q": q, "u": {"$inc": inc.clone()}, "upsert": true}
}

/// Deletes the buckets of metric [`NEW`] (every mode's `key` starts with the metric).
async fn delete_new(collection: &Collection<Document>) {
    collection
        .delete_many(doc! {"key": {"$regex": format!("^{NEW}")}})
        .await
        .expect("delete new buckets");
}

/// The integer at `data.<field>` of the one document matching `filter`.
async fn stored_int(collection: &Collection<Document>, filter: Document, field: &str) -> i64 {
    let found = collection
        .find_one(filter.clone())
        .await
        .expect("find")
        .unwrap_or_else(|| panic!("no document {filter}"));
    match found.get_document("data").ok().and_then(|d| d.get(field)) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        other => panic!("{filter}: data.{field} is {other:?}"),
    }
}

/// A case of `mongo/apply`: buckets per batch that exist and that are new.
struct ApplyCase {
    mode: IdMode,
    hot: usize,
    new: usize,
}

impl ApplyCase {
    fn name(&self) -> String {
        format!("{}-{}x{FIELDS}", self.mode, self.hot + self.new)
    }

    fn elements(&self) -> u64 {
        ((self.hot + self.new) * FIELDS) as u64
    }
}

fn apply(c: &mut Criterion) {
    let rt = runtime();
    let raw = rt.block_on(Raw::connect());
    let mut fields = Values::new();
    let mut inc = Document::new();
    for f in 0..FIELDS {
        fields.insert(format!("f{f}"), 1).expect("field");
        inc.insert(format!("data.f{f}"), 1_i64);
    }
    let cases = [
        ApplyCase {
            mode: IdMode::Full,
            hot: 5,
            new: 5,
        },
        ApplyCase {
            mode: IdMode::Partial,
            hot: 5,
            new: 5,
        },
        ApplyCase {
            mode: IdMode::Separated,
            hot: 5,
            new: 5,
        },
        ApplyCase {
            mode: IdMode::Full,
            hot: 50,
            new: 50,
        },
    ];

    let mut group = c.benchmark_group("mongo/apply");
    group.sampling_mode(SamplingMode::Flat);
    for case in &cases {
        let name = case.name();
        group.throughput(Throughput::Elements(case.elements()));
        let ours_name = format!("apply_{}", name.replace('-', "_"));
        let raw_name = format!("{ours_name}_raw");
        let g = hour().to_string();
        let hot_keys: Vec<Key> = (0..case.hot as i64)
            .map(|i| Key::bucket(HOT, hour(), BASE + i * 3600).expect("key"))
            .collect();
        let hot_ids: Vec<Document> = (0..case.hot as i64)
            .map(|i| identity(case.mode, HOT, &g, BASE + i * 3600))
            .collect();
        let (store, raw_collection) = rt.block_on(async {
            let store = store(&ours_name, case.mode).await;
            let raw_collection = raw.fresh(&raw_name, case.mode).await;
            // The hot buckets exist before the first measurement, on both sides.
            let mut batch = Batch::new();
            batch.inc(hot_keys.clone(), &fields).expect("batch");
            store.apply(&batch).await.expect("create hot buckets");
            let statements = hot_ids.iter().map(|q| upsert(q.clone(), &inc)).collect();
            raw.update(&raw_name, statements).await;
            (store, raw_collection)
        });

        // Every batch applied, including criterion's warm-up, to check the totals after.
        let mut ours_batches = 0_i64;
        let mut next_new = 0_i64;
        group.bench_function(BenchmarkId::new("ours", &name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let new_keys = (0..case.new as i64).map(|i| {
                            Key::bucket(NEW, hour(), BASE + (next_new + i) * 3600).expect("key")
                        });
                        let mut batch = Batch::new();
                        batch
                            .inc(hot_keys.iter().cloned().chain(new_keys), &fields)
                            .expect("batch");
                        store.apply(&batch).await.expect("apply");
                        timed += start.elapsed();
                        next_new += case.new as i64;
                        delete_new(store.metrics_collection()).await;
                    }
                    ours_batches += iters as i64;
                    timed
                })
            })
        });

        let mut raw_batches = 0_i64;
        let mut next_new = 0_i64;
        group.bench_function(BenchmarkId::new("raw", &name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let new_ids = (0..case.new as i64)
                            .map(|i| identity(case.mode, NEW, &g, BASE + (next_new + i) * 3600));
                        let statements = hot_ids
                            .iter()
                            .cloned()
                            .chain(new_ids)
                            .map(|q| upsert(q, &inc))
                            .collect();
                        raw.update(&raw_name, statements).await;
                        timed += start.elapsed();
                        next_new += case.new as i64;
                        delete_new(&raw_collection).await;
                    }
                    raw_batches += iters as i64;
                    timed
                })
            })
        });

        rt.block_on(async {
            // Each hot bucket holds its creation plus one increment per batch, on both sides.
            let hot = hot_ids.last().expect("hot buckets").clone();
            let ours_total = stored_int(store.metrics_collection(), hot.clone(), "f9").await;
            assert_eq!(ours_total, ours_batches + 1, "ours {name}");
            let raw_total = stored_int(&raw_collection, hot, "f9").await;
            assert_eq!(raw_total, raw_batches + 1, "raw {name}");
            store.drop_collections().await.expect("drop");
            raw_collection.drop().await.expect("raw drop");
        });
    }
    group.finish();
}

fn tracker(c: &mut Criterion) {
    let rt = runtime();
    let raw = rt.block_on(Raw::connect());
    let config = Config::new();
    let event = values!({"count": 1, "amount": 2.5, "by": {"eu": 1}});
    let inc = doc! {"data.count": 1_i64, "data.amount": 2.5, "data.by.eu": 1_i64};
    let times: Vec<Timestamp> = (0..TRACK_MINUTES)
        .map(|m| Timestamp::from_second(BASE + m * 60).expect("time"))
        .collect();
    // The raw side's fan-out: each event time's bucket start in every granularity, computed
    // before the measurement.
    let fan_out: Vec<Vec<(String, i64)>> = times
        .iter()
        .map(|&at| {
            config
                .granularity_list()
                .iter()
                .map(|&g| {
                    let start = config.calendar().floor(at, g).expect("floor");
                    (g.to_string(), start.as_second())
                })
                .collect()
        })
        .collect();
    let year: Granularity = "1y".parse().expect("granularity");
    let year_start = config
        .calendar()
        .floor(times[0], year)
        .expect("floor")
        .as_second();

    let mut group = c.benchmark_group("mongo/tracker");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(1));
    for mode in IdMode::ALL {
        let name = format!("{mode}-{}-granularities-3-fields", fan_out[0].len());
        let ours_name = format!("track_{mode}");
        let raw_name = format!("{ours_name}_raw");
        let (store, raw_collection) = rt.block_on(async {
            let store = Arc::new(store(&ours_name, mode).await);
            (store, raw.fresh(&raw_name, mode).await)
        });
        let tracker = Tracker::new(store.clone(), config.clone());
        // Every bucket the events write exists before the first measurement, on both sides:
        // one round of the events, each side on its own collection.
        rt.block_on(async {
            for (&at, buckets) in times.iter().zip(&fan_out) {
                tracker.track("orders", at, &event).await.expect("track");
                let statements = buckets
                    .iter()
                    .map(|(g, start)| upsert(identity(mode, "orders", g, *start), &inc))
                    .collect();
                raw.update(&raw_name, statements).await;
            }
        });

        let mut ours_events = TRACK_MINUTES;
        group.bench_function(BenchmarkId::new("ours", &name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters as i64 {
                        let at = times[((ours_events + i) % TRACK_MINUTES) as usize];
                        tracker.track("orders", at, &event).await.expect("track");
                    }
                    ours_events += iters as i64;
                    start.elapsed()
                })
            })
        });

        let mut raw_events = TRACK_MINUTES;
        group.bench_function(BenchmarkId::new("raw", &name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters as i64 {
                        let buckets = &fan_out[((raw_events + i) % TRACK_MINUTES) as usize];
                        let statements = buckets
                            .iter()
                            .map(|(g, start)| upsert(identity(mode, "orders", g, *start), &inc))
                            .collect();
                        raw.update(&raw_name, statements).await;
                    }
                    raw_events += iters as i64;
                    start.elapsed()
                })
            })
        });

        rt.block_on(async {
            let ours_total = tracker
                .total("orders", times[0], times[0], year, "count")
                .await
                .expect("total");
            assert_eq!(ours_total, Some(Number::Int(ours_events)), "ours {name}");
            let raw_total = stored_int(
                &raw_collection,
                identity(mode, "orders", "1y", year_start),
                "count",
            )
            .await;
            assert_eq!(raw_total, raw_events, "raw {name}");
            store.drop_collections().await.expect("drop");
            raw_collection.drop().await.expect("raw drop");
        });
    }
    group.finish();
}

fn range(c: &mut Criterion) {
    let rt = runtime();
    let raw = rt.block_on(Raw::connect());
    let starts: Vec<i64> = (0..RANGE_BUCKETS).map(|i| BASE + i * 3600).collect();
    let (first, last) = (starts[0], starts[starts.len() - 1]);
    let leaves = values!({"count": 3, "amount": 12.5, "by": {"eu": 1, "us": 2}});

    let mut group = c.benchmark_group("mongo/range");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(RANGE_BUCKETS as u64));
    for mode in IdMode::ALL {
        let name = format!("{mode}-30-days-at-1h");
        let collection = format!("range_{mode}");
        let store = rt.block_on(async {
            let store = store(&collection, mode).await;
            for chunk in starts.chunks(FILL_CHUNK) {
                let keys = chunk
                    .iter()
                    .map(|&s| Key::bucket("range", hour(), s).expect("key"));
                let mut batch = Batch::new();
                batch.inc(keys, &leaves).expect("batch");
                store.apply(&batch).await.expect("fill");
            }
            store
        });

        group.bench_function(BenchmarkId::new("ours", &name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let docs = store.range("range", hour(), &starts).await.expect("range");
                        assert_eq!(docs.len(), RANGE_BUCKETS as usize);
                        assert!(docs.iter().all(|d| !d.is_empty()), "a bucket is missing");
                    }
                    start.elapsed()
                })
            })
        });

        let raw_collection = raw.collection(&collection);
        group.bench_function(BenchmarkId::new("raw", &name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let filter = match mode {
                            IdMode::Full => {
                                let keys: Vec<String> = starts
                                    .iter()
                                    .map(|s| format!("range{SEP}1h{SEP}{s}"))
                                    .collect();
                                doc! {"key": {"$in": keys}}
                            }
                            _ => {
                                let mut filter = identity(mode, "range", "1h", first);
                                filter.insert(
                                    "at",
                                    doc! {
                                        "$gte": DateTime::from_millis(first * 1000),
                                        "$lte": DateTime::from_millis(last * 1000),
                                    },
                                );
                                filter
                            }
                        };
                        let docs: Vec<Document> = raw_collection
                            .find(filter)
                            .await
                            .expect("raw find")
                            .try_collect()
                            .await
                            .expect("raw cursor");
                        assert_eq!(docs.len(), RANGE_BUCKETS as usize);
                    }
                    start.elapsed()
                })
            })
        });

        rt.block_on(async {
            store.drop_collections().await.expect("drop");
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = stats_benches::criterion()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = apply, tracker, range
}
criterion_main!(benches);
