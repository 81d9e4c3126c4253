//! # stats-buffer
//!
//! Write buffers for the stats toolkit:
//!
//! - [`BufferedTracker`]: the tracker for high rates. Events with the same metric and bucket
//!   starts fold into one pending document that fans out to the granularities when it is
//!   written, so a million events of one minute cost one write per granularity and field.
//! - [`Buffered`]: any store, with its metric writes coalesced in memory and written in
//!   batches; reads merge what is pending.
//! - [`KeyedBuffer`]: the generic buffer for your own items, below.
//!
//! The first two share [`Coalescing`] settings and their guarantees: the values stored are
//! those of unbuffered writes (integers exactly, float sums compensated), every batch carries a
//! [`BatchId`](stats_core::BatchId) and is retried with it (exactly once on stores with
//! [idempotent batches](stats_core::Capabilities::idempotent_batch)), a batch that cannot be
//! written stays pending within a memory bound and is retried before anything newer, and
//! shutdown writes everything or hands back the batches it could not write. A crash loses what
//! is pending (see [`BufferedTracker`]).
//!
//! ## KeyedBuffer
//!
//! [`KeyedBuffer`] collects items per key and flushes each key's items through a [`Flush`]
//! handler, in the model of Elixir's DataBuffer:
//!
//! - **when**: every [`interval`](Options::interval) (plus a random [`jitter`](Options::jitter)
//!   per partition, so partitions do not all flush at once), as soon as a key holds
//!   [`max_size`](Options::max_size) items, on [`KeyedBuffer::flush_all`] and on
//!   [`KeyedBuffer::shutdown`];
//! - **where**: keys are spread by hash over [`partitions`](Options::partitions); each
//!   partition owns its keys, with its own lock and its own flush task, so there is no global
//!   lock and a slow key holds up only its partition;
//! - **failures**: a failed flush is retried after [`retry_delay`](Options::retry_delay),
//!   doubling up to [`retry_delay_max`](Options::retry_delay_max),
//!   [`retry_max`](Options::retry_max) times; then [`Flush::on_error`] gets exactly those
//!   items. Its default logs and puts them back (they are retried on the next interval);
//! - **memory**: at most [`max_pending`](Options::max_pending) items are pending; at the
//!   bound [`insert`](KeyedBuffer::insert) waits ([`Overflow::Backpressure`]) or returns
//!   [`BufferError::Full`] ([`Overflow::Reject`]). Nothing is ever dropped silently;
//! - **counters**: [`KeyedBuffer::stats`] gives pending, flushed, retried, failed and
//!   rejected items.
//!
//! ### What a crash loses
//!
//! Pending items live in this process's memory only: a crash or a kill loses every item not
//! yet flushed. [`KeyedBuffer::shutdown`] flushes everything and returns what still could not
//! be written. Dropping the last handle without it flushes in the background as long as the
//! runtime keeps running.
//!
//! ### Errors
//!
//! The buffer is generic and has its own [`BufferError`]; it converts into
//! [`stats_core::Error`] (see [`BufferError`] for the mapping), so the store layers above use
//! `?` on it.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//!
//! use stats_buffer::{Flush, KeyedBuffer, Options};
//!
//! /// Counts what it is given.
//! #[derive(Default)]
//! struct Total(AtomicU64);
//!
//! #[async_trait::async_trait]
//! impl Flush<u32, u64> for Total {
//!     type Error = String;
//!     async fn flush(&self, _key: &u32, items: &[u64]) -> Result<(), String> {
//!         self.0.fetch_add(items.iter().sum(), Ordering::Relaxed);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), stats_buffer::BufferError> {
//! let total = Arc::new(Total::default());
//! let buffer = KeyedBuffer::new(
//!     Options::new().partitions(2)?.interval(Duration::from_millis(100))?,
//!     total.clone(),
//! )?;
//! for user in 0..10 {
//!     buffer.insert(user, 1).await?;
//! }
//! assert!(buffer.shutdown().await.is_empty());
//! assert_eq!(total.0.load(Ordering::Relaxed), 10);
//! assert_eq!(buffer.stats().flushed, 10);
//! # Ok(()) }
//! ```

mod coalescing;
mod counts;
mod engine;
mod error;
mod fold;
mod keyed;
mod options;
mod spill;
mod store;
mod tracker;

pub use coalescing::{Coalescing, DEFAULT_MAX_BATCH, DEFAULT_MAX_PENDING};
pub use error::BufferError;
pub use keyed::{BufferStats, Flush, KeyedBuffer, OnError};
pub use options::{Options, Overflow};
pub use store::{Buffered, Unwritten};
pub use tracker::BufferedTracker;
