//! [`MetricStore`] on MongoDB: one unordered `update` command of upserts per batch, one
//! `find` per read.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use futures_util::future::join_all;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document, doc};
use stats_core::name;
use stats_core::plan::{Folded, FoldedDoc, first_error};
use stats_core::store::check_range;
use stats_core::{
    BATCH_ID_WINDOW, Batch, BatchId, Error, Granularity, Key, MetricStore, NameKind, Number, Op,
    Result, Slot, Value, Values,
};

use crate::config::IdMode;
use crate::layout::{Ident, at_of, ident_of};
use crate::store::{DUPLICATE_KEY, MongoStore, NAME, map_error};

/// How many times a write is sent again after it lost a race (a concurrent upsert of the same
/// new document, a value changed between the read and the conditional write).
const ATTEMPTS: usize = 16;

/// Server error codes that mean "this statement conflicted with the document's state":
/// `BadValue` (an `$inc` overflow), `TypeMismatch` (`$inc` of a map), `PathNotViable` (a path
/// below a number), `DuplicateKey` (a guarded upsert that did not match an existing document,
/// or two upserts creating the same document). The document is read back and the batch
/// replayed over it to name the error, or, when it replays cleanly, the statement is sent again.
const STATE_CODES: [i32; 4] = [2, 14, 28, DUPLICATE_KEY];

/// The field of a metric document that records the ids of the batches applied to it, as an
/// array of `{id: <16-byte binary>, at: <date>}` in the order they were applied. Values live
/// under `data`, so no value can take this name.
pub(crate) const BATCH_IDS: &str = "_b";

/// How much longer than [`BATCH_ID_WINDOW`] an id is kept: the `at` of an entry is the clock
/// of the client that wrote it and the cut-off the clock of the client that prunes, so clocks
/// that disagree by less than this never shorten the window.
pub(crate) const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(3600);

/// One batch with an id in this many also prunes its documents' old ids (measured on the
/// test server, a prune statement per document and batch made a batch 20% to 100% slower).
pub(crate) const PRUNE_ONE_IN: u32 = 8;

#[async_trait]
impl MetricStore for MongoStore {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let folded = Folded::new(batch)?;
        for doc in &folded.docs {
            self.inner.layout.check_key(doc.key)?;
        }
        self.ensure_indexed().await?;
        let stamp = batch
            .id()
            .filter(|_| self.inner.config.batch_ids)
            .map(Stamp::new);
        let stamp = stamp.as_ref();
        let (singles, mut multis): (Vec<usize>, Vec<usize>) =
            (0..folded.docs.len()).partition(|&d| folded.docs[d].is_single());
        let (mut errors, fallback) = self.write_singles(batch, &folded, singles, stamp).await?;
        multis.extend(fallback);
        errors.extend(self.write_multis(batch, &folded, multis, stamp).await?);
        if let Some(stamp) = stamp
            && prunes(stamp.batch)
        {
            self.prune_batch_ids(&folded, stamp.at).await;
        }
        // The error of the document written first in the batch.
        match errors.into_iter().min_by_key(|(d, _)| *d) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let layout = &self.inner.layout;
        let mut idents = Vec::with_capacity(keys.len());
        for key in keys {
            layout.check_key(key)?;
            idents.push(layout.ident(key)?);
        }
        let filter = self.keys_filter(keys)?;
        let docs = self.find_live(filter).await?;
        let mut found: HashMap<Ident, Values> = HashMap::with_capacity(docs.len());
        for d in docs {
            let values = data_of(&d)?;
            found.insert(ident_of(&d), values);
        }
        Ok(idents
            .iter()
            .map(|i| found.get(i).cloned().unwrap_or_default())
            .collect())
    }

    async fn range(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Vec<Values>> {
        check_range(metric, starts)?;
        let layout = &self.inner.layout;
        layout.check_metric(metric)?;
        if let (Some(first), Some(last)) = (starts.first(), starts.last()) {
            layout.check_key(&Key::bucket(metric, granularity, *first)?)?;
            layout.check_key(&Key::bucket(metric, granularity, *last)?)?;
        } else {
            return Ok(Vec::new());
        }
        let filter = layout.range_filter(metric, granularity, starts)?;
        let docs = self.find_live(filter).await?;
        let mut by_start: HashMap<i64, Values> = HashMap::with_capacity(docs.len());
        for d in docs {
            let start = match layout.mode {
                IdMode::Full => match d.get("key") {
                    Some(Bson::String(k)) => layout.start_of_full_key(k, granularity),
                    _ => None,
                },
                IdMode::Partial | IdMode::Separated => at_of(&d),
            };
            if let Some(start) = start {
                by_start.insert(start, data_of(&d)?);
            }
        }
        Ok(starts
            .iter()
            .map(|s| by_start.remove(s).unwrap_or_default())
            .collect())
    }

    async fn remove(&self, keys: &[Key]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            self.inner.layout.check_key(key)?;
        }
        let filter = self.keys_filter(keys)?;
        self.inner
            .metrics
            .delete_many(filter)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn remove_metric(&self, metric: &str) -> Result<u64> {
        name::check_segment(NameKind::Metric, metric)?;
        self.inner.layout.check_metric(metric)?;
        let filter = self.inner.layout.metric_filter(metric);
        let result = self
            .inner
            .metrics
            .delete_many(filter)
            .await
            .map_err(map_error)?;
        Ok(result.deleted_count)
    }

    async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64> {
        let layout = &self.inner.layout;
        let filter = layout.granularity_filter(granularity, before);
        let metrics = &self.inner.metrics;
        if layout.mode != IdMode::Full {
            let result = metrics.delete_many(filter).await.map_err(map_error)?;
            return Ok(result.deleted_count);
        }
        // `full` keys hold the start as text: select the granularity's keys, compare here.
        let mut cursor = metrics
            .find(filter)
            .projection(doc! {"key": 1, "_id": 0})
            .await
            .map_err(map_error)?;
        let mut doomed = Vec::new();
        while let Some(d) = cursor.try_next().await.map_err(map_error)? {
            if let Some(Bson::String(k)) = d.get("key")
                && layout
                    .start_of_full_key(k, granularity)
                    .is_some_and(|s| s < before)
            {
                doomed.push(k.clone());
            }
        }
        let mut deleted = 0;
        for chunk in doomed.chunks(1_000) {
            let result = metrics
                .delete_many(doc! {"key": {"$in": chunk}})
                .await
                .map_err(map_error)?;
            deleted += result.deleted_count;
        }
        Ok(deleted)
    }
}

impl MongoStore {
    /// The filter of the documents of `keys` (checked).
    fn keys_filter(&self, keys: &[Key]) -> Result<Document> {
        let layout = &self.inner.layout;
        if layout.mode == IdMode::Full {
            // A `full` identity is the one field `key`.
            let joined = keys
                .iter()
                .map(|k| Ok(layout.identity(k)?.remove("key").unwrap_or(Bson::Null)))
                .collect::<Result<Vec<Bson>>>()?;
            return Ok(doc! {"key": {"$in": joined}});
        }
        let mut any = Vec::with_capacity(keys.len());
        for key in keys {
            any.push(Bson::Document(layout.identity(key)?));
        }
        Ok(doc! {"$or": any})
    }

    /// Finds documents, leaving out those whose `expire_at` has passed (which MongoDB's TTL
    /// monitor removes only on its next pass, about once a minute), without their batch ids
    /// (which a read does not need and which can be most of a document).
    async fn find_live(&self, mut filter: Document) -> Result<Vec<Document>> {
        filter.insert("expire_at", doc! {"$not": {"$lte": DateTime::now()}});
        self.find_all(filter, Some(doc! {BATCH_IDS: 0})).await
    }

    /// Every metric document the filter selects, projected.
    async fn find_all(
        &self,
        filter: Document,
        projection: Option<Document>,
    ) -> Result<Vec<Document>> {
        self.inner
            .metrics
            .find(filter)
            .with_options(
                mongodb::options::FindOptions::builder()
                    .projection(projection)
                    .build(),
            )
            .await
            .map_err(map_error)?
            .try_collect()
            .await
            .map_err(map_error)
    }

    /// The `expire_at` of a key's document, with retention.
    fn expire_at(&self, key: &Key) -> Option<DateTime> {
        let Slot::Bucket { granularity, start } = key.slot() else {
            return None;
        };
        let at = self
            .inner
            .config
            .retention_periods()
            .expires_at(granularity, start)?;
        Some(DateTime::from_millis(at.saturating_mul(1000)))
    }

    /// Writes the documents whose leaves have one update each: one upsert statement per
    /// document, sent in unordered `update` commands. Returns the documents' errors, and the
    /// documents to write again with a conditional write: those whose statement was refused
    /// although the batch replays cleanly over the stored document (a concurrent upsert
    /// created it first, or a guard met a state only an exact comparison here can settle).
    /// A statement refused because its document already records the batch's id is done.
    async fn write_singles(
        &self,
        batch: &Batch,
        folded: &Folded<'_>,
        docs: Vec<usize>,
        stamp: Option<&Stamp>,
    ) -> Result<(Vec<(usize, Error)>, Vec<usize>)> {
        let mut errors = Vec::new();
        let mut conflicted = Vec::new();
        let max = self.inner.config.max_statements;
        for docs in docs.chunks(max) {
            let mut statements = Vec::with_capacity(docs.len());
            for &d in docs {
                statements.push(self.operator_statement(&folded.docs[d], stamp)?);
            }
            match self.update_command(&statements).await {
                Ok(failed) => {
                    for (index, code, message) in failed {
                        let d = docs[index];
                        if STATE_CODES.contains(&code) {
                            conflicted.push(d);
                        } else {
                            errors.push((
                                d,
                                Error::backend(
                                    NAME,
                                    false,
                                    format!(
                                        "write to {} refused: {message} (code {code})",
                                        folded.docs[d].key
                                    ),
                                ),
                            ));
                        }
                    }
                }
                Err(Refused::Command(e)) => {
                    // The server refused the whole command (the test server does so for an
                    // `$inc` overflow): which statements were applied is unknown, so none is
                    // sent again; the documents that cannot take their writes name the error.
                    let (mut named, _) = self.diagnose(batch, folded, docs, stamp).await?;
                    if named.is_empty() {
                        named.push((docs[0], map_error(e)));
                    }
                    errors.extend(named);
                }
                Err(Refused::Other(e)) => return Err(e),
            }
        }
        // A statement that failed was not applied (one statement is atomic on its document):
        // name its error, or write it again conditionally when the batch applies cleanly. With
        // an id, a statement whose document already records it (a retry of an applied batch)
        // was refused by its `_b.id` filter: that document is done.
        let (named, applied) = self.diagnose(batch, folded, &conflicted, stamp).await?;
        let fallback = conflicted
            .into_iter()
            .filter(|d| !named.iter().any(|(n, _)| n == d) && !applied.contains(d))
            .collect();
        errors.extend(named);
        Ok((errors, fallback))
    }

    /// Writes the documents where a leaf has several updates that do not fold into one
    /// operator (an increment after a maximum, several float increments): reads them, applies
    /// the updates here exactly as the contract says, and writes the results with an update
    /// conditional on every touched leaf being as read (sent again when it is not), and with an
    /// id on the document not recording it yet.
    async fn write_multis(
        &self,
        batch: &Batch,
        folded: &Folded<'_>,
        docs: Vec<usize>,
        stamp: Option<&Stamp>,
    ) -> Result<Vec<(usize, Error)>> {
        let mut errors = Vec::new();
        let mut pending = docs;
        for _ in 0..ATTEMPTS {
            if pending.is_empty() {
                return Ok(errors);
            }
            let stored = self.read_raw(folded, &pending).await?;
            let writes = pending.iter().zip(stored).map(|(&d, stored)| async move {
                (
                    d,
                    self.compare_and_write(batch, &folded.docs[d], stored, stamp)
                        .await,
                )
            });
            let mut retry = Vec::new();
            for (d, outcome) in join_all(writes).await {
                match outcome {
                    Ok(true) => {}
                    Ok(false) => retry.push(d),
                    Err(e @ (Error::Overflow { .. } | Error::PathConflict { .. })) => {
                        errors.push((d, e));
                    }
                    Err(e) => return Err(e),
                }
            }
            pending = retry;
        }
        if let Some(&d) = pending.first() {
            errors.push((d, gave_up(folded.docs[d].key)));
        }
        Ok(errors)
    }

    /// One document's conditional write; `Ok(false)` when the document changed since it was
    /// read. `Ok(true)` without writing when the document records the batch's id.
    async fn compare_and_write(
        &self,
        batch: &Batch,
        doc: &FoldedDoc<'_>,
        stored: Option<Document>,
        stamp: Option<&Stamp>,
    ) -> Result<bool> {
        let key = doc.key;
        if let (Some(stamp), Some(stored)) = (stamp, &stored)
            && records(stored, &stamp.id, key)?
        {
            return Ok(true);
        }
        let values = match &stored {
            Some(d) => data_of(d)?,
            None => Values::new(),
        };
        first_error(batch, &[key], vec![values.clone()])?;
        let mut filter = self.inner.layout.identity(key)?;
        let mut set = Document::new();
        for leaf in &doc.leaves {
            let old = values.number_at(leaf.path);
            let mut value = old;
            for &(op, n) in &leaf.updates {
                value = Some(op.apply(value, n, key, leaf.path)?);
            }
            let field = format!("data.{}", leaf.path);
            filter.insert(
                field.clone(),
                match old {
                    None => doc! {"$exists": false},
                    Some(Number::Int(i)) => doc! {"$eq": i, "$type": ["int", "long"]},
                    Some(Number::Float(f)) => doc! {"$eq": f, "$type": "double"},
                },
            );
            if let Some(v) = value {
                set.insert(field, bson_number(v));
            }
        }
        if let Some(at) = self.expire_at(key) {
            set.insert("expire_at", at);
        }
        let existed = match &stored {
            Some(d) => {
                if let Some(id) = d.get("_id") {
                    filter.insert("_id", id.clone());
                }
                true
            }
            None => false,
        };
        let mut update = doc! {"$set": set};
        if let Some(stamp) = stamp {
            // A concurrent apply of the same batch may have written since the read (with
            // leaves that came out as read): then this matches nothing, or its upsert
            // collides, and the next read finds the id.
            stamp.guard(&mut filter);
            update.insert("$push", stamp.entry());
        }
        let result = self
            .inner
            .metrics
            .update_one(filter, update)
            .upsert(!existed)
            .await;
        match result {
            Ok(r) => Ok(r.matched_count == 1 || r.upserted_id.is_some()),
            Err(e) if crate::store::command_code(&e).is_some_and(|c| STATE_CODES.contains(&c)) => {
                Ok(false)
            }
            Err(e) => Err(map_error(e)),
        }
    }

    /// The upsert statement of a document whose leaves have one update each; with a batch id,
    /// it also records the id, and only runs on a document that does not record it yet (on
    /// one that does, its upsert collides on the unique index like a guard's).
    fn operator_statement(&self, doc: &FoldedDoc<'_>, stamp: Option<&Stamp>) -> Result<Document> {
        let mut filter = self.inner.layout.identity(doc.key)?;
        let (mut inc, mut set, mut max, mut min) = (
            Document::new(),
            Document::new(),
            Document::new(),
            Document::new(),
        );
        // Stored states in which the statement must not run (`$nor`), because MongoDB would
        // accept what the contract refuses or decide what only an exact comparison decides:
        // a number written over a map (`$set` and `$min` replace it, `$max` keeps it), a float
        // sum that becomes infinite, and a maximum or minimum tied with a stored number of the
        // other kind (the first wins a tie; the test server breaks some such ties the other
        // way). A statement that meets one collides with the existing document on the unique
        // index, and the document is then written conditionally or its error named.
        let mut forbidden = Vec::new();
        for leaf in &doc.leaves {
            let (op, n) = leaf.updates[0];
            let field = format!("data.{}", leaf.path);
            match (op, n) {
                (Op::Inc, Number::Float(f)) => {
                    if let Some(guard) = float_guard(f) {
                        forbidden.push(doc! {field.clone(): guard});
                    }
                }
                (Op::Inc, Number::Int(_)) => {}
                (Op::Set, _) => forbidden.push(doc! {field.clone(): {"$type": "object"}}),
                (Op::Max | Op::Min, _) => {
                    forbidden.push(doc! {field.clone(): {"$type": "object"}});
                    if let Some(twin) = twin(n) {
                        forbidden.push(doc! {field.clone(): twin});
                    }
                }
            }
            let target = match op {
                Op::Inc => &mut inc,
                Op::Set => &mut set,
                Op::Max => &mut max,
                Op::Min => &mut min,
            };
            target.insert(field, bson_number(n));
        }
        if !forbidden.is_empty() {
            filter.insert("$nor", forbidden);
        }
        if let Some(at) = self.expire_at(doc.key) {
            set.insert("expire_at", at);
        }
        let mut update = Document::new();
        for (name, part) in [("$inc", inc), ("$set", set), ("$max", max), ("$min", min)] {
            if !part.is_empty() {
                update.insert(name, part);
            }
        }
        if let Some(stamp) = stamp {
            stamp.guard(&mut filter);
            update.insert("$push", stamp.entry());
        }
        Ok(doc! {"q": filter, "u": update, "upsert": true})
    }

    /// Removes the ids older than [`BATCH_ID_WINDOW`] and [`CLOCK_SKEW_MARGIN`] from the
    /// documents of a batch: one statement per document, in unordered `update` commands, each
    /// matching only a document whose oldest id is that old (`$pull` and the `$push` of the
    /// writes cannot share a statement: they change the same array). A failure is not the
    /// apply's (its writes are done): the ids stay until a later prune.
    async fn prune_batch_ids(&self, folded: &Folded<'_>, now: DateTime) {
        let cutoff = DateTime::from_millis(
            now.timestamp_millis()
                .saturating_sub((BATCH_ID_WINDOW + CLOCK_SKEW_MARGIN).as_millis() as i64),
        );
        let mut statements = Vec::with_capacity(folded.docs.len());
        for doc in &folded.docs {
            let Ok(mut filter) = self.inner.layout.identity(doc.key) else {
                continue;
            };
            filter.insert(format!("{BATCH_IDS}.0.at"), doc! {"$lt": cutoff});
            statements.push(doc! {
                "q": filter,
                "u": {"$pull": {BATCH_IDS: {"at": {"$lt": cutoff}}}},
                "upsert": false,
            });
        }
        for chunk in statements.chunks(self.inner.config.max_statements) {
            if self.update_command(chunk).await.is_err() {
                return;
            }
        }
    }

    /// Sends one unordered `update` command; returns the statements that failed, as (index,
    /// code, message).
    async fn update_command(
        &self,
        statements: &[Document],
    ) -> std::result::Result<Vec<(usize, i32, String)>, Refused> {
        let inner = &self.inner;
        let command = doc! {
            "update": inner.config.collection_name(),
            "updates": statements,
            "ordered": false,
            "writeConcern": inner.write_concern.clone(),
        };
        let reply = inner.database.run_command(command).await.map_err(|e| {
            if matches!(&*e.kind, mongodb::error::ErrorKind::Command(_)) {
                let mapped = map_error(e.clone());
                if mapped.is_retryable() {
                    Refused::Other(mapped)
                } else {
                    Refused::Command(e)
                }
            } else {
                Refused::Other(map_error(e))
            }
        })?;
        if let Ok(wce) = reply.get_document("writeConcernError") {
            // Applied on the primary, but not acknowledged as asked: sending it again would
            // apply it twice.
            return Err(Refused::Other(Error::backend(
                NAME,
                false,
                format!("the writes were applied but the write concern was not satisfied: {wce}"),
            )));
        }
        let mut failed = Vec::new();
        if let Ok(write_errors) = reply.get_array("writeErrors") {
            for e in write_errors {
                let Bson::Document(e) = e else { continue };
                let index = number_field(e, "index").unwrap_or(0);
                let mut code = number_field(e, "code").unwrap_or(0);
                let message = e.get_str("errmsg").unwrap_or("").to_owned();
                // A duplicate key in another unique index than the store's (one a user
                // added) is no lost race: sending the statement again cannot help.
                if code == i64::from(DUPLICATE_KEY)
                    && let Ok(pattern) = e.get_document("keyPattern")
                    && !pattern.keys().eq(self.identity_index_fields())
                {
                    code = -1;
                }
                if let (Ok(index), Ok(code)) = (usize::try_from(index), i32::try_from(code))
                    && index < statements.len()
                {
                    failed.push((index, code, message));
                }
            }
        }
        Ok(failed)
    }

    /// The fields of the store's unique index, in order.
    fn identity_index_fields(&self) -> impl Iterator<Item = &'static str> {
        let fields: &'static [&'static str] = match self.inner.layout.mode {
            IdMode::Full => &["key"],
            IdMode::Partial => &["key", "at"],
            IdMode::Separated => &["key", "granularity", "at"],
        };
        fields.iter().copied()
    }

    /// Reads the stored documents of some folded documents (all fields), aligned.
    async fn read_raw(&self, folded: &Folded<'_>, docs: &[usize]) -> Result<Vec<Option<Document>>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Key> = docs.iter().map(|&d| folded.docs[d].key.clone()).collect();
        let filter = self.keys_filter(&keys)?;
        let found = self.find_all(filter, None).await?;
        let mut by_ident: HashMap<Ident, Document> =
            found.into_iter().map(|d| (ident_of(&d), d)).collect();
        keys.iter()
            .map(|k| Ok(by_ident.remove(&self.inner.layout.ident(k)?)))
            .collect()
    }

    /// Replays the batch over the stored state of each document; returns the documents whose
    /// writes cannot apply, with their errors, and apart from them the documents that record
    /// the batch's id (their writes were applied by an earlier apply of the batch).
    async fn diagnose(
        &self,
        batch: &Batch,
        folded: &Folded<'_>,
        docs: &[usize],
        stamp: Option<&Stamp>,
    ) -> Result<(Vec<(usize, Error)>, Vec<usize>)> {
        let stored = self.read_raw(folded, docs).await?;
        let (mut named, mut applied) = (Vec::new(), Vec::new());
        for (&d, stored) in docs.iter().zip(stored) {
            let key = folded.docs[d].key;
            let values = match &stored {
                Some(s) => {
                    if let Some(stamp) = stamp {
                        match records(s, &stamp.id, key) {
                            Ok(true) => {
                                applied.push(d);
                                continue;
                            }
                            Ok(false) => {}
                            Err(e) => {
                                named.push((d, e));
                                continue;
                            }
                        }
                    }
                    data_of(s)?
                }
                None => Values::new(),
            };
            if let Err(e) = first_error(batch, &[key], vec![values]) {
                named.push((d, e));
            }
        }
        Ok((named, applied))
    }
}

/// A batch's id as a write records it: the id and the time of this apply.
struct Stamp {
    batch: BatchId,
    /// The id as stored: 16 bytes, big endian ([`BatchId::to_bytes`]).
    id: Bson,
    at: DateTime,
}

impl Stamp {
    fn new(batch: BatchId) -> Self {
        Stamp {
            batch,
            id: batch_id_bson(batch),
            at: DateTime::now(),
        }
    }

    /// Adds to a statement's filter: the document does not record this id.
    fn guard(&self, filter: &mut Document) {
        filter.insert(format!("{BATCH_IDS}.id"), doc! {"$ne": self.id.clone()});
    }

    /// The `$push` that records this id.
    fn entry(&self) -> Document {
        doc! {BATCH_IDS: {"id": self.id.clone(), "at": self.at}}
    }
}

/// A batch id as stored in `_b`: BSON binary (generic subtype) of its 16 big-endian bytes.
pub(crate) fn batch_id_bson(id: BatchId) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: id.to_bytes().to_vec(),
    })
}

/// Whether this apply of batch `id` also prunes old ids: one id in [`PRUNE_ONE_IN`], picked
/// by a multiplicative hash of all its bits (so sequential ids, or ids whose low bits are a
/// coarse clock, spread evenly).
pub(crate) fn prunes(id: BatchId) -> bool {
    const _: () = assert!(PRUNE_ONE_IN.is_power_of_two() && PRUNE_ONE_IN > 1);
    let bits = id.as_u128();
    let folded = (bits >> 64) as u64 ^ bits as u64;
    // The top bits of a multiplication by 2^64 / golden ratio (Fibonacci hashing).
    folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - PRUNE_ONE_IN.ilog2()) == 0
}

/// Whether a stored document records the batch id `id` (stored as [`batch_id_bson`]).
///
/// # Errors
/// [`Error::InvalidValue`] naming `_b` and the key when the document holds something other
/// than an array there (no write of this store can make it so: the writes would fail).
fn records(stored: &Document, id: &Bson, key: &Key) -> Result<bool> {
    match stored.get(BATCH_IDS) {
        None => Ok(false),
        Some(Bson::Array(entries)) => Ok(entries
            .iter()
            .any(|e| matches!(e, Bson::Document(e) if e.get("id") == Some(id)))),
        Some(other) => Err(Error::InvalidValue {
            path: Some(BATCH_IDS.to_owned()),
            reason: format!(
                "the document of {key} holds a {:?} in {BATCH_IDS:?}, where this store records \
                 the ids of the batches applied to it (an array): it cannot take a batch with an \
                 id",
                other.element_type()
            ),
        }),
    }
}

/// Why an `update` command returned no per-statement outcome.
enum Refused {
    /// The server refused the command as a whole.
    Command(mongodb::error::Error),
    /// Any other failure, mapped.
    Other(Error),
}

fn gave_up(key: &Key) -> Error {
    Error::backend(
        NAME,
        true,
        format!(
            "gave up writing {key} after {ATTEMPTS} attempts: concurrent writes kept changing it"
        ),
    )
}

/// A number as BSON: integers as Int64, floats as Double.
pub(crate) fn bson_number(n: Number) -> Bson {
    match n {
        Number::Int(i) => Bson::Int64(i),
        Number::Float(f) => Bson::Double(f),
    }
}

/// The condition on a stored number to which adding `f` would give an infinity (MongoDB's
/// `$inc` of doubles does not fail there): `None` when no finite number can overflow (only a
/// float near the range's edge can).
fn float_guard(f: f64) -> Option<Document> {
    if f == 0.0 {
        return None;
    }
    // The largest stored number t with t + |f| finite, found exactly by a binary search over
    // the floats in order (addition is monotonic); for a negative f the mirror image.
    let g = f.abs();
    if (f64::MAX + g).is_finite() {
        return None;
    }
    // 0 + g is finite (g is), MAX + g is not.
    let (mut lo, mut hi) = (ordered(0.0), ordered(f64::MAX));
    // Invariant: from_ordered(lo) + g is finite, from_ordered(hi) + g is not.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if (from_ordered(mid) + g).is_finite() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let t = from_ordered(lo);
    Some(if f > 0.0 {
        doc! {"$gt": t}
    } else {
        doc! {"$lt": -t}
    })
}

/// The stored number of the other kind equal to `n`, as a condition, where one exists: an
/// integer that a double holds exactly, or an integral double in the `i64` range.
fn twin(n: Number) -> Option<Document> {
    match n {
        Number::Int(i) => {
            let f = i as f64;
            // `f as i128` is exact for every double in this range.
            (f as i128 == i128::from(i)).then(|| doc! {"$eq": f, "$type": "double"})
        }
        Number::Float(f) => {
            let in_range = f.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f);
            in_range.then(|| doc! {"$eq": f as i64, "$type": ["int", "long"]})
        }
    }
}

/// A float's place in the total order of floats, as an integer (so that a binary search can
/// step over floats).
fn ordered(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The inverse of [`ordered`].
fn from_ordered(o: i64) -> f64 {
    f64::from_bits((o ^ (((o >> 63) as u64) >> 1) as i64) as u64)
}

fn number_field(d: &Document, name: &str) -> Option<i64> {
    match d.get(name)? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(f) => Some(*f as i64),
        _ => None,
    }
}

/// The `data` of a stored document as [`Values`]: Int32 and Int64 as integers, Double as
/// floats, embedded documents as maps.
///
/// # Errors
/// [`Error::InvalidValue`] naming the path of anything else (a string, an array, a decimal,
/// a non-finite double) or of a field name the name rule refuses.
pub(crate) fn data_of(document: &Document) -> Result<Values> {
    match document.get("data") {
        None | Some(Bson::Null) => Ok(Values::new()),
        Some(Bson::Document(d)) => to_values(d, ""),
        Some(other) => Err(not_a_number("data", other)),
    }
}

fn to_values(d: &Document, prefix: &str) -> Result<Values> {
    let mut out = Values::new();
    for (name, value) in d {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let value: Value = match value {
            Bson::Int32(i) => Value::Number(Number::Int(i64::from(*i))),
            Bson::Int64(i) => Value::Number(Number::Int(*i)),
            Bson::Double(f) => {
                Value::Number(Number::float(*f).map_err(|_| not_a_number(&path, value))?)
            }
            Bson::Document(inner) => Value::Map(to_values(inner, &path)?),
            other => return Err(not_a_number(&path, other)),
        };
        out.insert(name.clone(), value)
            .map_err(|e| Error::InvalidValue {
                path: Some(path.clone()),
                reason: format!("stored field name is not a valid stats name: {e}"),
            })?;
    }
    Ok(out)
}

fn not_a_number(path: &str, value: &Bson) -> Error {
    Error::InvalidValue {
        path: Some(path.to_owned()),
        reason: format!(
            "stored value {value} ({:?}) is not a finite number or a map",
            value.element_type()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_guards_are_exact() {
        // Small steps cannot overflow: MAX + 1 rounds back to MAX.
        assert!(float_guard(1.0).is_none());
        assert!(float_guard(-1e-300).is_none());
        for f in [1e300, f64::MAX, -1e308, f64::MAX / 3.0, 1e292, -f64::MAX] {
            let guard = float_guard(f).unwrap();
            let (op, t) = guard.iter().next().unwrap();
            let t = t.as_f64().unwrap();
            assert!((t + f).is_finite(), "{f}: {t}");
            let next = if op == "$gt" {
                t.next_up()
            } else {
                t.next_down()
            };
            assert!(!(next + f).is_finite(), "{f}: {t}");
        }
        // The other kind's equal number, where a double or an i64 holds it exactly.
        assert_eq!(
            twin(Number::Int(3)),
            Some(doc! {"$eq": 3.0, "$type": "double"})
        );
        assert_eq!(twin(Number::Int(i64::MAX)), None);
        assert!(twin(Number::Int(i64::MIN)).is_some());
        assert!(twin(Number::Float(0.5)).is_none());
        assert!(twin(Number::Float(9.3e18)).is_none());
        assert_eq!(
            twin(Number::Float(-9_223_372_036_854_775_808.0)),
            Some(doc! {"$eq": i64::MIN, "$type": ["int", "long"]})
        );
        assert!(float_guard(0.0).is_none());
        assert!(twin(Number::Float(2f64.powi(63))).is_none());
    }

    #[test]
    fn one_batch_id_in_eight_prunes() {
        let share = |ids: &mut dyn Iterator<Item = BatchId>| {
            let (mut n, mut hits) = (0, 0);
            for id in ids {
                n += 1;
                hits += usize::from(prunes(id));
            }
            hits as f64 / n as f64
        };
        let expected = 1.0 / f64::from(PRUNE_ONE_IN);
        // Sequential ids, ids whose low bits count microseconds (a coarse clock), fresh ids.
        let samples: [(&str, Box<dyn Iterator<Item = BatchId>>); 3] = [
            (
                "sequential",
                Box::new((0..80_000_u128).map(BatchId::from_u128)),
            ),
            (
                "coarse clock",
                Box::new((0..80_000_u128).map(|n| BatchId::from_u128((7 << 64) | (n * 1000)))),
            ),
            ("new", Box::new((0..80_000).map(|_| BatchId::new()))),
        ];
        for (what, mut ids) in samples {
            let got = share(&mut ids);
            assert!(
                (got - expected).abs() < 0.01,
                "{what}: {got} of the ids prune, not about {expected}"
            );
        }
    }

    #[test]
    fn recorded_batch_ids_are_found() {
        let key = Key::bucket("orders", "1h".parse().unwrap(), 0).unwrap();
        let (a, b) = (BatchId::from_u128(1), BatchId::from_u128(2));
        let (a_bson, b_bson) = (batch_id_bson(a), batch_id_bson(b));
        assert_eq!(
            a_bson,
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: [0; 15].into_iter().chain([1]).collect(),
            })
        );
        let now = DateTime::now();
        let stored = doc! {"data": {"n": 1}, BATCH_IDS: [{"id": a_bson.clone(), "at": now}, 5]};
        assert!(records(&stored, &a_bson, &key).unwrap());
        assert!(!records(&stored, &b_bson, &key).unwrap());
        assert!(!records(&doc! {"data": {"n": 1}}, &a_bson, &key).unwrap());
        // The same bytes as a string are another id.
        let text = doc! {BATCH_IDS: [{"id": a.to_string(), "at": now}]};
        assert!(!records(&text, &a_bson, &key).unwrap());
        for bad in [
            doc! {BATCH_IDS: 1},
            doc! {BATCH_IDS: {"id": a_bson.clone()}},
        ] {
            let err = records(&bad, &a_bson, &key).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidValue { path: Some(p), .. } if p == BATCH_IDS)
                    && err.to_string().contains("orders")
                    && !err.to_string().contains("  "),
                "{bad}: {err}"
            );
        }
        // The entry a write pushes, and the filter that skips a document holding it.
        let stamp = Stamp::new(a);
        assert_eq!(
            stamp.entry(),
            doc! {BATCH_IDS: {"id": a_bson.clone(), "at": stamp.at}}
        );
        let mut filter = doc! {"key": "k"};
        stamp.guard(&mut filter);
        assert_eq!(filter, doc! {"key": "k", "_b.id": {"$ne": a_bson}});
    }

    #[test]
    fn stored_documents_become_values() {
        let d = doc! {"data": {"a": 1_i32, "b": 2_i64, "c": 0.5, "m": {"x": -0.0}}};
        let v = data_of(&d).unwrap();
        assert_eq!(v.number_at("a"), Some(Number::Int(1)));
        assert_eq!(v.number_at("b"), Some(Number::Int(2)));
        assert_eq!(v.number_at("c"), Some(Number::Float(0.5)));
        assert_eq!(v.number_at("m.x"), Some(Number::Float(0.0)));
        assert!(data_of(&doc! {}).unwrap().is_empty());
        for bad in [
            doc! {"data": {"s": "x"}},
            doc! {"data": {"m": {"n": f64::NAN}}},
            doc! {"data": {"a": [1]}},
            doc! {"data": 5},
            doc! {"data": {"*": 1}},
        ] {
            let err = data_of(&bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidValue { path: Some(_), .. }),
                "{bad}: {err}"
            );
        }
    }
}
