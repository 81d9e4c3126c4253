//! `stats import FILE|-`: events from a JSON-lines file (or standard input) into the store,
//! through the write buffer ([`BufferedTracker`]).
//!
//! Each line is one event of the [contract](crate::contract) (`key`, `at`, `values`, `op`);
//! lines of whitespace only are skipped. A line without `at` is counted at the time the
//! import started.
//!
//! ```text
//! $ cat orders.jsonl
//! {"key": "orders", "at": "2026-12-07T10:15:00Z", "values": {"count": 1, "total": 49.9}}
//! {"key": "orders", "at": 1796638500, "values": {"count": 1, "total": 12.5}}
//! {"key": "stock", "at": 1796638500, "values": {"units": 140}, "op": "set"}
//! $ stats import orders.jsonl
//! imported 3 events from 3 lines in 0.01 s (300 events/s); 0 bad lines skipped
//! $ producer | stats import - --on-error fail
//! ```
//!
//! - **Bad lines** (not JSON, an unknown field, a bad key, time, op, value name or number, not
//!   UTF-8, longer than [`MAX_LINE`] bytes) are reported on standard error as
//!   `line N: <what is wrong>`, N counted from 1. Each line is checked whole before any of it
//!   is handed to the buffer: a bad line writes nothing. With `--on-error skip` (the default)
//!   the import goes on, writes every good line and exits with code 2 if any line was bad;
//!   with `--on-error fail` it stops at the first bad line, writes (flushes) the lines before
//!   it and exits with code 2.
//! - **Refused by the store**: a write the store refuses when the buffer flushes (an increment
//!   that overflows the integer already stored, say) cannot be pinned to a line any more, as
//!   the buffer has summed the events of one bucket; they are counted and reported as leaf
//!   updates, with the store's message, and the exit code is 1. An overflow among the lines of
//!   one import (a `set` to `i64::MAX` and then an increment of the same bucket) is found
//!   while the buffer folds them and reported as a bad line.
//! - An event whose `values` are empty (`{}`) is taken and writes nothing.
//! - **Summary**: on standard error, `imported N events from M lines in T s (R events/s);
//!   K bad lines skipped`. Standard output stays empty.
//! - **Interrupted** (Ctrl-C): the import stops after the chunk of lines at hand, writes
//!   what it has read and exits with code 1, naming the last line written.
//! - **Progress** (`--progress`): on standard error, a bar of the bytes read of the file's size
//!   with the event rate and the time left, or for standard input a spinner with the count and
//!   the rate. `auto` (the default) shows it only when standard error is a terminal.
//!
//! How it is fast: one thread reads large blocks and cuts them into chunks of whole lines,
//! the chunks are parsed on the blocking thread pool (all cores), and one task hands the
//! parsed events to the buffer in the order of the lines (the order matters for `set`, `max`
//! and `min`). Memory stays bounded: a few chunks in flight, and no line is kept beyond
//! [`MAX_LINE`] bytes while it is read.

use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use jiff::Timestamp;
use stats::buffer::{BufferedTracker, Coalescing};
use stats::{Fields, Op};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cli::{Context, ImportArgs, OnError, Progress};
use crate::contract::Event;
use crate::error::{CliError, CliResult};

/// The longest line taken, in bytes (its newline not counted): 1 MiB. A longer line is
/// refused as a bad line, without being read into memory whole.
pub const MAX_LINE: usize = 1 << 20;

/// The size of the chunks of lines handed to the parsers.
const CHUNK: usize = 256 << 10;

/// The size of one read.
const READ: usize = 256 << 10;

/// Chunks read ahead of the writer (each parsed or being parsed).
const AHEAD: usize = 8;

/// Runs `stats import`.
///
/// # Errors
/// [`CliError::Input`] (exit code 2) when a line was bad (after writing every good one, or
/// at the first one with `--on-error fail`); [`CliError::Failed`] (exit code 1) when the file
/// cannot be read, or the store refused or could not take some of the writes.
pub async fn run(cx: &Context, args: &ImportArgs) -> CliResult<String> {
    let stdin = args.file.as_os_str() == "-";
    let (input, size): (Box<dyn Read + Send>, Option<u64>) = if stdin {
        (Box::new(io::stdin()), None)
    } else {
        let name = args.file.display();
        let file = File::open(&args.file)
            .map_err(|e| CliError::failed(format!("cannot open {name}: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| CliError::failed(format!("cannot read {name}: {e}")))?;
        if meta.is_dir() {
            return Err(CliError::input(format!(
                "{name} is a directory, not a file"
            )));
        }
        let size = meta.is_file().then_some(meta.len());
        (Box::new(file), size)
    };
    let source = if stdin {
        "standard input".to_owned()
    } else {
        args.file.display().to_string()
    };

    let refused = Arc::new(Refused::default());
    let on_refused = Arc::clone(&refused);
    let settings = Coalescing::default().on_refused(move |batch, error| {
        on_refused.add(batch.len(), error);
    });
    let tracker =
        BufferedTracker::with(Arc::clone(&cx.stores.metrics), cx.config.clone(), settings)
            .map_err(|e| CliError::failed(format!("cannot start the write buffer: {e}")))?;

    let show = match args.progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => io::stderr().is_terminal(),
    };
    let bar = progress_bar(show, size);

    let started = Instant::now();
    let now = Timestamp::now();
    let (tx, mut rx) = mpsc::channel::<Piece>(AHEAD);
    let runtime = tokio::runtime::Handle::current();
    // A plain thread, not the blocking pool: reading a terminal's standard input may block
    // for ever, and the runtime waits for its blocking tasks when it stops.
    std::thread::Builder::new()
        .name("stats-import-reader".into())
        .spawn(move || read_lines(input, &tx, &runtime, now))
        .map_err(|e| CliError::failed(format!("cannot start the reader thread: {e}")))?;

    let mut tally = Tally::default();
    let mut stop: Option<CliError> = None;
    // Ctrl-C stops the import between two chunks; what was read is written before it ends.
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    'pieces: loop {
        let piece = tokio::select! {
            piece = rx.recv() => piece,
            _ = &mut interrupted => {
                stop = Some(CliError::failed(format!(
                    "interrupted after line {} of {source}: the events of the lines up to it \
                     are written",
                    tally.lines
                )));
                break 'pieces;
            }
        };
        let Some(piece) = piece else {
            break 'pieces;
        };
        match piece {
            Piece::Chunk {
                bytes,
                lines,
                parsed,
            } => {
                let items = match parsed.await {
                    Ok(items) => items,
                    Err(e) => {
                        stop = Some(CliError::failed(format!("a parser task failed: {e}")));
                        break 'pieces;
                    }
                };
                for item in items {
                    let result = match item.parsed {
                        Ok(p) => tracker
                            .write(p.op, &p.key, p.at, &p.fields)
                            .await
                            .map_err(|e| match CliError::from(e) {
                                CliError::Input(message) => Bad::Line(message),
                                other => Bad::Fatal(other),
                            }),
                        Err(message) => Err(Bad::Line(message)),
                    };
                    match result {
                        Ok(()) => tally.events += 1,
                        Err(Bad::Line(message)) => {
                            if let Some(error) = tally.bad_line(&bar, item.line, &message, args) {
                                stop = Some(error);
                                break 'pieces;
                            }
                        }
                        Err(Bad::Fatal(error)) => {
                            stop = Some(CliError::failed(format!(
                                "line {}: the write buffer failed: {error}",
                                item.line
                            )));
                            break 'pieces;
                        }
                    }
                }
                tally.lines += lines;
                tally.progress(&bar, bytes, started);
            }
            Piece::Long { line, len } => {
                let message = too_long(len);
                tally.lines += 1;
                if let Some(error) = tally.bad_line(&bar, line, &message, args) {
                    stop = Some(error);
                    break 'pieces;
                }
                tally.progress(&bar, len + 1, started);
            }
            Piece::Failed(e) => {
                stop = Some(CliError::failed(format!(
                    "reading {source} after line {}: {e}",
                    tally.lines
                )));
                break 'pieces;
            }
        }
    }
    // Stops the reader (its next send fails) when the loop ended early.
    drop(rx);

    let unwritten = tracker.shutdown().await;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let summary = tally.summary(elapsed);
    eprintln!("{summary}");

    let mut failures = Vec::new();
    if !unwritten.is_empty() {
        let updates: usize = unwritten.iter().map(|b| b.len()).sum();
        failures.push(format!(
            "{} batches ({updates} leaf updates) could not be written to the store {}",
            unwritten.len(),
            cx.stores.shown()
        ));
    }
    if let Some(text) = refused.describe() {
        failures.push(text);
    }
    match stop {
        Some(CliError::Input(message)) if failures.is_empty() => {
            return Err(CliError::Input(format!(
                "{message}; stopped there (--on-error fail): the {} events of the lines before \
                 it are written",
                tally.events
            )));
        }
        Some(CliError::Input(message)) => failures.insert(0, message),
        Some(other) => failures.insert(0, other.to_string()),
        None => {}
    }
    if !failures.is_empty() {
        if tally.bad > 0 && !tally.stopped {
            failures.push(format!("{} skipped", lines(tally.bad)));
        }
        return Err(CliError::failed(failures.join("; ")));
    }
    if tally.bad > 0 {
        return Err(CliError::input(format!(
            "{} in {source} skipped (the first: line {}); every other line is written",
            lines(tally.bad),
            tally.first_bad.unwrap_or_default()
        )));
    }
    Ok(String::new())
}

/// Why a line was not written.
enum Bad {
    /// The line is bad: reported, skipped or fatal by `--on-error`.
    Line(String),
    /// The buffer itself failed: the import stops.
    Fatal(CliError),
}

/// What the store refused at flush time.
#[derive(Default)]
struct Refused {
    updates: AtomicU64,
    batches: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Refused {
    fn add(&self, updates: usize, error: &stats::Error) {
        self.updates.fetch_add(updates as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert_with(|| error.to_string());
        }
    }

    fn describe(&self) -> Option<String> {
        let batches = self.batches.load(Ordering::Relaxed);
        if batches == 0 {
            return None;
        }
        let first = self
            .first
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        Some(format!(
            "the store refused {} leaf updates ({batches} batches) when the buffer wrote them, \
             so they are not written: {first}",
            self.updates.load(Ordering::Relaxed)
        ))
    }
}

/// The counts of one import.
#[derive(Default)]
struct Tally {
    events: u64,
    lines: u64,
    bad: u64,
    first_bad: Option<u64>,
    bytes: u64,
    /// Stopped at a bad line (`--on-error fail`).
    stopped: bool,
}

impl Tally {
    /// Reports a bad line; returns the error that stops the import with `--on-error fail`.
    fn bad_line(
        &mut self,
        bar: &ProgressBar,
        line: u64,
        message: &str,
        args: &ImportArgs,
    ) -> Option<CliError> {
        self.bad += 1;
        self.first_bad.get_or_insert(line);
        match args.on_error {
            OnError::Skip => {
                bar.suspend(|| eprintln!("line {line}: {message}"));
                None
            }
            OnError::Fail => {
                self.lines = line;
                self.stopped = true;
                Some(CliError::Input(format!("line {line}: {message}")))
            }
        }
    }

    fn progress(&mut self, bar: &ProgressBar, bytes: u64, started: Instant) {
        self.bytes += bytes;
        if bar.is_hidden() {
            return;
        }
        bar.set_position(self.bytes);
        bar.set_message(format!(
            "{} events ({})",
            self.events,
            Rate(self.events, started.elapsed())
        ));
    }

    fn summary(&self, elapsed: Duration) -> String {
        let head = format!(
            "imported {} events from {} lines in {:.2} s ({})",
            self.events,
            self.lines,
            elapsed.as_secs_f64(),
            Rate(self.events, elapsed),
        );
        match (self.stopped, self.first_bad) {
            (true, Some(line)) => format!("{head}; stopped at bad line {line}"),
            _ => format!("{head}; {} skipped", lines(self.bad)),
        }
    }
}

/// Events per second.
struct Rate(u64, Duration);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.1.as_secs_f64();
        if secs <= 0.0 {
            return write!(f, "- events/s");
        }
        write!(f, "{:.0} events/s", self.0 as f64 / secs)
    }
}

fn too_long(len: u64) -> String {
    format!("{len} bytes, longer than the longest line taken ({MAX_LINE} bytes); refused")
}

/// What the reader sends the writer, in the order of the lines.
enum Piece {
    /// A chunk of whole lines, being parsed.
    Chunk {
        /// Its size in bytes.
        bytes: u64,
        /// The lines it holds.
        lines: u64,
        /// Its lines' events or errors.
        parsed: JoinHandle<Vec<Item>>,
    },
    /// Line `line` was longer than [`MAX_LINE`] (`len` bytes); it was skipped while read.
    Long { line: u64, len: u64 },
    /// Reading failed.
    Failed(io::Error),
}

/// One non-blank line, parsed.
struct Item {
    line: u64,
    parsed: Result<Parsed, String>,
}

/// An event ready for [`BufferedTracker::write`].
struct Parsed {
    key: String,
    at: Timestamp,
    op: Op,
    fields: Fields,
}

/// Reads `input` to its end (or until the writer stops listening) and sends its lines to the
/// writer in chunks, each parsed on the blocking thread pool.
fn read_lines(
    mut input: Box<dyn Read + Send>,
    tx: &mpsc::Sender<Piece>,
    runtime: &tokio::runtime::Handle,
    now: Timestamp,
) {
    let send_chunk = |chunk: Vec<u8>, first: u64| -> Option<u64> {
        let mut lines = memchr::memchr_iter(b'\n', &chunk).count() as u64;
        if chunk.last().is_some_and(|b| *b != b'\n') {
            lines += 1;
        }
        let bytes = chunk.len() as u64;
        let parsed = runtime.spawn_blocking(move || parse_chunk(&chunk, first, now));
        tx.blocking_send(Piece::Chunk {
            bytes,
            lines,
            parsed,
        })
        .ok()
        .map(|()| lines)
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + READ);
    // The number of the first line in `buf`.
    let mut line: u64 = 1;
    // A line longer than MAX_LINE being skipped: its number and its bytes so far.
    let mut skipping: Option<(u64, u64)> = None;
    loop {
        let start = buf.len();
        buf.resize(start + READ, 0);
        let n = match input.read(&mut buf[start..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                buf.truncate(start);
                continue;
            }
            Err(e) => {
                let _ = tx.blocking_send(Piece::Failed(e));
                return;
            }
        };
        buf.truncate(start + n);
        let eof = n == 0;
        if let Some((long, len)) = skipping {
            match memchr::memchr(b'\n', &buf) {
                Some(i) => {
                    buf.drain(..=i);
                    skipping = None;
                    let len = len + i as u64;
                    if tx.blocking_send(Piece::Long { line: long, len }).is_err() {
                        return;
                    }
                    line = long + 1;
                }
                None => {
                    let len = len + buf.len() as u64;
                    buf.clear();
                    if eof {
                        let _ = tx.blocking_send(Piece::Long { line: long, len });
                        return;
                    }
                    skipping = Some((long, len));
                    continue;
                }
            }
        }
        if eof {
            if !buf.is_empty() {
                send_chunk(buf, line);
            }
            return;
        }
        // A short read means no more input is at hand (a pipe from a slow producer): what
        // has come is written now rather than when a whole chunk has come.
        if buf.len() < CHUNK && n == READ {
            continue;
        }
        match memchr::memrchr(b'\n', &buf) {
            Some(i) => {
                let chunk = buf[..=i].to_vec();
                buf.drain(..=i);
                match send_chunk(chunk, line) {
                    Some(lines) => line += lines,
                    None => return,
                }
            }
            None if buf.len() > MAX_LINE => {
                skipping = Some((line, buf.len() as u64));
                buf.clear();
            }
            None => {}
        }
    }
}

/// Parses the lines of `chunk`, the first of them line `first`; blank lines give no item.
fn parse_chunk(chunk: &[u8], first: u64, now: Timestamp) -> Vec<Item> {
    let mut items = Vec::with_capacity(chunk.len() / 64 + 1);
    let mut line = first;
    let mut rest = chunk;
    while !rest.is_empty() {
        let (raw, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if !raw.iter().all(u8::is_ascii_whitespace) {
            items.push(Item {
                line,
                parsed: parse_line(raw, now),
            });
        }
        line += 1;
    }
    items
}

fn parse_line(raw: &[u8], now: Timestamp) -> Result<Parsed, String> {
    if raw.len() > MAX_LINE {
        return Err(too_long(raw.len() as u64));
    }
    let text = std::str::from_utf8(raw).map_err(|e| {
        format!(
            "not UTF-8 text (an invalid byte at byte {} of the line)",
            e.valid_up_to() + 1
        )
    })?;
    let (event, fields) = Event::parse_fields(text, now).map_err(|e| e.to_string())?;
    Ok(Parsed {
        key: event.key,
        at: event.at,
        op: event.op,
        fields,
    })
}

/// The progress bar: hidden unless `show`; a bar of bytes when the size is known, a spinner
/// otherwise.
fn progress_bar(show: bool, size: Option<u64>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    // `--progress always` draws on standard error even when it is not a terminal, which
    // indicatif's own stderr target declines.
    let target = if io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(5)
    } else {
        ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), 5)
    };
    let (bar, template) = match size {
        Some(size) => (
            ProgressBar::with_draw_target(Some(size), target),
            "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg}, ETA {eta}",
        ),
        None => (
            ProgressBar::with_draw_target(None, target),
            "{spinner} {elapsed_precise} {bytes} read, {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Standard error as a terminal, for `--progress always` when it is a pipe or a file.
#[derive(Debug)]
struct Stderr;

impl Stderr {
    fn put(&self, text: &str) -> io::Result<()> {
        io::stderr().write_all(text.as_bytes())
    }
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(80)
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}A"))
        }
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}B"))
        }
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}C"))
        }
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}D"))
        }
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.put(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.put(s)
    }

    fn clear_line(&self) -> io::Result<()> {
        self.put("\r\x1b[2K")
    }

    fn flush(&self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// `1 bad line`, `2 bad lines`.
fn lines(n: u64) -> String {
    if n == 1 {
        "1 bad line".to_owned()
    } else {
        format!("{n} bad lines")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    /// Runs the reader over `input`; returns each non-blank line's number and its event's key
    /// or error.
    async fn read_all(input: Vec<u8>) -> Vec<(u64, Result<String, String>)> {
        let (tx, mut rx) = mpsc::channel(AHEAD);
        let runtime = tokio::runtime::Handle::current();
        let reader = std::thread::spawn(move || {
            read_lines(Box::new(io::Cursor::new(input)), &tx, &runtime, now());
        });
        let mut out = Vec::new();
        while let Some(piece) = rx.recv().await {
            match piece {
                Piece::Chunk { parsed, .. } => {
                    for item in parsed.await.unwrap() {
                        out.push((item.line, item.parsed.map(|p| p.key)));
                    }
                }
                Piece::Long { line, len } => out.push((line, Err(too_long(len)))),
                Piece::Failed(e) => panic!("{e}"),
            }
        }
        reader.join().unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_at_the_length_limit() {
        // Valid events padded with spaces (JSON allows them) to MAX_LINE bytes and one more.
        let padded = |key: &str, len: usize| {
            let mut line = format!(r#"{{"key":"{key}","values":{{"n":1}}}}"#).into_bytes();
            line.resize(len, b' ');
            line
        };
        let mut input = Vec::new();
        for (key, len) in [("a", 40), ("b", MAX_LINE), ("c", MAX_LINE + 1), ("d", 40)] {
            input.extend(padded(key, len));
            input.push(b'\n');
        }
        input.extend(padded("e", 5 * MAX_LINE)); // 5 MiB, never read whole
        input.push(b'\n');
        input.extend(padded("f", MAX_LINE)); // the very last, no newline
        let out = read_all(input).await;
        let lines: Vec<u64> = out.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6]);
        assert_eq!(out[0].1, Ok("a".to_owned()));
        assert_eq!(
            out[1].1,
            Ok("b".to_owned()),
            "exactly MAX_LINE bytes is taken"
        );
        let err = out[2].1.as_ref().unwrap_err();
        assert!(
            err.contains("longer than") && err.contains(&(MAX_LINE + 1).to_string()),
            "{err}"
        );
        assert_eq!(out[3].1, Ok("d".to_owned()));
        let err = out[4].1.as_ref().unwrap_err();
        assert!(err.contains(&(5 * MAX_LINE).to_string()), "{err}");
        assert_eq!(out[5].1, Ok("f".to_owned()));
    }

    #[test]
    fn chunks_number_their_lines() {
        let chunk = b"{\"key\":\"a\",\"values\":{\"n\":1}}\n\n  \r\n{bad\n\xff\n{\"key\":\"b\",\"values\":{\"n\":2}}";
        let items = parse_chunk(chunk, 10, now());
        let lines: Vec<u64> = items.iter().map(|i| i.line).collect();
        assert_eq!(lines, [10, 13, 14, 15]);
        assert!(items[0].parsed.is_ok());
        let bad = items[1].parsed.as_ref().err().unwrap();
        assert!(bad.contains("not an event"), "{bad}");
        let bad = items[2].parsed.as_ref().err().unwrap();
        assert!(bad.contains("not UTF-8") && bad.contains("byte 1"), "{bad}");
        assert_eq!(items[3].parsed.as_ref().unwrap().key, "b");
    }
}
