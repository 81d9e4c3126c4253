//! [`MongoStore`]: connecting, setting up collections and indexes, and mapping driver errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use stats_core::{Capabilities, Error, Result, Store};

use crate::config::{Acknowledge, IdMode, MongoConfig, redact, unacknowledged};
use crate::layout::Layout;

/// The store's name in errors and reports.
pub(crate) const NAME: &str = "mongo";

/// MongoDB's error code for a duplicate key in a unique index.
pub(crate) const DUPLICATE_KEY: i32 = 11000;
/// "An equivalent index already exists with a different name" and "index options conflict".
const INDEX_OPTIONS_CONFLICT: i32 = 85;

/// A MongoDB store: metric documents, counters and throttles, in three collections of one
/// database (see the [crate docs](crate)).
///
/// Cheap to clone (the driver's client is a connection pool behind an `Arc`).
///
/// ```no_run
/// # async fn demo() -> stats_core::Result<()> {
/// use stats_backend_mongo::{MongoConfig, MongoStore};
///
/// let store = MongoStore::connect(MongoConfig::from_url("mongodb://127.0.0.1:27017/app")?).await?;
/// store.setup().await?; // collections and indexes; idempotent
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MongoStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: MongoConfig,
    pub(crate) client: Client,
    pub(crate) database: Database,
    pub(crate) metrics: Collection<Document>,
    pub(crate) counters: Collection<Document>,
    pub(crate) throttles: Collection<Document>,
    pub(crate) layout: Layout,
    /// The write concern sent with raw `update` commands.
    pub(crate) write_concern: Document,
    /// Whether the unique index the writes rely on is known to exist.
    pub(crate) indexed: AtomicBool,
}

impl MongoStore {
    /// Connects: parses the URL, applies the configuration and checks that a server answers
    /// (a `ping`), so that a wrong host or a refused connection fails here, naming the URL.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL the driver refuses, `w: 0` in the URL, or a bad
    /// setting; [`Error::Unavailable`] when no server answers within the server selection
    /// timeout; the driver's other errors as [`Error::Backend`].
    pub async fn connect(config: MongoConfig) -> Result<Self> {
        config.check()?;
        let shown = redact(&config.url);
        let mut options = ClientOptions::parse(&config.url)
            .await
            .map_err(|e| match *e.kind {
                ErrorKind::InvalidArgument { .. } => {
                    Error::InvalidInput(format!("MongoDB URL {shown:?}: {e}"))
                }
                _ => connect_error(e, &shown),
            })?;
        if let Some(w) = &options.write_concern
            && w.w == Some(Acknowledgment::Nodes(0))
        {
            return Err(unacknowledged());
        }
        if let Some(t) = config.connect_timeout {
            options.connect_timeout = Some(t);
        }
        options.server_selection_timeout = Some(config.server_selection_timeout);
        options.app_name.get_or_insert_with(|| "stats".to_owned());
        let concern = write_concern(&config);
        options.write_concern = Some(concern.clone());
        let client = Client::with_options(options).map_err(|e| connect_error(e, &shown))?;
        let database = client.database(config.database_name());
        database
            .run_command(doc! {"ping": 1})
            .await
            .map_err(|e| connect_error(e, &shown))?;
        let metrics = database.collection(config.collection_name());
        let counters = database.collection(&config.counters_collection_name());
        let throttles = database.collection(&config.throttles_collection_name());
        let layout = Layout {
            mode: config.id_mode(),
            separator: config.separator_str().to_owned(),
        };
        let mut wc = doc! {};
        match &config.durability().acknowledge {
            Acknowledge::Primary => wc.insert("w", 1),
            Acknowledge::Majority => wc.insert("w", "majority"),
            Acknowledge::Nodes(n) => wc.insert("w", i64::from(*n)),
        };
        if config.durability().journal {
            wc.insert("j", true);
        }
        Ok(MongoStore {
            inner: Arc::new(Inner {
                config,
                client,
                database,
                metrics,
                counters,
                throttles,
                layout,
                write_concern: wc,
                indexed: AtomicBool::new(false),
            }),
        })
    }

    /// Creates the three collections and every index, idempotently (twice, or from several
    /// tasks or processes at once, without error):
    ///
    /// - metric documents: the unique index of the [`IdMode`] (`{key: 1}`, `{key: 1, at: -1}`
    ///   or `{key: 1, granularity: 1, at: -1}`, Trifle's), and with retention a TTL index
    ///   `{expire_at: 1}` with `expireAfterSeconds: 0`;
    /// - counters: `{ns: 1, key: 1}` (for listing a namespace in key order);
    /// - throttles: a TTL index on `expires_at`, which removes released keys.
    ///
    /// Writes need the unique index (it is what makes concurrent upserts of one bucket
    /// create one document): a write to a collection without it fails with
    /// [`Error::InvalidInput`] that says to call this.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the collection was set up in another identifier mode (it
    /// holds that mode's unique index), when its documents break this mode's unique index, or
    /// when an index of the same name exists with other options; the driver's other errors.
    pub async fn setup(&self) -> Result<()> {
        let inner = &self.inner;
        // Creating an index creates its collection: no `create` command, which would fail on a
        // collection that exists (servers before 7.0 and the test server say so).
        let names = self.metric_index_names().await?;
        self.check_mode_indexes(&names)?;
        let unique = mongodb::options::IndexOptions::builder()
            .unique(true)
            .build();
        create_index(
            &inner.metrics,
            IndexModel::builder()
                .keys(unique_index_keys(inner.layout.mode))
                .options(unique)
                .build(),
            inner.layout.mode,
        )
        .await?;
        let ttl = mongodb::options::IndexOptions::builder()
            .expire_after(Duration::ZERO)
            .build();
        if !inner.config.retention_periods().is_empty() {
            create_index(
                &inner.metrics,
                IndexModel::builder()
                    .keys(doc! {"expire_at": 1})
                    .options(ttl.clone())
                    .build(),
                inner.layout.mode,
            )
            .await?;
        }
        create_index(
            &inner.counters,
            IndexModel::builder().keys(doc! {"ns": 1, "key": 1}).build(),
            inner.layout.mode,
        )
        .await?;
        create_index(
            &inner.throttles,
            IndexModel::builder()
                .keys(doc! {"expires_at": 1})
                .options(ttl)
                .build(),
            inner.layout.mode,
        )
        .await?;
        inner.indexed.store(true, Ordering::Release);
        Ok(())
    }

    /// Drops the three collections (for tests and tear-down; a Trifle application sharing the
    /// metric collection loses its data too).
    ///
    /// # Errors
    /// The driver's errors.
    pub async fn drop_collections(&self) -> Result<()> {
        let inner = &self.inner;
        for c in [&inner.metrics, &inner.counters, &inner.throttles] {
            c.drop().await.map_err(map_error)?;
        }
        inner.indexed.store(false, Ordering::Release);
        Ok(())
    }

    /// The configuration the store was connected with.
    pub fn config(&self) -> &MongoConfig {
        &self.inner.config
    }

    /// The driver's client, for anything this store does not do (it shares the pool).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The collection of metric documents.
    pub fn metrics_collection(&self) -> &Collection<Document> {
        &self.inner.metrics
    }

    /// Checks once per store that the metric collection has its unique index (see
    /// [`MongoStore::setup`]) and no other mode's.
    pub(crate) async fn ensure_indexed(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.indexed.load(Ordering::Acquire) {
            return Ok(());
        }
        let names = self.metric_index_names().await?;
        self.check_mode_indexes(&names)?;
        let wanted = unique_index_name(inner.layout.mode);
        if !names.iter().any(|n| n == wanted) {
            return Err(Error::InvalidInput(format!(
                "the MongoDB collection {:?} has no unique index {wanted} for identifier mode {}: \
                 call MongoStore::setup() once before writing (without it, concurrent writes \
                 could create duplicate buckets)",
                inner.config.collection_name(),
                inner.layout.mode
            )));
        }
        inner.indexed.store(true, Ordering::Release);
        Ok(())
    }

    /// The index names of the metric collection (none when it does not exist).
    async fn metric_index_names(&self) -> Result<Vec<String>> {
        match self.inner.metrics.list_index_names().await {
            Ok(names) => Ok(names),
            // NamespaceNotFound: a collection that does not exist has no indexes.
            Err(e) if command_code(&e) == Some(26) => Ok(Vec::new()),
            Err(e) => Err(map_error(e)),
        }
    }

    /// Refuses a metric collection that holds another identifier mode's unique index: its
    /// documents are laid out differently, and that index would refuse this mode's writes.
    fn check_mode_indexes(&self, names: &[String]) -> Result<()> {
        let inner = &self.inner;
        let mode = inner.layout.mode;
        for other in IdMode::ALL.into_iter().filter(|m| *m != mode) {
            let name = unique_index_name(other);
            if names.iter().any(|n| n == name) {
                return Err(Error::InvalidInput(format!(
                    "the MongoDB collection {:?} was set up for identifier mode {other} (it has \
                     the unique index {name}); this store is configured for mode {mode}: use \
                     mode {other}, or another collection",
                    inner.config.collection_name()
                )));
            }
        }
        Ok(())
    }
}

/// The keys of a mode's unique index (Trifle's).
fn unique_index_keys(mode: IdMode) -> Document {
    match mode {
        IdMode::Full => doc! {"key": 1},
        IdMode::Partial => doc! {"key": 1, "at": -1},
        IdMode::Separated => doc! {"key": 1, "granularity": 1, "at": -1},
    }
}

/// The name MongoDB gives a mode's unique index.
pub(crate) fn unique_index_name(mode: IdMode) -> &'static str {
    match mode {
        IdMode::Full => "key_1",
        IdMode::Partial => "key_1_at_-1",
        IdMode::Separated => "key_1_granularity_1_at_-1",
    }
}

impl Store for MongoStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.floats = true;
        c.max_min = true;
        c.ttl = true;
        c.atomic_batch = false;
        c.idempotent_batch = self.inner.config.batch_ids;
        c.cluster = false;
        c.persistent = true;
        c
    }
}

fn write_concern(config: &MongoConfig) -> WriteConcern {
    let d = config.durability();
    let w = match &d.acknowledge {
        Acknowledge::Primary => Acknowledgment::Nodes(1),
        Acknowledge::Majority => Acknowledgment::Majority,
        Acknowledge::Nodes(n) => Acknowledgment::Nodes(*n),
    };
    let mut concern = WriteConcern::default();
    concern.w = Some(w);
    if d.journal {
        concern.journal = Some(true);
    }
    concern
}

async fn create_index(
    collection: &Collection<Document>,
    model: IndexModel,
    mode: IdMode,
) -> Result<()> {
    match collection.create_index(model).await {
        Ok(_) => Ok(()),
        // IndexOptionsConflict, IndexKeySpecsConflict: the same name with other options.
        Err(e) if matches!(command_code(&e), Some(INDEX_OPTIONS_CONFLICT | 86)) => {
            Err(Error::InvalidInput(format!(
                "an index on the MongoDB collection {:?} exists with other options: {e}",
                collection.name()
            )))
        }
        // The documents already there break the unique index.
        Err(e) if command_code(&e) == Some(DUPLICATE_KEY) => Err(Error::InvalidInput(format!(
            "cannot create the unique index of identifier mode {mode} on the MongoDB collection \
             {:?}: documents already there have duplicate identifiers in this mode (were they \
             written in another mode?): {e}",
            collection.name()
        ))),
        Err(e) => Err(map_error(e)),
    }
}

/// The server's error code of a command error or a single write error.
pub(crate) fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        _ => None,
    }
}

/// Maps a driver error to the typed errors: unreachable servers and network failures are
/// [`Error::Unavailable`] (retryable), server errors MongoDB labels retryable (and
/// `NotWritablePrimary`, `WriteConflict`, interruptions at shutdown) are retryable
/// [`Error::Backend`], everything else a non-retryable one.
pub(crate) fn map_error(e: mongodb::error::Error) -> Error {
    let unavailable = matches!(
        &*e.kind,
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::Shutdown
    ) || e.contains_label("NetworkError");
    if unavailable {
        return Error::Unavailable {
            store: NAME,
            source: Box::new(e),
        };
    }
    let retryable = e.contains_label("RetryableWriteError")
        || e.contains_label("TransientTransactionError")
        || matches!(
            command_code(&e),
            // WriteConflict, InterruptedAtShutdown, InterruptedDueToReplStateChange,
            // NotWritablePrimary, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary,
            // PrimarySteppedDown, ShutdownInProgress, HostNotFound, HostUnreachable,
            // NetworkTimeout, SocketException, ExceededTimeLimit
            Some(112 | 11600 | 11602 | 10107 | 13435 | 13436 | 189 | 91 | 7 | 6 | 89 | 9001 | 262)
        );
    Error::backend(NAME, retryable, e)
}

/// Maps an error of connecting, with the URL (password hidden) in the message.
fn connect_error(e: mongodb::error::Error, shown: &str) -> Error {
    map_error(e).context(format!("MongoDB at {shown}"))
}
