//! The conformance suite and the tracker checks against a MongoDB-wire server
//! (`STATS_TEST_MONGO_URL`; `cargo xtask it mongo` starts one): the metric and tracker checks in
//! each identifier mode, the counter and throttle checks (which no mode changes) once; each
//! test on a fresh collection.
//!
//! The concurrency checks run at a lighter [`Load`] than the default: the test server answers
//! a few thousand single-document calls a second, and the default load (160,000 counter
//! increments) would take many minutes. Eight tasks still contend for one shared key.

mod common;

use stats_core::testkit::Load;

/// Eight tasks, 500 increments each.
const LOAD: Load = Load {
    tasks: 8,
    increments_per_task: 500,
};

macro_rules! mode_suite {
    ($module:ident, $mode:expr) => {
        mod $module {
            use std::sync::Arc;

            use stats_backend_mongo::MongoStore;

            use super::{LOAD, common};

            async fn store() -> Arc<MongoStore> {
                common::store($mode).await
            }

            stats_core::metric_store_tests!(store, load: LOAD);
            stats_core::tracker_tests!(store);
        }
    };
}

mode_suite!(full, stats_backend_mongo::IdMode::Full);
mode_suite!(partial, stats_backend_mongo::IdMode::Partial);
mode_suite!(separated, stats_backend_mongo::IdMode::Separated);

mod counters_and_throttles {
    use std::sync::Arc;

    use stats_backend_mongo::{IdMode, MongoStore};

    use super::{LOAD, common};

    async fn store() -> Arc<MongoStore> {
        common::store(IdMode::Full).await
    }

    stats_core::counter_store_tests!(store, load: LOAD);
    stats_core::throttle_store_tests!(store);
}

/// A batch whose reply is lost after the server applied it (a proxy drops the answer to its
/// `update` command and closes the connection), then retried: with an id it counts once,
/// without one twice (`check_retry_after_lost_reply`), in each identifier mode.
///
/// The URL through the proxy connects directly to the one server (`directConnection=true`,
/// no discovery that would go around the proxy) and turns off the driver's own retry of
/// writes (`retryWrites=false`): a retry inside the driver would hide the lost reply from the
/// store. (The store sends its batches with `runCommand`, which the driver never retries, and
/// the test server is a standalone, where the driver does not retry writes anyway.)
mod lost_reply {
    use stats_backend_mongo::{IdMode, MongoConfig};
    use stats_core::testkit::proxy::{DropReplyProxy, check_retry_after_lost_reply, upstream_of};

    use super::common;

    async fn check(mode: IdMode) {
        let url = common::url();
        assert!(
            url.contains("directConnection=true"),
            "the test server's URL connects directly: {url}"
        );
        let proxy = DropReplyProxy::start(&upstream_of(&url)).await;
        let via = format!("{}&retryWrites=false", proxy.url_via(&url));
        let config = MongoConfig::from_url(&via)
            .expect("URL")
            .database(common::DATABASE)
            .expect("database")
            .collection(&common::unique_collection("lost"))
            .expect("collection")
            .mode(mode)
            .record_batch_ids(true);
        let store = common::store_with(config).await;
        check_retry_after_lost_reply(&*store, &proxy, |metric, _| metric.as_bytes().to_vec()).await;
        store.drop_collections().await.expect("drop");
    }

    #[tokio::test]
    async fn full() {
        check(IdMode::Full).await;
    }

    #[tokio::test]
    async fn partial() {
        check(IdMode::Partial).await;
    }

    #[tokio::test]
    async fn separated() {
        check(IdMode::Separated).await;
    }
}
