//! [`ThrottleStore`] on MongoDB: one document per held key in the throttles collection.
//!
//! A key is `{_id: <key>, expires_at: <date>}`. An acquire is one atomic upsert whose filter
//! matches only an expired document, timed by the server's clock (`$$NOW`, so clients with
//! skewed clocks agree): it updates an expired key, inserts a missing one, and collides on
//! `_id` with a held one (a duplicate key error, which is the answer "held"). Of many
//! concurrent acquirers of a free key exactly one inserts or updates. The TTL index made by
//! [`MongoStore::setup`] removes released keys in the background.

use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::doc;
use stats_core::store::check_throttle;
use stats_core::{Result, ThrottleStore};

use crate::store::{DUPLICATE_KEY, MongoStore, command_code, map_error};

#[async_trait]
impl ThrottleStore for MongoStore {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
        check_throttle(key, ttl)?;
        // At most MAX_TTL (100 years) in milliseconds: far inside i64.
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let acquired = self
            .inner
            .throttles
            .update_one(
                doc! {"_id": key, "$expr": {"$lte": ["$expires_at", "$$NOW"]}},
                vec![doc! {"$set": {"expires_at": {"$add": ["$$NOW", ms]}}}],
            )
            .upsert(true)
            .await;
        match acquired {
            Ok(_) => Ok(true),
            Err(e) if command_code(&e) == Some(DUPLICATE_KEY) => Ok(false),
            Err(e) => Err(map_error(e)),
        }
    }
}
