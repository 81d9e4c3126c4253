//! Arithmetic on [`Number`]s for the series analytics.
//!
//! The expression rules (documented on [`Expression`](super::Expression)): two integers give
//! an exact integer when the exact result is an `i64`, and a float otherwise (overflow, or a
//! division that is not exact); anything with a float gives a float; a result that is not a
//! finite number (division by zero, an infinite float) is `None`.

use crate::error::{Error, Result};
use crate::number::Number;

/// `Some(Float(x))` for a finite `x`, `None` otherwise.
pub(crate) fn finite(x: f64) -> Option<Number> {
    x.is_finite().then_some(Number::Float(x))
}

fn int_or_float(exact: Option<i64>, approx: impl FnOnce() -> f64) -> Option<Number> {
    match exact {
        Some(i) => Some(Number::Int(i)),
        None => finite(approx()),
    }
}

pub(crate) fn add(a: Number, b: Number) -> Option<Number> {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => int_or_float(x.checked_add(y), || x as f64 + y as f64),
        _ => finite(a.as_f64() + b.as_f64()),
    }
}

pub(crate) fn sub(a: Number, b: Number) -> Option<Number> {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => int_or_float(x.checked_sub(y), || x as f64 - y as f64),
        _ => finite(a.as_f64() - b.as_f64()),
    }
}

pub(crate) fn mul(a: Number, b: Number) -> Option<Number> {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => int_or_float(x.checked_mul(y), || x as f64 * y as f64),
        _ => finite(a.as_f64() * b.as_f64()),
    }
}

pub(crate) fn div(a: Number, b: Number) -> Option<Number> {
    if is_zero(b) {
        return None;
    }
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => {
            // checked_rem is None only for i64::MIN % -1, whose quotient overflows anyway.
            let exact = match x.checked_rem(y) {
                Some(0) => x.checked_div(y),
                _ => None,
            };
            int_or_float(exact, || x as f64 / y as f64)
        }
        _ => finite(a.as_f64() / b.as_f64()),
    }
}

pub(crate) fn neg(a: Number) -> Option<Number> {
    match a {
        Number::Int(x) => int_or_float(x.checked_neg(), || -(x as f64)),
        Number::Float(x) => finite(-x),
    }
}

pub(crate) fn sqrt(a: Number) -> Option<Number> {
    let x = a.as_f64();
    if x < 0.0 { None } else { finite(x.sqrt()) }
}

fn is_zero(n: Number) -> bool {
    match n {
        Number::Int(i) => i == 0,
        Number::Float(f) => f == 0.0,
    }
}

/// A running sum with Ruby's `Array#sum` semantics (what Trifle's aggregators use).
///
/// - Integers are added exactly while every number so far is an integer.
/// - From the first float on, the sum is a float, and every further number (integers too) is
///   added with Kahan-Babuska (Neumaier) compensation: the rounding error of each addition is
///   kept aside and added back at the end, so small terms next to large ones are not lost
///   (`1e20 + 1.0 - 1e20 + 3.0` is `4.0`, not `3.0`). An integer sum taken over at that point
///   keeps its own rounding error in the compensation.
/// - Two integers whose sum leaves the `i64` range, or a float running sum that becomes
///   infinite, make [`Accumulator::add`] return `false`; the sum goes on as a float (for the
///   expression engine, which then yields a float or null), and the aggregators turn that
///   `false` into [`Error::Overflow`](crate::Error::Overflow).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Accumulator {
    state: State,
}

#[derive(Debug, Clone, Copy, Default)]
enum State {
    #[default]
    Empty,
    Int(i64),
    /// The running sum and the accumulated rounding errors.
    Float(f64, f64),
}

impl Accumulator {
    /// Adds `n`; `false` when the sum left the representable range (see the type docs).
    pub(crate) fn add(&mut self, n: Number) -> bool {
        match (self.state, n) {
            (State::Empty, n) => {
                self.state = match n {
                    Number::Int(i) => State::Int(i),
                    Number::Float(x) => State::Float(x, 0.0),
                };
                n.as_f64().is_finite()
            }
            (State::Int(a), Number::Int(b)) => match a.checked_add(b) {
                Some(s) => {
                    self.state = State::Int(s);
                    true
                }
                None => {
                    let (sum, error) = int_to_float(a);
                    self.state = State::Float(sum, error);
                    let (x, error) = int_to_float(b);
                    self.add_float(x, error);
                    false
                }
            },
            (State::Int(a), Number::Float(x)) => {
                let (sum, error) = int_to_float(a);
                self.state = State::Float(sum, error);
                self.add_float(x, 0.0)
            }
            (State::Float(..), Number::Int(i)) => {
                let (x, error) = int_to_float(i);
                self.add_float(x, error)
            }
            (State::Float(..), Number::Float(x)) => self.add_float(x, 0.0),
        }
    }

    /// [`Accumulator::add`] for the aggregators and formatters: an overflow is an
    /// [`Error::Overflow`] naming the bucket start `at` and the `path`, and nothing is added.
    pub(crate) fn add_at(&mut self, n: Number, at: &jiff::Timestamp, path: &str) -> Result<()> {
        let before = *self;
        if self.add(n) {
            return Ok(());
        }
        *self = before;
        Err(Error::Overflow {
            key: at.to_string(),
            path: Some(path.to_owned()),
            detail: match before.total() {
                Some(total) => format!("{total} + {n}"),
                None => format!("{n}"),
            },
        })
    }

    /// One compensated step: `x` is the term, `error` what rounding it to `f64` lost.
    fn add_float(&mut self, x: f64, error: f64) -> bool {
        let State::Float(sum, comp) = self.state else {
            return false;
        };
        let t = sum + x;
        if !t.is_finite() {
            self.state = State::Float(t, comp);
            return false;
        }
        let lost = if sum.abs() >= x.abs() {
            (sum - t) + x
        } else {
            (x - t) + sum
        };
        self.state = State::Float(t, comp + lost + error);
        true
    }

    /// The sum so far: `None` before any number, an integer while all numbers were integers,
    /// else the compensated float (possibly not finite: callers check).
    pub(crate) fn total(&self) -> Option<Number> {
        match self.state {
            State::Empty => None,
            State::Int(i) => Some(Number::Int(i)),
            State::Float(sum, comp) => Some(Number::Float(if sum.is_finite() {
                sum + comp
            } else {
                sum
            })),
        }
    }
}

/// `i` as the nearest `f64`, and what that rounding lost (exact: both fit an `i128`).
fn int_to_float(i: i64) -> (f64, f64) {
    let f = i as f64;
    // |f| <= 2^63, exact in i128.
    (f, (i128::from(i) - f as i128) as f64)
}

/// The compensated sum of `numbers` as a float (integers included), possibly not finite.
pub(crate) fn float_sum(numbers: impl IntoIterator<Item = f64>) -> f64 {
    let mut acc = Accumulator {
        state: State::Float(0.0, 0.0),
    };
    for x in numbers {
        acc.add_float(x, 0.0);
    }
    acc.total().map_or(0.0, Number::as_f64)
}

/// The arithmetic mean as a float, `None` for no numbers.
///
/// Integers are summed exactly (in `i128`, which no realistic count of `i64`s overflows) before
/// the one division, so the mean of integers is the correctly rounded quotient of their sum.
/// With a float among the numbers, the sum is compensated (see [`Accumulator`]).
pub(crate) fn mean(numbers: &[Number]) -> Option<Number> {
    if numbers.is_empty() {
        return None;
    }
    let count = numbers.len() as f64;
    if numbers.iter().all(|n| !n.is_float()) {
        let sum: i128 = numbers
            .iter()
            .filter_map(|n| n.as_i64())
            .map(i128::from)
            .sum();
        return finite(sum as f64 / count);
    }
    let mut acc = Accumulator::default();
    for n in numbers {
        acc.add(*n);
    }
    let sum = acc.total().map_or(f64::NAN, Number::as_f64);
    if sum.is_finite() {
        return finite(sum / count);
    }
    // The sum of large finite floats overflowed; their mean is still finite.
    finite(float_sum(numbers.iter().map(|n| n.as_f64() / count)))
}

/// The compensated sum for the expression `sum(..)`: exact for integers, a float after an
/// integer overflow or with any float, `None` when not finite.
pub(crate) fn sum(numbers: &[Number]) -> Option<Number> {
    let mut acc = Accumulator::default();
    for n in numbers {
        acc.add(*n);
    }
    match acc.total()? {
        Number::Float(x) => finite(x),
        n => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: fn(i64) -> Number = Number::Int;
    const F: fn(f64) -> Number = Number::Float;

    #[test]
    fn integers_stay_exact() {
        assert_eq!(add(I(2), I(3)), Some(I(5)));
        assert_eq!(sub(I(2), I(3)), Some(I(-1)));
        assert_eq!(mul(I(4), I(-3)), Some(I(-12)));
        assert_eq!(div(I(6), I(3)), Some(I(2)));
        assert_eq!(div(I(-6), I(3)), Some(I(-2)));
        assert_eq!(neg(I(7)), Some(I(-7)));
    }

    #[test]
    fn inexact_integer_division_gives_a_float() {
        assert_eq!(div(I(1), I(2)), Some(F(0.5)));
        assert_eq!(div(I(-7), I(2)), Some(F(-3.5)));
        assert_eq!(div(I(10), I(4)), Some(F(2.5)));
    }

    #[test]
    fn integer_overflow_becomes_a_float() {
        assert_eq!(add(I(i64::MAX), I(1)), Some(F(i64::MAX as f64 + 1.0)));
        assert_eq!(sub(I(i64::MIN), I(1)), Some(F(i64::MIN as f64 - 1.0)));
        assert_eq!(mul(I(i64::MAX), I(2)), Some(F(i64::MAX as f64 * 2.0)));
        assert_eq!(neg(I(i64::MIN)), Some(F(9_223_372_036_854_775_808.0)));
        assert_eq!(
            div(I(i64::MIN), I(-1)),
            Some(F(9_223_372_036_854_775_808.0))
        );
    }

    #[test]
    fn mixing_gives_floats() {
        assert_eq!(add(I(1), F(0.5)), Some(F(1.5)));
        assert_eq!(mul(F(2.0), I(3)), Some(F(6.0)));
        assert_eq!(div(F(3.0), I(2)), Some(F(1.5)));
    }

    #[test]
    fn non_finite_results_are_none() {
        assert_eq!(div(I(1), I(0)), None);
        assert_eq!(div(I(0), I(0)), None);
        assert_eq!(div(F(1.0), F(0.0)), None);
        assert_eq!(div(F(1.0), F(-0.0)), None);
        assert_eq!(div(I(1), F(0.0)), None);
        assert_eq!(mul(F(f64::MAX), F(2.0)), None);
        assert_eq!(add(F(f64::MAX), F(f64::MAX)), None);
        assert_eq!(sqrt(I(-1)), None);
        assert_eq!(sqrt(F(-0.5)), None);
        assert_eq!(sqrt(I(9)), Some(F(3.0)));
    }

    #[test]
    fn mean_is_a_float() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[I(1), I(2)]), Some(F(1.5)));
        assert_eq!(mean(&[I(2), I(4)]), Some(F(3.0)));
        assert_eq!(mean(&[I(i64::MAX), I(i64::MAX)]), Some(F(i64::MAX as f64)));
        assert_eq!(mean(&[F(f64::MAX), F(f64::MAX)]), Some(F(f64::MAX)));
        assert_eq!(mean(&[I(1), F(2.0)]), Some(F(1.5)));
    }

    fn summed(numbers: &[Number]) -> (Option<Number>, bool) {
        let mut acc = Accumulator::default();
        let mut ok = true;
        for n in numbers {
            ok &= acc.add(*n);
        }
        (acc.total(), ok)
    }

    #[test]
    fn float_sums_are_compensated() {
        // A naive left-to-right sum gives 3.0 for each of these.
        assert_eq!(
            summed(&[F(1e20), F(1.0), F(-1e20), F(3.0)]),
            (Some(F(4.0)), true)
        );
        assert_eq!(
            summed(&[F(1e20), I(1), F(-1e20), I(3)]),
            (Some(F(4.0)), true)
        );
        assert_eq!(
            summed(&[I(1), F(1e20), I(-1), F(-1e20), I(3)]),
            (Some(F(3.0)), true)
        );
        assert_eq!(
            summed(&[I(1), F(1e100), F(1.0), F(-1e100)]),
            (Some(F(2.0)), true)
        );
        // 0.1 ten times: 0.9999999999999999 naively, 1.0 compensated (as in Ruby).
        assert_eq!(summed(&[F(0.1); 10]), (Some(F(1.0)), true));
        assert_eq!(sum(&[F(1e20), F(1.0), F(-1e20), F(3.0)]), Some(F(4.0)));
        assert_eq!(mean(&[F(1e20), F(1.0), F(-1e20), F(3.0)]), Some(F(1.0)));
        assert_eq!(float_sum([1e20, 1.0, -1e20, 3.0]), 4.0);
    }

    #[test]
    fn integer_sums_stay_exact_and_a_float_makes_a_float() {
        assert_eq!(summed(&[]), (None, true));
        assert_eq!(summed(&[I(2), I(3)]), (Some(I(5)), true));
        assert_eq!(
            summed(&[I(i64::MAX), I(-1), I(1)]),
            (Some(I(i64::MAX)), true)
        );
        assert_eq!(summed(&[I(1), F(0.5)]), (Some(F(1.5)), true));
        assert_eq!(summed(&[F(0.5), I(1)]), (Some(F(1.5)), true));
        // 2^53 + 1 is no f64: the integer prefix taken over as a float keeps its rounding
        // error, so adding the float 0.0 and subtracting 2^53 leaves exactly 1.
        let big = (1_i64 << 53) + 1;
        assert_eq!(
            summed(&[I(big), F(0.0), I(-(1 << 53))]),
            (Some(F(1.0)), true)
        );
        // -0.0 alone sums to 0.0 (the sign of zero is not kept, as everywhere).
        let (total, _) = summed(&[F(-0.0)]);
        assert!(total.unwrap().as_f64().is_sign_positive());
    }

    #[test]
    fn overflow_is_reported_and_the_sum_goes_on_as_a_float() {
        let (total, ok) = summed(&[I(i64::MAX), I(1)]);
        assert!(!ok);
        assert_eq!(total, Some(F(9_223_372_036_854_775_808.0)));
        // Past the overflow the float keeps the exact remainder: 2^63 - 2^63 + 1.
        let (total, ok) = summed(&[I(i64::MAX), I(1), F(-9_223_372_036_854_775_808.0), I(1)]);
        assert!(!ok);
        assert_eq!(total, Some(F(1.0)));
        assert_eq!(
            sum(&[I(i64::MAX), I(1)]),
            Some(F(9_223_372_036_854_775_808.0))
        );
        let (total, ok) = summed(&[F(f64::MAX), F(f64::MAX)]);
        assert!(!ok);
        assert!(!total.unwrap().as_f64().is_finite());
        assert_eq!(sum(&[F(f64::MAX), F(f64::MAX)]), None);
        assert_eq!(sum(&[F(f64::MAX), F(-f64::MAX), F(1.0)]), Some(F(1.0)));
        assert_eq!(
            mean(&[F(f64::MAX), F(f64::MAX), F(-f64::MAX)]),
            Some(F(f64::MAX / 3.0))
        );
    }
}
