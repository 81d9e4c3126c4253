//! Numbers: exact `i64` or finite `f64`.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A stored number: an exact `i64`, or a finite `f64`.
///
/// Integer arithmetic is checked: a result outside the `i64` range is an [`Error::Overflow`],
/// never a wrap. An integer combined with a float gives a float. NaN and infinities cannot be
/// constructed ([`Number::float`] refuses them) and no operation produces them.
///
/// Negative zero is normalised: [`Number::float`] (and so every way into a [`Values`](crate::Values)
/// or a [`Batch`](crate::Batch)) turns `-0.0` into `0.0`, because some stores (MySQL, SQLite)
/// cannot keep the sign of zero; every store therefore reads back `0.0`.
///
/// Equality is by kind and exact value (floats compare bit for bit): `Int(1) != Float(1.0)`.
/// Use [`Number::cmp_value`] to compare numerically across kinds.
///
/// ```
/// use stats_core::Number;
/// assert_eq!(Number::from(3), Number::Int(3));
/// assert_eq!(Number::float(2.5)?, Number::Float(2.5));
/// assert!(Number::float(f64::NAN).is_err());
/// assert!(Number::float(-0.0)?.as_f64().is_sign_positive());
/// assert!(Number::try_from(u64::MAX).is_err()); // beyond i64: refused, never rounded
/// assert_eq!(Number::try_from(7_usize)?, Number::Int(7));
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// An exact integer.
    Int(i64),
    /// A finite float. Construct it with [`Number::float`] to keep the finiteness invariant.
    Float(f64),
}

impl Number {
    /// A float number; `-0.0` becomes `0.0`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for NaN or an infinity.
    pub fn float(value: f64) -> Result<Self> {
        if value.is_finite() {
            // `-0.0 + 0.0 == 0.0`: drops the sign of zero and leaves every other value alone.
            Ok(Number::Float(value + 0.0))
        } else {
            Err(Error::InvalidValue {
                path: None,
                reason: format!("{value} is not a finite number"),
            })
        }
    }

    /// Checks the finiteness invariant (a `Float` built directly may break it) and normalises
    /// `-0.0` to `0.0`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for NaN or an infinity.
    pub fn validate(self) -> Result<Self> {
        match self {
            Number::Float(f) => Number::float(f),
            n => Ok(n),
        }
    }

    /// Whether this is a float.
    pub fn is_float(self) -> bool {
        matches!(self, Number::Float(_))
    }

    /// The value as `f64` (may round integers beyond 2^53).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// The value as `i64` if it is an integer.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(_) => None,
        }
    }

    /// `self + other`: exact and checked for two integers, a float otherwise.
    ///
    /// On error the returned [`Error::Overflow`] has an empty key; callers that know the key
    /// use [`Number::checked_add_at`].
    ///
    /// # Errors
    /// [`Error::Overflow`] when two integers leave the `i64` range or a float sum is infinite.
    pub fn checked_add(self, other: Number) -> Result<Number> {
        self.checked_add_at(other, "", None)
    }

    /// `self + other`, with the key and path named in the error.
    ///
    /// # Errors
    /// [`Error::Overflow`] when two integers leave the `i64` range or a float sum is infinite.
    pub fn checked_add_at(self, other: Number, key: &str, path: Option<&str>) -> Result<Number> {
        let sum = match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.checked_add(b).map(Number::Int),
            (a, b) => {
                let s = a.as_f64() + b.as_f64();
                s.is_finite().then_some(Number::Float(s))
            }
        };
        sum.ok_or_else(|| Error::Overflow {
            key: key.to_owned(),
            path: path.map(str::to_owned),
            detail: format!("{self} + {other}"),
        })
    }

    /// Numeric comparison across kinds, exact for every pair of values (an `i64` is never
    /// rounded to `f64` to compare it).
    pub fn cmp_value(self, other: Number) -> Ordering {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.cmp(&b),
            (Number::Float(a), Number::Float(b)) => a.total_cmp(&b),
            (Number::Int(a), Number::Float(b)) => cmp_int_float(a, b),
            (Number::Float(a), Number::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }

    /// The larger of the two, keeping `self` on a tie.
    pub fn max_value(self, other: Number) -> Number {
        if other.cmp_value(self) == Ordering::Greater {
            other
        } else {
            self
        }
    }

    /// The smaller of the two, keeping `self` on a tie.
    pub fn min_value(self, other: Number) -> Number {
        if other.cmp_value(self) == Ordering::Less {
            other
        } else {
            self
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

// Bitwise equality of floats is reflexive (even for a NaN built directly).
impl Eq for Number {}

impl std::hash::Hash for Number {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Number::Int(i) => (0_u8, i).hash(state),
            Number::Float(f) => (1_u8, f.to_bits()).hash(state),
        }
    }
}

/// Compares an integer with a finite float exactly.
fn cmp_int_float(i: i64, f: f64) -> Ordering {
    // 2^63 is exactly representable; every float at or above it exceeds every i64.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // |whole| < 2^63 (or == -2^63), so the cast is exact.
    let whole_int = whole as i64;
    match i.cmp(&whole_int) {
        Ordering::Equal => 0.0_f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl From<i64> for Number {
    fn from(value: i64) -> Self {
        Number::Int(value)
    }
}

impl From<i32> for Number {
    fn from(value: i32) -> Self {
        Number::Int(value.into())
    }
}

macro_rules! from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Number {
            fn from(value: $t) -> Self {
                Number::Int(value.into())
            }
        }
    )*};
}

from_small_int!(u32, i16, u16, i8, u8);

macro_rules! try_from_wide_int {
    ($($t:ty),*) => {$(
        impl TryFrom<$t> for Number {
            type Error = Error;
            /// # Errors
            /// [`Error::InvalidValue`] for a value outside the `i64` range (never rounded).
            fn try_from(value: $t) -> Result<Self> {
                i64::try_from(value)
                    .map(Number::Int)
                    .map_err(|_| Error::InvalidValue {
                        path: None,
                        reason: format!("{value} is outside the i64 range"),
                    })
            }
        }
    )*};
}

try_from_wide_int!(u64, usize, isize, i128, u128);

impl TryFrom<f32> for Number {
    type Error = Error;
    /// # Errors
    /// [`Error::InvalidValue`] for NaN or an infinity.
    fn try_from(value: f32) -> Result<Self> {
        Number::float(value.into())
    }
}

impl TryFrom<f64> for Number {
    type Error = Error;
    /// # Errors
    /// [`Error::InvalidValue`] for NaN or an infinity.
    fn try_from(value: f64) -> Result<Self> {
        Number::float(value)
    }
}

impl TryFrom<&serde_json::Number> for Number {
    type Error = Error;
    fn try_from(n: &serde_json::Number) -> Result<Self> {
        if let Some(i) = n.as_i64() {
            Ok(Number::Int(i))
        } else if let Some(u) = n.as_u64() {
            Number::try_from(u)
        } else {
            Number::float(n.as_f64().unwrap_or(f64::NAN))
        }
    }
}

impl From<Number> for serde_json::Value {
    fn from(n: Number) -> Self {
        match n {
            Number::Int(i) => i.into(),
            // Finite by invariant; from_f64 only refuses non-finite values.
            Number::Float(f) => serde_json::Number::from_f64(f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
        }
    }
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            Number::Int(i) => s.serialize_i64(i),
            Number::Float(f) => s.serialize_f64(f),
        }
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        Number::try_from(&n).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_addition_is_checked() {
        assert_eq!(
            Number::Int(2).checked_add(3.into()).unwrap(),
            Number::Int(5)
        );
        let err = Number::Int(i64::MAX).checked_add(1.into()).unwrap_err();
        assert!(matches!(err, Error::Overflow { .. }), "{err}");
        assert!(Number::Int(i64::MIN).checked_add((-1).into()).is_err());
    }

    #[test]
    fn mixing_gives_float() {
        let s = Number::Int(1)
            .checked_add(Number::float(0.5).unwrap())
            .unwrap();
        assert_eq!(s, Number::Float(1.5));
        let s = Number::float(0.5)
            .unwrap()
            .checked_add(Number::Int(1))
            .unwrap();
        assert_eq!(s, Number::Float(1.5));
        assert!(
            Number::float(f64::MAX)
                .unwrap()
                .checked_add(Number::float(f64::MAX).unwrap())
                .is_err()
        );
    }

    #[test]
    fn non_finite_refused() {
        assert!(Number::float(f64::NAN).is_err());
        assert!(Number::float(f64::INFINITY).is_err());
        assert!(Number::Float(f64::NEG_INFINITY).validate().is_err());
        assert!(serde_json::from_str::<Number>("1e999").is_err());
    }

    #[test]
    fn exact_mixed_comparison() {
        let big = i64::MAX;
        // i64::MAX as f64 rounds up to 2^63, which is greater than every i64.
        assert_eq!(
            Number::Int(big).cmp_value(Number::Float(big as f64)),
            Ordering::Less
        );
        assert_eq!(
            Number::Int(3).cmp_value(Number::Float(3.0)),
            Ordering::Equal
        );
        assert_eq!(Number::Int(3).cmp_value(Number::Float(3.5)), Ordering::Less);
        assert_eq!(
            Number::Int(-3).cmp_value(Number::Float(-3.5)),
            Ordering::Greater
        );
        assert_eq!(
            Number::Int(i64::MIN).cmp_value(Number::Float(-9.3e18)),
            Ordering::Greater
        );
        assert_eq!(
            Number::Float(2.5).cmp_value(Number::Int(2)),
            Ordering::Greater
        );
        assert_eq!(Number::Int(3).max_value(Number::Float(3.0)), Number::Int(3));
        assert_eq!(
            Number::Int(3).max_value(Number::Float(3.5)),
            Number::Float(3.5)
        );
        assert_eq!(
            Number::Int(3).min_value(Number::Float(2.5)),
            Number::Float(2.5)
        );
    }

    #[test]
    fn json_round_trip_keeps_kind() {
        for n in [
            Number::Int(1),
            Number::Float(1.0),
            Number::Int(i64::MIN),
            Number::Float(-0.25),
        ] {
            let text = serde_json::to_string(&n).unwrap();
            assert_eq!(serde_json::from_str::<Number>(&text).unwrap(), n, "{text}");
        }
        assert!(serde_json::from_str::<Number>("18446744073709551615").is_err());
    }
}
