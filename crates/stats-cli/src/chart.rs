//! A bar chart of one series in the terminal, drawn with block characters (one bar per bucket,
//! eighths of a row in height), a value axis and the first and last bucket's time.
//!
//! Hand-written rather than taken from a plotting crate: the terminal plotting crates draw
//! braille line plots over a numeric x axis, where a series of buckets wants one bar per
//! bucket, blank buckets left blank, and times on the axis.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The size of the chart's drawing area in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Columns of the whole chart, axis labels included.
    pub width: usize,
    /// Rows of bars.
    pub height: usize,
}

impl Size {
    /// The terminal's width (`COLUMNS`, else 80), 12 rows.
    pub fn terminal() -> Size {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|w| *w >= 20)
            .unwrap_or(80);
        Size { width, height: 12 }
    }
}

const EIGHTHS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Draws `points` (a bucket start and its value, `None` for a blank bucket) under `title`.
/// When there are more buckets than columns, each column shows the largest of the buckets it
/// stands for (the footer says how many).
///
/// ```
/// use stats_cli::chart::{render, Size};
/// let at = |h: i64| jiff::Timestamp::from_second(h * 3600).unwrap();
/// let points = [(at(0), Some(1.0)), (at(1), None), (at(2), Some(4.0))];
/// let text = render("orders", &points, &jiff::tz::TimeZone::UTC, Size { width: 40, height: 4 });
/// assert!(text.starts_with("orders"));
/// assert!(text.contains('█'));
/// ```
pub fn render(
    title: &str,
    points: &[(Timestamp, Option<f64>)],
    zone: &TimeZone,
    size: Size,
) -> String {
    let height = size.height.max(1);
    let known: Vec<f64> = points.iter().filter_map(|(_, v)| *v).collect();
    let mut out = String::new();
    let total: f64 = known.iter().sum();
    let max = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    out.push_str(title);
    if known.is_empty() {
        out.push_str("\n(no data in this range)\n");
        return out;
    }
    out.push_str(&format!(
        "  (max {}, total {}, {} buckets)\n",
        label(max),
        label(total),
        points.len()
    ));
    let lo = known.iter().copied().fold(0.0_f64, f64::min);
    let mut hi = known.iter().copied().fold(0.0_f64, f64::max);
    if hi <= lo {
        hi = lo + 1.0;
    }
    let (top, bottom) = (label(hi), label(lo));
    let axis = top.len().max(bottom.len());
    let room = size.width.saturating_sub(axis + 2).max(1);
    let group = points.len().div_ceil(room).max(1);
    let columns: Vec<Option<f64>> = points
        .chunks(group)
        .map(|chunk| {
            chunk
                .iter()
                .filter_map(|(_, v)| *v)
                .fold(None, |acc: Option<f64>, v| {
                    Some(acc.map_or(v, |a| a.max(v)))
                })
        })
        .collect();
    let per = (room / columns.len()).clamp(1, 3);
    let bar = if per >= 2 { per - 1 } else { 1 };
    let eighths: Vec<Option<usize>> = columns
        .iter()
        .map(|v| {
            v.map(|v| {
                let scaled = ((v - lo) / (hi - lo) * (height * 8) as f64).round() as usize;
                if scaled == 0 && v != lo { 1 } else { scaled }
            })
        })
        .collect();
    for row in 0..height {
        let level = height - 1 - row;
        let label = match row {
            0 => top.as_str(),
            r if r == height - 1 => bottom.as_str(),
            _ => "",
        };
        out.push_str(&format!(
            "{label:>axis$} {}",
            if row == 0 { '┤' } else { '│' }
        ));
        let mut line = String::new();
        for cell in &eighths {
            let c = match cell {
                None => ' ',
                Some(e) => EIGHTHS[e.saturating_sub(level * 8).min(8)],
            };
            for _ in 0..bar {
                line.push(c);
            }
            for _ in bar..per {
                line.push(' ');
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let drawn = columns.len() * per;
    out.push_str(&format!("{:>axis$} └{}\n", "", "─".repeat(drawn)));
    let first = time_label(points[0].0, zone);
    let last = time_label(points[points.len() - 1].0, zone);
    let gap = (drawn + 2).saturating_sub(first.len() + last.len()).max(1);
    out.push_str(&format!("{:>axis$} {first}{}{last}\n", "", " ".repeat(gap)));
    if group > 1 {
        out.push_str(&format!(
            "{:>axis$}  (each column is the largest of {group} buckets)\n",
            ""
        ));
    }
    out
}

fn time_label(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// A compact number: whole numbers without a fraction, others with up to 2 decimals, large
/// ones with a k/M/G suffix.
fn label(v: f64) -> String {
    let abs = v.abs();
    let (scaled, suffix) = if abs >= 1e9 {
        (v / 1e9, "G")
    } else if abs >= 1e6 {
        (v / 1e6, "M")
    } else if abs >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if scaled.fract() == 0.0 {
        format!("{scaled:.0}")
    } else {
        let t = format!("{scaled:.2}");
        t.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> Timestamp {
        Timestamp::from_second(h * 3600).unwrap()
    }

    #[test]
    fn one_bar_per_bucket_and_blanks() {
        let points: Vec<_> = (0..10)
            .map(|h| (at(h), if h == 3 { None } else { Some(h as f64) }))
            .collect();
        let text = render(
            "t",
            &points,
            &TimeZone::UTC,
            Size {
                width: 80,
                height: 4,
            },
        );
        let bottom = text.lines().nth(4).unwrap();
        // Ten buckets, 3 characters each (2 of bar, 1 gap); bucket 0 is 0 (nothing drawn),
        // bucket 3 is blank.
        let bars: String = bottom.chars().skip_while(|c| *c != '│').skip(1).collect();
        assert_eq!(bars.chars().filter(|c| *c != ' ').count(), 2 * 8, "{text}");
        assert!(text.contains("1970-01-01 00:00") && text.contains("1970-01-01 09:00"));
        assert!(text.contains("max 9, total 42"), "{text}");
    }

    #[test]
    fn many_buckets_are_grouped_and_negatives_drawn() {
        let points: Vec<_> = (0..1000).map(|h| (at(h), Some(-(h as f64)))).collect();
        let text = render(
            "t",
            &points,
            &TimeZone::UTC,
            Size {
                width: 60,
                height: 3,
            },
        );
        assert!(text.contains("largest of"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
        let empty = render("t", &[(at(0), None)], &TimeZone::UTC, Size::terminal());
        assert!(empty.contains("no data"));
    }

    #[test]
    fn labels() {
        assert_eq!(label(3.0), "3");
        assert_eq!(label(2.5), "2.5");
        assert_eq!(label(12_345.0), "12.35k");
        assert_eq!(label(-2e6), "-2M");
    }
}
