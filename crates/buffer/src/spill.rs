//! The spill file: batches that could not be written, kept on disk until they are.
//!
//! One JSON object per line: `{"id": "<32 hex digits>", "writes": [{"op": "inc", "keys":
//! [{"metric": "orders", "granularity": "1h", "start": 1700000000}], "fields": [["count", 1]]}]}`
//! (a status key has no granularity and start). A line is appended and synced to disk when a
//! batch first fails after its retries; the file is emptied when every spilled batch is
//! written. On start, its batches are written first, with their ids.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use stats_core::{Batch, BatchId, Error, Fields, Granularity, Key, Number, Op, Result};

#[derive(Serialize, Deserialize)]
struct Line {
    id: String,
    writes: Vec<LineWrite>,
}

#[derive(Serialize, Deserialize)]
struct LineWrite {
    op: String,
    keys: Vec<LineKey>,
    fields: Vec<(String, Number)>,
}

#[derive(Serialize, Deserialize)]
struct LineKey {
    metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    granularity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<i64>,
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Inc => "inc",
        Op::Set => "set",
        Op::Max => "max",
        Op::Min => "min",
    }
}

fn encode(batch: &Batch, id: BatchId) -> Result<String> {
    let line = Line {
        id: id.to_string(),
        writes: batch
            .writes()
            .iter()
            .map(|w| LineWrite {
                op: op_name(w.op()).to_owned(),
                keys: w
                    .keys()
                    .iter()
                    .map(|k| LineKey {
                        metric: k.metric().to_owned(),
                        granularity: k.granularity().map(|g| g.to_string()),
                        start: k.start(),
                    })
                    .collect(),
                fields: w.fields().to_vec(),
            })
            .collect(),
    };
    serde_json::to_string(&line).map_err(|e| Error::InvalidInput(format!("spill line: {e}")))
}

fn decode(text: &str) -> Result<Batch> {
    let line: Line = serde_json::from_str(text)
        .map_err(|e| Error::InvalidInput(format!("not a spilled batch: {e}")))?;
    let mut batch = Batch::new().with_id(line.id.parse()?);
    for write in line.writes {
        let op = match write.op.as_str() {
            "inc" => Op::Inc,
            "set" => Op::Set,
            "max" => Op::Max,
            "min" => Op::Min,
            other => return Err(Error::InvalidInput(format!("unknown operation {other:?}"))),
        };
        let keys = write
            .keys
            .into_iter()
            .map(|k| match (k.granularity, k.start) {
                (Some(g), Some(start)) => Key::bucket(&k.metric, g.parse::<Granularity>()?, start),
                (None, None) => Key::status(&k.metric),
                _ => Err(Error::InvalidInput(format!(
                    "key of {:?} has a granularity or a start, not both",
                    k.metric
                ))),
            })
            .collect::<Result<Vec<Key>>>()?;
        batch.push_flat(op, keys, Fields::from_pairs(write.fields)?);
    }
    Ok(batch)
}

/// An open spill file.
pub(crate) struct Spill {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: File,
    /// Ids of the batches in the file not yet written.
    unwritten: HashSet<BatchId>,
}

impl Spill {
    /// Opens (or creates) the spill file at `path` and reads the batches it holds. A last line
    /// cut short (a crash while appending) is dropped: its batch was still in memory then, and
    /// it was lost with the process, as anything pending.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the file cannot be opened or a line before the last is not
    /// a spilled batch (naming the file and line).
    pub(crate) fn open(path: &Path) -> Result<(Spill, Vec<Batch>)> {
        let io = |what: &str, e: std::io::Error| {
            Error::InvalidInput(format!("spill file {}: {what}: {e}", path.display()))
        };
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| io("cannot open", e))?;
        let mut lines = Vec::new();
        for line in BufReader::new(&file).lines() {
            lines.push(line.map_err(|e| io("cannot read", e))?);
        }
        let mut batches = Vec::new();
        let count = lines.len();
        for (n, line) in lines.iter().enumerate() {
            match decode(line) {
                Ok(batch) => batches.push(batch),
                Err(e) if n + 1 == count => {
                    log::warn!(
                        "spill file {}: the last line is cut short and skipped ({e})",
                        path.display()
                    );
                }
                Err(e) => {
                    return Err(Error::InvalidInput(format!(
                        "spill file {} line {}: {e}",
                        path.display(),
                        n + 1
                    )));
                }
            }
        }
        let unwritten = batches.iter().filter_map(Batch::id).collect();
        Ok((
            Spill {
                path: path.to_owned(),
                state: Mutex::new(State { file, unwritten }),
            },
            batches,
        ))
    }

    /// Appends `batch` (which has an id) and syncs, unless it is in the file already.
    pub(crate) fn append(&self, batch: &Batch) -> Result<()> {
        let Some(id) = batch.id() else {
            return Ok(());
        };
        let mut state = self.state.lock();
        if state.unwritten.contains(&id) {
            return Ok(());
        }
        let mut line = encode(batch, id)?;
        line.push('\n');
        let written = state
            .file
            .write_all(line.as_bytes())
            .and_then(|()| state.file.sync_data());
        written.map_err(|e| {
            Error::InvalidInput(format!(
                "spill file {}: cannot append: {e}",
                self.path.display()
            ))
        })?;
        state.unwritten.insert(id);
        Ok(())
    }

    /// Notes that `batch` was written; empties the file when no spilled batch is left.
    pub(crate) fn written(&self, batch: &Batch) {
        let Some(id) = batch.id() else {
            return;
        };
        let mut state = self.state.lock();
        if state.unwritten.remove(&id)
            && state.unwritten.is_empty()
            && let Err(e) = state.file.set_len(0).and_then(|()| state.file.sync_data())
        {
            // Harmless: the batches in it are written, a replay applies them once by id.
            log::warn!("spill file {}: cannot empty it: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stats_core::values;

    #[test]
    fn lines_round_trip() {
        let g = "1h".parse().unwrap();
        let mut batch = Batch::new().with_id(BatchId::new());
        batch
            .inc(
                [
                    Key::bucket("a.b", g, -3600).unwrap(),
                    Key::status("é").unwrap(),
                ],
                &values!({"n": 1, "f": 1.0, "m": {"x": 2.5}}),
            )
            .unwrap();
        batch
            .max([Key::bucket("a", g, 0).unwrap()], &values!({"n": i64::MIN}))
            .unwrap();
        let line = encode(&batch, batch.id().unwrap()).unwrap();
        let back = decode(&line).unwrap();
        assert_eq!(back, batch);
        let f = back.writes()[0]
            .fields()
            .iter()
            .find(|(p, _)| p == "f")
            .unwrap()
            .1;
        assert!(
            matches!(f, Number::Float(z) if z == 1.0),
            "a whole float stays a float: {f:?}"
        );
        for bad in [
            "{}",
            r#"{"id":"xyz","writes":[]}"#,
            r#"{"id":"00000000000000000000000000000001","writes":[{"op":"add","keys":[],"fields":[]}]}"#,
            r#"{"id":"00000000000000000000000000000001","writes":[{"op":"inc","keys":[{"metric":"a::b","granularity":"1h","start":0}],"fields":[]}]}"#,
            r#"{"id":"00000000000000000000000000000001","writes":[{"op":"inc","keys":[{"metric":"a","start":0}],"fields":[]}]}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
