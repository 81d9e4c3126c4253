//! Arithmetic on [`Number`]s for the series analytics.
//!
//! The expression rules (documented on [`Expression`](super::Expression)): two integers give
//! an exact integer when the exact result is an `i64`, and a float otherwise (overflow, or a
//! division that is not exact); anything with a float gives a float; a result that is not a
//! finite number (division by zero, an infinite float) is `None`.

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

/// The arithmetic mean as a float, `None` for no numbers.
///
/// Integers are summed exactly (in `i128`, which no realistic count of `i64`s overflows) before
/// the one division, so the mean of integers is the correctly rounded quotient of their sum.
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
    let sum: f64 = numbers.iter().map(|n| n.as_f64()).sum();
    if sum.is_finite() {
        return finite(sum / count);
    }
    // The sum of large finite floats overflowed; their mean is still finite.
    finite(numbers.iter().map(|n| n.as_f64() / count).sum())
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
}
