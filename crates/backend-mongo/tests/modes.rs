//! The conformance suite and the tracker checks against a MongoDB-wire server
//! (`STATS_TEST_MONGO_URL`; `cargo xtask it mongo` starts one), in each identifier mode, each
//! test on a fresh collection.

mod common;

macro_rules! mode_suite {
    ($module:ident, $mode:expr) => {
        mod $module {
            use std::sync::Arc;

            use stats_backend_mongo::MongoStore;

            use super::common;

            async fn store() -> Arc<MongoStore> {
                common::store($mode).await
            }

            stats_core::metric_store_tests!(store);
            stats_core::counter_store_tests!(store);
            stats_core::throttle_store_tests!(store);
            stats_core::tracker_tests!(store);
        }
    };
}

mode_suite!(full, stats_backend_mongo::IdMode::Full);
mode_suite!(partial, stats_backend_mongo::IdMode::Partial);
mode_suite!(separated, stats_backend_mongo::IdMode::Separated);
