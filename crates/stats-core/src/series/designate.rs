//! Designators: histogram bucket labels for numbers.
//!
//! A designator maps a number to the label of the histogram bucket it falls into, so that
//! tracking `{"duration": 0.37}` through a designator counts one event in the bucket of 0.37
//! (see [`Designator::classify`]). Every designator here uses the same bucket rule:
//!
//! - buckets are **right-closed**, `(lower, upper]`, and labelled by their upper bound;
//! - the lowest bucket holds everything at or below the lowest bound and is labelled with it;
//! - everything above the highest bound falls into an overflow bucket labelled `"<highest>+"`;
//! - labels are spelled as Trifle 2.6 spells them, by Ruby's `Integer#to_s` and `Float#to_s`
//!   (see [`label`]): `"20"` for an integer; `"20.0"`, `"0.5"`, `"0.0001"`, `"1.0e-05"`,
//!   `"1.0e+15"` for a float.
//!
//! | designator | bounds |
//! |---|---|
//! | [`Linear`] `{min, max, step}` | `min`, then every multiple of `step` above `min` up to `max`, then `max` |
//! | [`Geometric`] `{min, max}` | `min`, then every power of ten above `min` up to `max`, then `max` (float labels) |
//! | [`Custom`] `{buckets}` | the given bounds |
//!
//! A configuration that cannot describe buckets (`step <= 0`, `min >= max`, a negative
//! geometric `min`, an empty or unsorted custom list) is refused when it is built.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::number::Number;
use crate::values::Values;

/// One of the three designators, as configured (for example in a tracker configuration).
///
/// JSON form: `{"type": "linear", "min": 0, "max": 100, "step": 10}`,
/// `{"type": "geometric", "min": 0, "max": 1000}` or `{"type": "custom", "buckets": [1, 5, 10]}`;
/// deserializing checks the configuration like the constructors do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Designator {
    /// Equal-width buckets.
    Linear(Linear),
    /// Powers-of-ten buckets.
    Geometric(Geometric),
    /// Buckets at given bounds.
    Custom(Custom),
}

impl Designator {
    /// The label of the bucket `value` falls into.
    pub fn designate(&self, value: Number) -> String {
        match self {
            Designator::Linear(d) => d.designate(value),
            Designator::Geometric(d) => d.designate(value),
            Designator::Custom(d) => d.designate(value),
        }
    }

    /// The label as a field name of a [`Values`] map: every `.` becomes `_` (a field
    /// name may not hold `.`), so `"0.5"` is stored as `"0_5"` and `"1000.0+"` as `"1000_0+"`.
    pub fn field(&self, value: Number) -> String {
        self.designate(value).replace('.', "_")
    }

    /// Replaces every number of `values` by a one-event histogram: `{"duration": 0.37}` becomes
    /// `{"duration": {"0_5": 1}}` (with a bucket labelled `0.5`). Tracking the result counts
    /// each value in its bucket.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if a resulting path is too long or too deep.
    pub fn classify(&self, values: &Values) -> Result<Values> {
        Values::from_flat(
            values
                .flatten()
                .into_iter()
                .map(|(path, n)| (format!("{path}.{}", self.field(n)), Number::Int(1))),
        )
    }
}

impl From<Linear> for Designator {
    fn from(d: Linear) -> Self {
        Designator::Linear(d)
    }
}

impl From<Geometric> for Designator {
    fn from(d: Geometric) -> Self {
        Designator::Geometric(d)
    }
}

impl From<Custom> for Designator {
    fn from(d: Custom) -> Self {
        Designator::Custom(d)
    }
}

fn invalid(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{what} designator: {reason}"))
}

fn greater(a: Number, b: Number) -> bool {
    a.cmp_value(b) == Ordering::Greater
}

/// A number as a designator label: what Ruby's `to_s` gives for it, so that labels match
/// those of Trifle 2.6 (whose designators build labels with `to_s`).
///
/// An integer is written in decimal (`"-25"`). A float is written with the shortest digits that
/// read back as the same `f64`, as Ruby's `Float#to_s` does:
///
/// - in decimal notation when the decimal point falls within those digits (`"0.5"`,
///   `"123456789012345.6"`, `"1234567890123456.8"`), when the number is whole and below `1e15`
///   (`"10.0"`, `"100000000000000.0"` for `1e14`; `".0"` is appended), and when
///   `1e-4 <= |x| < 1` (`"0.0001"`, `"0.00012"`);
/// - otherwise in scientific notation with at least one digit after the point and a signed
///   exponent of at least two digits: `"1.0e+15"` for `1e15`, `"9.007199254740992e+15"` for
///   `2^53`, `"1.0e+16"`, `"1.0e+20"`, `"1.0e-05"` for `1e-5`, `"5.0e-324"`.
///
/// Zero is `"0.0"` and a negative number has a leading `-`.
///
/// ```
/// use stats_core::Number;
/// use stats_core::series::designate::label;
///
/// assert_eq!(label(Number::Int(10)), "10");
/// assert_eq!(label(Number::Float(10.0)), "10.0");
/// assert_eq!(label(Number::Float(1e15)), "1.0e+15");
/// assert_eq!(label(Number::Float(1e-4)), "0.0001");
/// assert_eq!(label(Number::Float(1e-5)), "1.0e-05");
/// assert_eq!(label(Number::Float(-2.5e20)), "-2.5e+20");
/// ```
pub fn label(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Float(x) => ruby_float(x),
    }
}

/// Ruby's `Float#to_s` (see [`label`]); `NaN`, `Infinity` and `-Infinity` as Ruby writes them.
fn ruby_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    // Rust's `{:e}` writes the shortest round-trip digits, as Ruby's dtoa (mode 0) does:
    // `d[.ddd]e<exp>`. `point` is where the decimal point goes in the digits
    // (0.d1d2.. x 10^point), Ruby's `decpt`.
    let scientific = format!("{:e}", x.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().expect("`{:e}` writes an integer exponent");
    let point = exponent + 1;
    let count = digits.len() as i32;
    // DBL_DIG: below `10^DBL_DIG` a whole float is written in decimal.
    const DBL_DIG: i32 = 15;
    let body = if point > 0 && point < count {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{whole}.{fraction}")
    } else if point > 0 && point <= DBL_DIG {
        format!("{digits}{}.0", "0".repeat((point - count) as usize))
    } else if point <= 0 && point > -4 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let e = point - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        format!("{first}.{rest}e{e_sign}{:02}", e.abs())
    };
    format!("{sign}{body}")
}

// ---------------------------------------------------------------------------------------------

/// Equal-width buckets: bounds at the multiples of `step` between `min` and `max`.
///
/// A value at or below `min` is labelled `min`; above `max`, `"max+"`; otherwise it is
/// labelled with the smallest multiple of `step` at or above it, capped at `max`. Bounds have
/// the kind of `step`: an integer step gives integer labels even for float values
/// (`{min: 10, max: 100, step: 20}` labels `11` and `20` as `"20"`, `20.1` as `"40"`, and `95` as
/// `"100"`), and so does a whole float step (`10.0` labels like `10`, `"10"` not `"10.0"`, as in
/// Trifle 2.6, which truncates every step to an integer); a fractional float step gives float
/// labels rounded to the decimals of the step, so that `0.1 * 3` is labelled `"0.3"` (Trifle
/// cannot: it truncates `0.1` to `0` and divides by zero, and `2.5` to `2`). The labels of `min`
/// and `max` keep their own kind (`{min: 0.0, ..}` labels low values `"0.0"`).
///
/// Integer bounds are computed exactly while the value is below `9.0e15` in magnitude; above
/// that, a bound is computed in `f64` and labelled as a float (`"1.0e+200"`), where Trifle
/// writes the whole integer out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LinearSpec")]
pub struct Linear {
    min: Number,
    max: Number,
    step: Number,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinearSpec {
    min: Number,
    max: Number,
    step: Number,
}

impl TryFrom<LinearSpec> for Linear {
    type Error = Error;
    fn try_from(s: LinearSpec) -> Result<Self> {
        Linear::new(s.min, s.max, s.step)
    }
}

impl Linear {
    /// A linear designator.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `step <= 0`, `min >= max`, or a float is not finite.
    pub fn new(min: Number, max: Number, step: Number) -> Result<Self> {
        for n in [min, max, step] {
            n.validate().map_err(|e| invalid("linear", e))?;
        }
        if step.cmp_value(Number::Int(0)) != Ordering::Greater {
            return Err(invalid(
                "linear",
                format!("step must be positive, got {step}"),
            ));
        }
        if !greater(max, min) {
            return Err(invalid(
                "linear",
                format!("min must be below max, got min {min} and max {max}"),
            ));
        }
        Ok(Linear { min, max, step })
    }

    /// The lowest bound.
    pub fn min(&self) -> Number {
        self.min
    }

    /// The highest bound.
    pub fn max(&self) -> Number {
        self.max
    }

    /// The bucket width.
    pub fn step(&self) -> Number {
        self.step
    }

    /// The label of the bucket `value` falls into.
    pub fn designate(&self, value: Number) -> String {
        if !greater(value, self.min) {
            return label(self.min);
        }
        if greater(value, self.max) {
            return format!("{}+", label(self.max));
        }
        let bound = match (whole_step(self.step), value) {
            (Number::Int(step), Number::Int(v)) => int_bound(i128::from(v), step),
            // Within the range where f64 holds integers exactly, ceil then round up exactly.
            (Number::Int(step), Number::Float(v)) if v.abs() < 9.0e15 => {
                int_bound(v.ceil() as i128, step)
            }
            (step, value) => float_bound(value.as_f64(), step.as_f64()),
        };
        if greater(bound, self.max) {
            label(self.max)
        } else {
            label(bound)
        }
    }
}

/// A whole float step (`10.0`) as the integer step it equals, as Trifle 2.6 takes every step
/// with `to_i`: its labels are integers (`"10"`), like those of the step `10`.
fn whole_step(step: Number) -> Number {
    match step {
        // Below 2^63 in magnitude the cast is exact for a whole float.
        Number::Float(x) if x.fract() == 0.0 && x.abs() < 9_223_372_036_854_775_808.0 => {
            Number::Int(x as i64)
        }
        n => n,
    }
}

/// The smallest multiple of `step` (> 0) at or above `v`.
fn int_bound(v: i128, step: i64) -> Number {
    let step = i128::from(step);
    let q = v.div_euclid(step);
    let bound = if v.rem_euclid(step) == 0 {
        v
    } else {
        (q + 1) * step
    };
    match i64::try_from(bound) {
        Ok(b) => Number::Int(b),
        // Only above i64::MAX, hence above any max: the caller caps it.
        Err(_) => Number::Float(bound as f64),
    }
}

/// The smallest multiple of `step` (> 0) at or above `v`, rounded to the decimals of `step`.
fn float_bound(v: f64, step: f64) -> Number {
    let decimals = {
        let text = step.to_string();
        text.split_once('.').map_or(0, |(_, frac)| frac.len())
    };
    let round = |x: f64| {
        if decimals == 0 || decimals > 15 {
            return x;
        }
        let scale = 10f64.powi(decimals as i32);
        let scaled = (x * scale).round() / scale;
        if scaled.is_finite() { scaled } else { x }
    };
    let at = |k: f64| round(k * step);
    let mut k = (v / step).ceil();
    // Correct the float division's rounding so that `v` lands in `(at(k - 1), at(k)]`.
    if at(k - 1.0) >= v {
        k -= 1.0;
    } else if at(k) < v {
        k += 1.0;
    }
    let bound = at(k);
    // -0.0 would print as "-0.0".
    Number::Float(if bound == 0.0 { 0.0 } else { bound })
}

// ---------------------------------------------------------------------------------------------

/// Powers-of-ten buckets between `min` and `max`, with float labels.
///
/// A value at or below `min` is labelled `min`; above `max`, `"max+"`; otherwise with the
/// smallest power of ten at or above it, capped at `max`: with `{min: 0, max: 1000}`, `0.05`
/// is `"0.1"`, `0.1` is `"0.1"`, `0.5` and `1` are `"1.0"`, `10` is `"10.0"`, `11` is
/// `"100.0"`. Labels are always written as floats, as Ruby writes them (see [`label`]):
/// `"10.0"`, `"0.0001"`, `"1.0e-05"`, `"1.0e+15"`, `"1.0e+20"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GeometricSpec")]
pub struct Geometric {
    min: Number,
    max: Number,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeometricSpec {
    min: Number,
    max: Number,
}

impl TryFrom<GeometricSpec> for Geometric {
    type Error = Error;
    fn try_from(s: GeometricSpec) -> Result<Self> {
        Geometric::new(s.min, s.max)
    }
}

impl Geometric {
    /// A geometric designator.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `min` is negative (powers of ten are positive), when
    /// `min >= max`, or when a float is not finite.
    pub fn new(min: Number, max: Number) -> Result<Self> {
        for n in [min, max] {
            n.validate().map_err(|e| invalid("geometric", e))?;
        }
        if min.cmp_value(Number::Int(0)) == Ordering::Less {
            return Err(invalid(
                "geometric",
                format!("min must not be negative, got {min}"),
            ));
        }
        if !greater(max, min) {
            return Err(invalid(
                "geometric",
                format!("min must be below max, got min {min} and max {max}"),
            ));
        }
        Ok(Geometric { min, max })
    }

    /// The lowest bound.
    pub fn min(&self) -> Number {
        self.min
    }

    /// The highest bound.
    pub fn max(&self) -> Number {
        self.max
    }

    /// The label of the bucket `value` falls into.
    pub fn designate(&self, value: Number) -> String {
        let float = |n: Number| label(Number::Float(n.as_f64()));
        if !greater(value, self.min) {
            return float(self.min);
        }
        if greater(value, self.max) {
            return format!("{}+", float(self.max));
        }
        // value > min >= 0.
        let mut k = value.as_f64().log10().ceil() as i32;
        while k > -400 && Number::Float(power_of_ten(k - 1)).cmp_value(value) != Ordering::Less {
            k -= 1;
        }
        while Number::Float(power_of_ten(k)).cmp_value(value) == Ordering::Less {
            k += 1;
        }
        let bound = Number::Float(power_of_ten(k));
        if greater(bound, self.max) {
            float(self.max)
        } else {
            float(bound)
        }
    }
}

/// `10^k` as the nearest `f64` (0 below the smallest subnormal, infinity above `f64::MAX`).
fn power_of_ten(k: i32) -> f64 {
    format!("1e{k}").parse().unwrap_or(f64::INFINITY)
}

// ---------------------------------------------------------------------------------------------

/// Buckets at given, strictly increasing bounds.
///
/// A value at or below the first bound is labelled with it; above the last, `"last+"`;
/// otherwise with the first bound at or above it. Values are compared exactly, never rounded:
/// with bounds `[1, 2, 3]`, `1.1` is `"2"` and `2` is `"2"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CustomSpec")]
pub struct Custom {
    buckets: Vec<Number>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomSpec {
    buckets: Vec<Number>,
}

impl TryFrom<CustomSpec> for Custom {
    type Error = Error;
    fn try_from(s: CustomSpec) -> Result<Self> {
        Custom::new(s.buckets)
    }
}

impl Custom {
    /// A custom designator.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `buckets` is empty, not strictly increasing (unsorted or
    /// with duplicates), or has a non-finite float.
    pub fn new(buckets: Vec<Number>) -> Result<Self> {
        if buckets.is_empty() {
            return Err(invalid("custom", "needs at least one bucket"));
        }
        for n in &buckets {
            n.validate().map_err(|e| invalid("custom", e))?;
        }
        if let Some(pair) = buckets
            .windows(2)
            .find(|w| w[0].cmp_value(w[1]) != Ordering::Less)
        {
            return Err(invalid(
                "custom",
                format!(
                    "buckets must be strictly increasing, found {} before {}",
                    pair[0], pair[1]
                ),
            ));
        }
        Ok(Custom { buckets })
    }

    /// The bounds, increasing.
    pub fn buckets(&self) -> &[Number] {
        &self.buckets
    }

    /// The label of the bucket `value` falls into.
    pub fn designate(&self, value: Number) -> String {
        let index = self
            .buckets
            .partition_point(|b| b.cmp_value(value) == Ordering::Less);
        match self.buckets.get(index) {
            Some(bound) => label(*bound),
            None => format!("{}+", label(self.buckets[self.buckets.len() - 1])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;
    use serde_json::json;

    const I: fn(i64) -> Number = Number::Int;
    const F: fn(f64) -> Number = Number::Float;

    fn check(d: &dyn Fn(Number) -> String, cases: &[(Number, &str)]) {
        for (value, label) in cases {
            assert_eq!(d(*value), *label, "value {value}");
        }
    }

    #[test]
    fn labels_are_spelled_like_ruby() {
        for (x, text) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (10.0, "10.0"),
            (0.1, "0.1"),
            (0.5, "0.5"),
            (123.456, "123.456"),
            (-2.5, "-2.5"),
            // Whole floats: decimal below 1e15, scientific from it on.
            (1e14, "100000000000000.0"),
            (999_999_999_999_999.0, "999999999999999.0"),
            (1e15, "1.0e+15"),
            (-1e15, "-1.0e+15"),
            (1_234_567_890_123_456.0, "1.234567890123456e+15"),
            (9_007_199_254_740_992.0, "9.007199254740992e+15"),
            (1e16, "1.0e+16"),
            (1e20, "1.0e+20"),
            (-2.5e20, "-2.5e+20"),
            (1e100, "1.0e+100"),
            (f64::MAX, "1.7976931348623157e+308"),
            // A fraction within the digits stays decimal even past 1e15.
            (123_456_789_012_345.6, "123456789012345.6"),
            (1_234_567_890_123_456.8, "1234567890123456.8"),
            // Small numbers: decimal from 1e-4 on, scientific below.
            (0.001, "0.001"),
            (1e-4, "0.0001"),
            (-1e-4, "-0.0001"),
            (1.5e-4, "0.00015"),
            (9.99e-5, "9.99e-05"),
            (1e-5, "1.0e-05"),
            (1.5e-5, "1.5e-05"),
            (1e-100, "1.0e-100"),
            (5e-324, "5.0e-324"),
        ] {
            assert_eq!(label(F(x)), text, "{x:e}");
        }
        assert_eq!(ruby_float(f64::NAN), "NaN");
        assert_eq!(ruby_float(f64::INFINITY), "Infinity");
        assert_eq!(ruby_float(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(label(I(10)), "10");
        assert_eq!(label(I(-25)), "-25");
        assert_eq!(label(I(0)), "0");
        assert_eq!(label(I(i64::MIN)), "-9223372036854775808");
        assert_eq!(label(I(1_000_000_000_000_000)), "1000000000000000");
    }

    #[test]
    fn linear_whole_float_step_labels_integers() {
        // Trifle 2.6 takes the step with to_i: a step of 10.0 labels "10", not "10.0".
        let d = Linear::new(I(0), I(100), F(10.0)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(0), "0"),
                (I(5), "10"),
                (F(15.5), "20"),
                (I(20), "20"),
                (I(100), "100"),
                (I(101), "100+"),
            ],
        );
        // min and max keep their kind, as Trifle's min.to_s and "#{max}+".
        let d = Linear::new(F(0.0), F(100.0), F(10.0)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(-1), "0.0"),
                (F(55.0), "60"),
                (F(100.0), "100"),
                (F(150.0), "100.0+"),
            ],
        );
        let d = Linear::new(F(-1e20), F(1e20), I(10)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (F(-1e21), "-1.0e+20"),
                (F(2e20), "1.0e+20+"),
                (I(-15), "-10"),
            ],
        );
        let d = Linear::new(F(1e-5), F(1e15), I(1000)).unwrap();
        check(
            &|v| d.designate(v),
            &[(I(0), "1.0e-05"), (I(1), "1000"), (F(2e15), "1.0e+15+")],
        );
    }

    #[test]
    fn geometric_labels_at_the_notation_edges() {
        let d = Geometric::new(I(0), F(1e20)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (F(5e-6), "1.0e-05"),
                (F(1e-5), "1.0e-05"),
                (F(5e-5), "0.0001"),
                (F(1e-4), "0.0001"),
                (F(2e-4), "0.001"),
                (I(999_999_999_999_999), "1.0e+15"),
                // Trifle 2.6: "1.0e+16" (the next power of ten above a whole power).
                (F(1e15), "1.0e+15"),
                (F(2e15), "1.0e+16"),
                (F(1e16), "1.0e+16"),
                (I(i64::MAX), "1.0e+19"),
                (F(5e19), "1.0e+20"),
                (F(1e20), "1.0e+20"),
                (F(2e20), "1.0e+20+"),
                (I(50), "100.0"),
            ],
        );
        let d = Geometric::new(F(1e-5), F(1e16)).unwrap();
        assert_eq!(d.designate(I(0)), "1.0e-05");
        assert_eq!(d.designate(F(3e16)), "1.0e+16+");
        let d = Geometric::new(F(1e-4), F(1e14)).unwrap();
        assert_eq!(d.designate(I(0)), "0.0001");
        assert_eq!(d.designate(F(1e15)), "100000000000000.0+");
    }

    #[test]
    fn custom_labels_keep_the_kind_of_each_bound() {
        let d = Custom::new(vec![F(1e-5), F(1e-4), I(10), F(1e15), F(1e16)]).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(-1), "1.0e-05"),
                (F(5e-5), "0.0001"),
                (I(1), "10"),
                (I(11), "1.0e+15"),
                (F(2e15), "1.0e+16"),
                (F(1e17), "1.0e+16+"),
            ],
        );
        let d = Custom::new(vec![I(-10), I(0), I(10)]).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(-20), "-10"),
                (F(-0.5), "0"),
                (I(5), "10"),
                (I(11), "10+"),
            ],
        );
    }

    #[test]
    fn scientific_labels_make_valid_fields() {
        let d: Designator = Geometric::new(I(0), F(1e20)).unwrap().into();
        assert_eq!(d.field(F(5e19)), "1_0e+20");
        assert_eq!(d.field(F(5e-6)), "1_0e-05");
        assert_eq!(
            d.classify(&values!({"big": 5e19, "small": 5e-6, "huge": 1e21}))
                .unwrap(),
            values!({
                "big": {"1_0e+20": 1},
                "small": {"1_0e-05": 1},
                "huge": {"1_0e+20+": 1}
            })
        );
    }

    #[test]
    fn linear_matches_trifle_inside_the_range() {
        let d = Linear::new(I(10), I(100), I(20)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(5), "10"),
                (I(10), "10"),
                (I(11), "20"),
                (I(15), "20"),
                (I(20), "20"),
                (I(21), "40"),
                (I(40), "40"),
                (I(55), "60"),
                (F(19.9), "20"),
                (F(20.1), "40"),
                (F(39.9), "40"),
                (F(40.1), "60"),
                (I(100), "100"),
                (I(101), "100+"),
                (I(150), "100+"),
            ],
        );
    }

    #[test]
    fn linear_caps_labels_at_max() {
        // Trifle labels 93 as "100" although max is 95.
        let d = Linear::new(I(5), I(95), I(10)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(8), "10"),
                (I(23), "30"),
                (I(90), "90"),
                (I(93), "95"),
                (I(95), "95"),
                (I(96), "95+"),
            ],
        );
    }

    #[test]
    fn linear_negative_values() {
        let d = Linear::new(I(-50), I(50), I(25)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(-100), "-50"),
                (I(-50), "-50"),
                (I(-49), "-25"),
                (I(-25), "-25"),
                // Trifle 2.6 says "0" too: Ruby's `/` and `%` floor (-10 / 25 is -1).
                (I(-10), "0"),
                (F(-0.5), "0"),
                (I(0), "0"),
                (I(10), "25"),
                (I(30), "50"),
            ],
        );
    }

    #[test]
    fn linear_float_bounds() {
        let d = Linear::new(F(0.0), F(10.0), I(2)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (F(0.0), "0.0"),
                (F(0.1), "2"),
                (F(1.5), "2"),
                (F(2.5), "4"),
                (F(3.7), "4"),
                (F(10.0), "10"),
                (F(10.5), "10.0+"),
            ],
        );
        // Trifle truncates a float step (0.5 becomes 0 and divides by zero).
        let d = Linear::new(I(0), I(1), F(0.1)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (F(0.05), "0.1"),
                (F(0.1), "0.1"),
                (F(0.25), "0.3"),
                (F(0.3), "0.3"),
                (F(0.7), "0.7"),
                (F(0.71), "0.8"),
                // The bound has the kind of the step; min and max keep theirs.
                (F(0.95), "1.0"),
                (I(1), "1.0"),
                (I(0), "0"),
                (F(1.5), "1+"),
            ],
        );
        let d = Linear::new(F(-1.0), F(1.0), F(0.25)).unwrap();
        check(
            &|v| d.designate(v),
            &[(F(-0.1), "0.0"), (F(-0.3), "-0.25"), (F(0.6), "0.75")],
        );
    }

    #[test]
    fn linear_huge_values() {
        let d = Linear::new(I(i64::MIN), I(i64::MAX), I(10)).unwrap();
        assert_eq!(d.designate(I(i64::MAX)), i64::MAX.to_string());
        assert_eq!(d.designate(I(i64::MAX - 5)), i64::MAX.to_string());
        assert_eq!(d.designate(I(i64::MAX - 10)), "9223372036854775800");
        assert_eq!(d.designate(I(i64::MIN + 1)), "-9223372036854775800");
        let d = Linear::new(F(0.0), F(1e300), I(10)).unwrap();
        assert_eq!(d.designate(F(1e200)), "1.0e+200");
    }

    #[test]
    fn linear_invalid_configuration() {
        for (min, max, step) in [
            (I(0), I(100), I(0)),
            (I(0), I(100), I(-5)),
            (I(0), I(100), F(-0.5)),
            (I(0), I(100), F(0.0)),
            (I(50), I(50), I(10)),
            (I(60), I(50), I(10)),
            (F(f64::NAN), I(50), I(10)),
            (I(0), F(f64::INFINITY), I(10)),
        ] {
            let err = Linear::new(min, max, step).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
    }

    #[test]
    fn geometric_powers_of_ten() {
        let d = Geometric::new(F(0.001), I(1000)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (F(0.0005), "0.001"),
                (F(0.001), "0.001"),
                (I(0), "0.001"),
                (I(-10), "0.001"),
                (F(0.002), "0.01"),
                (F(0.007), "0.01"),
                (F(0.01), "0.01"),
                (F(0.05), "0.1"),
                // Trifle raises NoMethodError here.
                (F(0.1), "0.1"),
                (F(0.11), "1.0"),
                (F(0.5), "1.0"),
                (F(1.0), "1.0"),
                (I(1), "1.0"),
                (I(2), "10.0"),
                (F(2.5), "10.0"),
                (I(9), "10.0"),
                // Trifle: "100.0" (left-closed above 1, right-closed below).
                (I(10), "10.0"),
                (I(12), "100.0"),
                (I(100), "100.0"),
                (I(999), "1000.0"),
                (I(1000), "1000.0"),
                (I(1001), "1000.0+"),
            ],
        );
    }

    #[test]
    fn geometric_zero_min_small_values_and_cap() {
        let d = Geometric::new(I(0), I(500)).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(-5), "0.0"),
                (I(0), "0.0"),
                (F(-0.0), "0.0"),
                // Trifle 2.6 labels both "1.0": it counts the zeros after "0." in the value's
                // to_s, and "1.0e-05" has none.
                (F(1e-5), "1.0e-05"),
                (F(3e-7), "1.0e-06"),
                (F(5e-324), "1.0e-323"),
                (I(5), "10.0"),
                // Capped at max: Trifle says "1000.0" for values up to 500.
                (I(400), "500.0"),
                (I(500), "500.0"),
                (F(500.5), "500.0+"),
            ],
        );
        let d = Geometric::new(I(10), I(10_000)).unwrap();
        check(
            &|v| d.designate(v),
            &[(I(5), "10.0"), (I(10), "10.0"), (I(50), "100.0")],
        );
    }

    #[test]
    fn geometric_invalid_configuration() {
        for (min, max) in [
            (I(-5), I(100)),
            (F(-0.1), I(100)),
            (I(50), I(50)),
            (I(100), I(50)),
            (I(0), F(f64::INFINITY)),
        ] {
            assert!(matches!(
                Geometric::new(min, max),
                Err(Error::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn custom_buckets_are_right_closed() {
        let d = Custom::new(vec![I(10), I(50), I(100), I(500)]).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (I(-100), "10"),
                (I(0), "10"),
                (I(5), "10"),
                (I(10), "10"),
                (I(11), "50"),
                (F(10.1), "50"),
                (F(49.9), "50"),
                // Trifle: "100" (a value on an inner bound goes one bucket up).
                (I(50), "50"),
                (F(50.1), "100"),
                (I(100), "100"),
                (F(100.1), "500"),
                // Trifle: "" (no bucket found).
                (I(500), "500"),
                (I(501), "500+"),
                (I(999_999), "500+"),
            ],
        );
    }

    #[test]
    fn custom_compares_without_ceiling() {
        let d = Custom::new(vec![I(1), I(2), I(3), I(4), I(5)]).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (F(0.5), "1"),
                (I(1), "1"),
                // Trifle: "3" (ceil(1.1) = 2, first bound above 2).
                (F(1.1), "2"),
                (F(2.9), "3"),
                // Trifle: "" for both.
                (F(4.1), "5"),
                (I(5), "5"),
                (F(5.1), "5+"),
            ],
        );
        let d = Custom::new(vec![F(1.5), F(5.5), F(10.0)]).unwrap();
        check(
            &|v| d.designate(v),
            &[
                (F(1.0), "1.5"),
                (F(1.5), "1.5"),
                (I(2), "5.5"),
                (F(5.5), "5.5"),
                (I(8), "10.0"),
                (I(10), "10.0"),
                (F(10.1), "10.0+"),
            ],
        );
        let single = Custom::new(vec![I(25)]).unwrap();
        check(
            &|v| single.designate(v),
            &[(I(10), "25"), (I(25), "25"), (I(26), "25+")],
        );
    }

    #[test]
    fn custom_invalid_configuration() {
        for buckets in [
            vec![],
            vec![I(100), I(50), I(10)],
            vec![I(10), I(10), I(50)],
            vec![I(3), F(3.0)],
            vec![I(1), F(f64::NAN)],
        ] {
            let err = Custom::new(buckets.clone()).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{buckets:?}: {err}");
        }
    }

    #[test]
    fn designator_json_round_trip_and_validation() {
        for json in [
            json!({"type": "linear", "min": 0, "max": 100, "step": 10}),
            json!({"type": "geometric", "min": 0.001, "max": 1000}),
            json!({"type": "custom", "buckets": [1, 5.5, 10]}),
        ] {
            let d: Designator = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(serde_json::to_value(&d).unwrap(), json);
        }
        for bad in [
            json!({"type": "linear", "min": 0, "max": 100, "step": 0}),
            json!({"type": "geometric", "min": -1, "max": 100}),
            json!({"type": "custom", "buckets": []}),
            json!({"type": "custom", "buckets": [2, 1]}),
            json!({"type": "custom", "buckets": [1], "extra": 1}),
            json!({"type": "cubic"}),
        ] {
            assert!(
                serde_json::from_value::<Designator>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn classify_builds_one_event_histograms() {
        let d: Designator = Geometric::new(I(0), I(1000)).unwrap().into();
        assert_eq!(d.field(F(0.37)), "1_0");
        let classified = d
            .classify(&values!({"duration": 0.37, "db": {"query": 12, "rows": 5000}}))
            .unwrap();
        assert_eq!(
            classified,
            values!({
                "duration": {"1_0": 1},
                "db": {"query": {"100_0": 1}, "rows": {"1000_0+": 1}}
            })
        );
        let d: Designator = Custom::new(vec![I(1), I(10)]).unwrap().into();
        assert_eq!(d.designate(I(10)), "10");
        let d: Designator = Linear::new(I(0), I(10), I(5)).unwrap().into();
        assert_eq!(d.designate(I(3)), "5");
    }
}
