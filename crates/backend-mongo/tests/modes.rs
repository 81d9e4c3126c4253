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
