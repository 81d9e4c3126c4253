//! Arithmetic expressions over the values of one bucket, for the `expression` transponder.
//!
//! # Grammar
//!
//! ```text
//! expression := term (("+" | "-") term)*
//! term       := unary (("*" | "/") unary)*
//! unary      := ("-" | "+") unary | primary
//! primary    := number | variable | function "(" expression ("," expression)* ")"
//!             | "(" expression ")"
//! number     := digits ["." digits] [("e" | "E") ["+" | "-"] digits]   (also ".5")
//! variable   := "a" | "b" | ... | "z"    (only as many as paths are bound)
//! function   := "sum" | "mean" | "avg" | "min" | "max" | "sqrt"
//! ```
//!
//! Binary operators are left-associative (`a - b - c` is `(a - b) - c`, `a / b / c` is
//! `(a / b) / c`); `*` and `/` bind tighter than `+` and `-`, and unary minus binds tighter than
//! both (`-a * b` is `(-a) * b`, `--a` is `a`). Whitespace is ignored between tokens.
//!
//! # Values
//!
//! - A literal without `.` or exponent is an integer (`i64`); any other literal is a float.
//! - `+`, `-`, `*` and unary minus on two integers give the exact integer result, or a float
//!   when it leaves the `i64` range (a float result is still a value, and its kind says it is
//!   approximate).
//! - `/` on two integers gives an integer when the division is exact (`6 / 3` is `2`) and a
//!   float otherwise (`1 / 2` is `0.5`, never `0`).
//! - Anything involving a float gives a float.
//! - `sum(..)` adds like `+` (exact for integers; with a float, compensated as in
//!   [`Series::sum`](super::Series::sum), so `sum(a, b, c, d)` of `1e20, 1, -1e20, 3` is `4.0`);
//!   `mean(..)` is always a float; `avg(..)` is another name for `mean(..)`, as in Trifle's
//!   expression engine; `min(..)` and `max(..)` compare exactly across kinds and return the
//!   chosen argument unchanged; `sqrt(x)` is a float.
//! - Every function takes one argument or more (`sqrt` exactly one). Trifle 2.6 parses a call
//!   without arguments (`avg()`) and evaluates it to null; here it is a parse error, so that
//!   the mistake shows when the expression is built.
//! - The result is *null* (`None`) when a variable has no number in the bucket, when dividing
//!   by zero, for `sqrt` of a negative number, and when a float result is not finite. Null
//!   propagates: any operation or function with a null operand is null.

use std::fmt;

use crate::error::{Error, Result};
use crate::number::Number;

use super::numeric;

/// How deeply parentheses, unary operators and function calls may nest; deeper input is a
/// parse error rather than a stack overflow.
const MAX_NESTING: usize = 128;

/// A parsed expression, ready to evaluate against many buckets.
///
/// ```
/// use stats_core::series::Expression;
/// use stats_core::Number;
///
/// let e = Expression::parse("a * 100 / b", 2).unwrap();
/// assert_eq!(e.evaluate(&[Some(Number::Int(1)), Some(Number::Int(4))]), Some(Number::Int(25)));
/// assert_eq!(e.evaluate(&[Some(Number::Int(1)), Some(Number::Int(0))]), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: String,
    variables: usize,
    root: Node,
}

/// Most variables an expression can have: `a` to `z`.
pub const MAX_VARIABLES: usize = 26;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Number(Number),
    Variable(usize),
    Negate(Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    Call(Function, Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Sum,
    Mean,
    Avg,
    Min,
    Max,
    Sqrt,
}

impl Function {
    const ALL: [(&'static str, Function); 6] = [
        ("sum", Function::Sum),
        ("mean", Function::Mean),
        ("avg", Function::Avg),
        ("min", Function::Min),
        ("max", Function::Max),
        ("sqrt", Function::Sqrt),
    ];

    fn named(name: &str) -> Option<Function> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }
}

impl Expression {
    /// Parses `source` with the first `variables` letters (`a`, `b`, ...) bound.
    ///
    /// # Errors
    /// [`Error::InvalidExpression`] with the byte position of the problem: an empty expression,
    /// an unexpected character or token, a malformed number, an integer literal outside `i64`,
    /// unbalanced parentheses, trailing input after a complete expression, an unknown function
    /// or variable, a function without arguments or `sqrt` with other than one, or nesting
    /// deeper than 128 levels. [`Error::InvalidInput`] when `variables` exceeds
    /// [`MAX_VARIABLES`].
    pub fn parse(source: &str, variables: usize) -> Result<Self> {
        if variables > MAX_VARIABLES {
            return Err(Error::InvalidInput(format!(
                "an expression binds at most {MAX_VARIABLES} paths (a..z), got {variables}"
            )));
        }
        let tokens = lex(source)?;
        let mut parser = Parser {
            source,
            tokens,
            next: 0,
            variables,
            depth: 0,
        };
        let root = parser.parse_all()?;
        Ok(Expression {
            source: source.to_owned(),
            variables,
            root,
        })
    }

    /// The expression as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How many variables are bound (`a` is index 0).
    pub fn variables(&self) -> usize {
        self.variables
    }

    /// Evaluates with `inputs[i]` as the value of the `i`-th variable (`None`, or an index past
    /// the end, for a bucket without that value). Returns `None` for a null result; see the
    /// [module docs](self) for when that happens.
    pub fn evaluate(&self, inputs: &[Option<Number>]) -> Option<Number> {
        eval(&self.root, inputs)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn eval(node: &Node, inputs: &[Option<Number>]) -> Option<Number> {
    match node {
        Node::Number(n) => Some(*n),
        Node::Variable(i) => inputs.get(*i).copied().flatten(),
        Node::Negate(inner) => numeric::neg(eval(inner, inputs)?),
        Node::Binary(op, left, right) => {
            let (a, b) = (eval(left, inputs)?, eval(right, inputs)?);
            match op {
                BinaryOp::Add => numeric::add(a, b),
                BinaryOp::Subtract => numeric::sub(a, b),
                BinaryOp::Multiply => numeric::mul(a, b),
                BinaryOp::Divide => numeric::div(a, b),
            }
        }
        Node::Call(function, args) => {
            let args = args
                .iter()
                .map(|a| eval(a, inputs))
                .collect::<Option<Vec<_>>>()?;
            match function {
                Function::Sum => numeric::sum(&args),
                Function::Mean | Function::Avg => numeric::mean(&args),
                Function::Min => args.into_iter().reduce(Number::min_value),
                Function::Max => args.into_iter().reduce(Number::max_value),
                Function::Sqrt => numeric::sqrt(*args.first()?),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Number(Number),
    Ident,
    Plus,
    Minus,
    Star,
    Slash,
    Open,
    Close,
    Comma,
    End,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn error(source: &str, position: usize, reason: impl Into<String>) -> Error {
    Error::InvalidExpression {
        expression: source.to_owned(),
        position,
        reason: reason.into(),
    }
}

fn lex(source: &str) -> Result<Vec<Token>> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let single = match c {
            b'+' => Some(Kind::Plus),
            b'-' => Some(Kind::Minus),
            b'*' => Some(Kind::Star),
            b'/' => Some(Kind::Slash),
            b'(' => Some(Kind::Open),
            b')' => Some(Kind::Close),
            b',' => Some(Kind::Comma),
            _ => None,
        };
        if let Some(kind) = single {
            i += 1;
            tokens.push(Token {
                kind,
                start,
                end: i,
            });
        } else if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let (number, end) = lex_number(source, start)?;
            i = end;
            tokens.push(Token {
                kind: Kind::Number(number),
                start,
                end,
            });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push(Token {
                kind: Kind::Ident,
                start,
                end: i,
            });
        } else {
            let ch = source[start..].chars().next().unwrap_or('?');
            return Err(error(source, start, format!("unexpected character {ch:?}")));
        }
    }
    tokens.push(Token {
        kind: Kind::End,
        start: source.len(),
        end: source.len(),
    });
    Ok(tokens)
}

/// Lexes the number starting at `start`; returns it and the end offset.
fn lex_number(source: &str, start: usize) -> Result<(Number, usize)> {
    let bytes = source.as_bytes();
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    let mut float = false;
    if bytes.get(i) == Some(&b'.') {
        float = true;
        let after = digits(i + 1);
        if after == i + 1 {
            return Err(error(
                source,
                i + 1,
                "expected a digit after the decimal point",
            ));
        }
        i = after;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        float = true;
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let after = digits(j);
        if after == j {
            return Err(error(source, j, "expected the digits of an exponent"));
        }
        i = after;
    }
    let text = &source[start..i];
    let number = if float {
        // The text is digits, '.', 'e' and signs only, which f64 always parses.
        let value: f64 = text.parse().unwrap_or(f64::INFINITY);
        if !value.is_finite() {
            return Err(error(
                source,
                start,
                format!("{text} is too large for a float"),
            ));
        }
        Number::Float(value)
    } else {
        match text.parse::<i64>() {
            Ok(value) => Number::Int(value),
            Err(_) => {
                return Err(error(
                    source,
                    start,
                    format!("{text} is outside the integer range; write it as a float ({text}.0)"),
                ));
            }
        }
    };
    Ok((number, i))
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'s> {
    source: &'s str,
    tokens: Vec<Token>,
    next: usize,
    variables: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        self.tokens[self.next]
    }

    fn bump(&mut self) -> Token {
        let token = self.tokens[self.next];
        if token.kind != Kind::End {
            self.next += 1;
        }
        token
    }

    fn text(&self, token: Token) -> &str {
        &self.source[token.start..token.end]
    }

    fn describe(&self, token: Token) -> String {
        match token.kind {
            Kind::End => "the end of the expression".to_owned(),
            _ => format!("{:?}", self.text(token)),
        }
    }

    fn error(&self, position: usize, reason: impl Into<String>) -> Error {
        error(self.source, position, reason)
    }

    fn parse_all(&mut self) -> Result<Node> {
        if self.peek().kind == Kind::End {
            return Err(self.error(0, "the expression is empty"));
        }
        let node = self.expression()?;
        let token = self.peek();
        match token.kind {
            Kind::End => Ok(node),
            Kind::Close => Err(self.error(token.start, "')' without a matching '('")),
            _ => Err(self.error(
                token.start,
                format!(
                    "unexpected {} after a complete expression (missing operator?)",
                    self.describe(token)
                ),
            )),
        }
    }

    fn nest(&mut self, at: usize) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(
                at,
                format!("the expression nests deeper than {MAX_NESTING} levels"),
            ));
        }
        Ok(())
    }

    fn expression(&mut self) -> Result<Node> {
        let mut left = self.term()?;
        loop {
            let op = match self.peek().kind {
                Kind::Plus => BinaryOp::Add,
                Kind::Minus => BinaryOp::Subtract,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.term()?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn term(&mut self) -> Result<Node> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().kind {
                Kind::Star => BinaryOp::Multiply,
                Kind::Slash => BinaryOp::Divide,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.unary()?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Node> {
        let token = self.peek();
        match token.kind {
            Kind::Minus | Kind::Plus => {
                self.bump();
                self.nest(token.start)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(if token.kind == Kind::Minus {
                    Node::Negate(Box::new(inner))
                } else {
                    inner
                })
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Node> {
        let token = self.bump();
        match token.kind {
            Kind::Number(n) => Ok(Node::Number(n)),
            Kind::Open => {
                self.nest(token.start)?;
                let inner = self.expression()?;
                self.depth -= 1;
                self.close(token)?;
                Ok(inner)
            }
            Kind::Ident if self.peek().kind == Kind::Open => self.call(token),
            Kind::Ident => self.variable(token),
            _ => Err(self.error(
                token.start,
                format!(
                    "expected a number, a variable, a function call or '(', found {}",
                    self.describe(token)
                ),
            )),
        }
    }

    /// Expects the ')' closing the '(' at `open`.
    fn close(&mut self, open: Token) -> Result<()> {
        let token = self.peek();
        if token.kind == Kind::Close {
            self.bump();
            return Ok(());
        }
        Err(self.error(
            token.start,
            format!(
                "expected ')' to close the '(' at position {}, found {}",
                open.start,
                self.describe(token)
            ),
        ))
    }

    fn call(&mut self, name: Token) -> Result<Node> {
        let text = self.text(name);
        let Some(function) = Function::named(text) else {
            let known: Vec<_> = Function::ALL.iter().map(|(n, _)| *n).collect();
            return Err(self.error(
                name.start,
                format!(
                    "unknown function {text:?}; the functions are {}",
                    known.join(", ")
                ),
            ));
        };
        let open = self.bump();
        self.nest(open.start)?;
        let mut args = Vec::new();
        if self.peek().kind != Kind::Close {
            loop {
                args.push(self.expression()?);
                let token = self.peek();
                match token.kind {
                    Kind::Comma => {
                        self.bump();
                    }
                    Kind::Close => break,
                    _ => {
                        return Err(self.error(
                            token.start,
                            format!(
                                "expected ',' or ')' in the arguments of {}( at position {}, found {}",
                                function.name(),
                                open.start,
                                self.describe(token)
                            ),
                        ));
                    }
                }
            }
        }
        self.close(open)?;
        self.depth -= 1;
        match (function, args.len()) {
            (_, 0) => Err(self.error(
                name.start,
                format!("{}() needs at least one argument", function.name()),
            )),
            (Function::Sqrt, n) if n != 1 => Err(self.error(
                name.start,
                format!("sqrt() takes exactly one argument, found {n}"),
            )),
            _ => Ok(Node::Call(function, args)),
        }
    }

    fn variable(&self, token: Token) -> Result<Node> {
        let text = self.text(token);
        if Function::named(text).is_some() {
            return Err(self.error(
                token.start,
                format!("function {text:?} needs its arguments in parentheses: {text}(...)"),
            ));
        }
        let bound = match self.variables {
            0 => "no paths are bound".to_owned(),
            1 => "1 path is bound, to a".to_owned(),
            n => format!("{n} paths are bound, to a..{}", letter(n - 1)),
        };
        if let [c @ b'a'..=b'z'] = text.as_bytes() {
            let index = usize::from(c - b'a');
            if index < self.variables {
                return Ok(Node::Variable(index));
            }
            return Err(self.error(token.start, format!("unknown variable {text:?}: {bound}")));
        }
        Err(self.error(
            token.start,
            format!("unknown variable {text:?}: variables are single lowercase letters; {bound}"),
        ))
    }
}

/// The variable name of index `i` (`0` is `a`).
pub(crate) fn letter(i: usize) -> char {
    char::from(b'a' + u8::try_from(i % MAX_VARIABLES).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: fn(i64) -> Number = Number::Int;
    const F: fn(f64) -> Number = Number::Float;

    fn eval_with(source: &str, inputs: &[Number]) -> Option<Number> {
        let inputs: Vec<_> = inputs.iter().copied().map(Some).collect();
        Expression::parse(source, inputs.len())
            .unwrap_or_else(|e| panic!("{source}: {e}"))
            .evaluate(&inputs)
    }

    fn eval0(source: &str) -> Option<Number> {
        eval_with(source, &[])
    }

    fn parse_error(source: &str, variables: usize) -> (usize, String) {
        match Expression::parse(source, variables) {
            Err(Error::InvalidExpression {
                position, reason, ..
            }) => (position, reason),
            other => panic!("{source}: expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn literals() {
        assert_eq!(eval0("42"), Some(I(42)));
        assert_eq!(eval0("2.5"), Some(F(2.5)));
        assert_eq!(eval0("2.0"), Some(F(2.0)));
        assert_eq!(eval0(".5"), Some(F(0.5)));
        assert_eq!(eval0("1e3"), Some(F(1000.0)));
        assert_eq!(eval0("1.5E-2"), Some(F(0.015)));
        assert_eq!(eval0("2e+2"), Some(F(200.0)));
        assert_eq!(eval0("9223372036854775807"), Some(I(i64::MAX)));
        assert_eq!(eval0("  7 "), Some(I(7)));
    }

    #[test]
    fn precedence() {
        assert_eq!(eval0("1 + 2 * 3"), Some(I(7)));
        assert_eq!(eval0("(1 + 2) * 3"), Some(I(9)));
        assert_eq!(eval0("2 * 3 + 4 * 5"), Some(I(26)));
        assert_eq!(eval0("10 - 4 / 2"), Some(I(8)));
    }

    #[test]
    fn associativity() {
        let abc = [I(10), I(4), I(3)];
        assert_eq!(eval_with("a - b - c", &abc), Some(I(3)));
        assert_eq!(eval_with("a - (b - c)", &abc), Some(I(9)));
        let abc = [I(24), I(4), I(2)];
        assert_eq!(eval_with("a / b / c", &abc), Some(I(3)));
        assert_eq!(eval_with("a / (b / c)", &abc), Some(I(12)));
        assert_eq!(eval_with("a / b * c", &abc), Some(I(12)));
    }

    #[test]
    fn unary_operators() {
        let ab = [I(3), I(4)];
        assert_eq!(eval_with("-a * b", &ab), Some(I(-12)));
        assert_eq!(eval_with("--a", &ab), Some(I(3)));
        assert_eq!(eval_with("---a", &ab), Some(I(-3)));
        assert_eq!(eval_with("-(a - b)", &ab), Some(I(1)));
        assert_eq!(eval_with("a - -b", &ab), Some(I(7)));
        assert_eq!(eval_with("+a", &ab), Some(I(3)));
        assert_eq!(eval_with("-a + b", &ab), Some(I(1)));
        assert_eq!(eval0("-2.5"), Some(F(-2.5)));
    }

    #[test]
    fn integer_division_is_exact_or_float() {
        assert_eq!(eval0("1 / 2"), Some(F(0.5)));
        assert_eq!(eval0("6 / 3"), Some(I(2)));
        assert_eq!(eval0("7 / 2"), Some(F(3.5)));
        assert_eq!(eval0("1 / 3 * 3"), Some(F(1.0)));
        assert_eq!(eval0("1.0 / 2"), Some(F(0.5)));
    }

    #[test]
    fn overflow_becomes_float() {
        assert_eq!(
            eval0("9223372036854775807 + 1"),
            Some(F(9_223_372_036_854_775_808.0))
        );
        assert_eq!(
            eval_with("a * a", &[I(i64::MAX)]),
            Some(F((i64::MAX as f64) * (i64::MAX as f64)))
        );
        assert_eq!(
            eval_with("-a", &[I(i64::MIN)]),
            Some(F(9_223_372_036_854_775_808.0))
        );
    }

    #[test]
    fn null_results() {
        assert_eq!(eval0("1 / 0"), None);
        assert_eq!(eval0("1 / (2 - 2)"), None);
        assert_eq!(eval0("1.5 / 0.0"), None);
        assert_eq!(eval0("0 / 0"), None);
        assert_eq!(eval0("sqrt(-1)"), None);
        assert_eq!(eval0("1e308 * 10"), None);
        // Null propagates through everything.
        assert_eq!(eval0("1 / 0 + 1"), None);
        assert_eq!(eval0("max(1, 1 / 0)"), None);
        assert_eq!(eval0("-(1 / 0)"), None);
        let e = Expression::parse("a + b", 2).unwrap();
        assert_eq!(e.evaluate(&[Some(I(1)), None]), None);
        assert_eq!(e.evaluate(&[Some(I(1))]), None);
        assert_eq!(e.evaluate(&[Some(I(1)), Some(I(2))]), Some(I(3)));
    }

    #[test]
    fn functions() {
        assert_eq!(eval0("sum(1, 2, 3)"), Some(I(6)));
        assert_eq!(eval0("sum(1, 2.5)"), Some(F(3.5)));
        assert_eq!(eval0("sum(7)"), Some(I(7)));
        assert_eq!(eval0("mean(1, 2)"), Some(F(1.5)));
        assert_eq!(eval0("mean(2, 4)"), Some(F(3.0)));
        assert_eq!(eval0("min(3, 1.5, 2)"), Some(F(1.5)));
        assert_eq!(eval0("max(3, 1.5, 2)"), Some(I(3)));
        assert_eq!(eval0("max(3, 3.0)"), Some(I(3)));
        assert_eq!(eval0("sqrt(16)"), Some(F(4.0)));
        assert_eq!(eval0("sqrt(2.25)"), Some(F(1.5)));
        assert_eq!(eval0("sqrt(0)"), Some(F(0.0)));
        assert_eq!(eval0("max(1, min(5, 2 * 2)) + sqrt(9)"), Some(F(7.0)));
        assert_eq!(
            eval_with(
                "sqrt((b * c - a * a) / (b * (b - 1)))",
                &[I(21), I(3), I(155)]
            ),
            Some(F(2.0))
        );
    }

    #[test]
    fn avg_is_mean_as_in_trifle() {
        assert_eq!(eval0("avg(1, 2)"), Some(F(1.5)));
        assert_eq!(eval0("avg(2, 4)"), Some(F(3.0)));
        assert_eq!(eval0("avg(7)"), Some(F(7.0)));
        assert_eq!(eval0("avg(1, 2.5, 3)"), eval0("mean(1, 2.5, 3)"));
        let e = Expression::parse("avg(a, b, c)", 3).unwrap();
        assert_eq!(
            e.evaluate(&[Some(I(1)), Some(I(2)), Some(I(6))]),
            Some(F(3.0))
        );
        // A missing argument makes the result null (Trifle: nil), not the mean of the rest.
        assert_eq!(e.evaluate(&[Some(I(1)), None, Some(I(6))]), None);
        assert_eq!(
            e.evaluate(&[Some(I(i64::MAX)), Some(I(i64::MAX)), Some(I(i64::MAX))]),
            Some(F(i64::MAX as f64))
        );
        assert_eq!(eval0("avg(1, 1 / 0)"), None);
        assert_eq!(eval0("avg(1e308, 1e308)"), Some(F(1e308)));
        let (at, message) = parse_error("avg()", 0);
        assert_eq!(at, 0);
        assert!(
            message.contains("avg() needs at least one argument"),
            "{message}"
        );
        let (_, message) = parse_error("average(1)", 0);
        assert!(message.contains("avg"), "{message}");
    }

    #[test]
    fn sum_and_mean_of_floats_are_compensated() {
        let e = Expression::parse("sum(a, b, c, d)", 4).unwrap();
        let inputs = [Some(F(1e20)), Some(F(1.0)), Some(F(-1e20)), Some(F(3.0))];
        // A left-to-right float sum says 3.0.
        assert_eq!(e.evaluate(&inputs), Some(F(4.0)));
        let e = Expression::parse("avg(a, b, c, d)", 4).unwrap();
        assert_eq!(e.evaluate(&inputs), Some(F(1.0)));
        assert_eq!(
            eval0("sum(0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)"),
            Some(F(1.0))
        );
        // Integers stay exact; their overflow gives a float; a non-finite sum is null.
        assert_eq!(eval0("sum(9223372036854775807, -1, 1)"), Some(I(i64::MAX)));
        assert_eq!(
            eval0("sum(9223372036854775807, 1)"),
            Some(F(9_223_372_036_854_775_808.0))
        );
        assert_eq!(eval0("sum(1e308, 1e308)"), None);
    }

    #[test]
    fn all_26_variables() {
        let source = (0..26)
            .map(letter)
            .map(String::from)
            .collect::<Vec<_>>()
            .join(" + ");
        let inputs: Vec<_> = (1..=26).map(|i| Some(I(i))).collect();
        let e = Expression::parse(&source, 26).unwrap();
        assert_eq!(e.evaluate(&inputs), Some(I(351)));
        assert!(matches!(
            Expression::parse("a", 27),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn parse_errors_have_positions() {
        let cases: &[(&str, usize, usize, &str)] = &[
            ("", 0, 0, "empty"),
            ("   ", 0, 0, "empty"),
            (
                "(a + b",
                2,
                6,
                "expected ')' to close the '(' at position 0",
            ),
            ("((a)", 1, 4, "expected ')'"),
            ("a + b)", 2, 5, "')' without a matching '('"),
            (")", 0, 0, "found \")\""),
            ("a b", 2, 2, "unexpected \"b\" after a complete expression"),
            ("1 2", 0, 2, "after a complete expression"),
            ("a +", 1, 3, "found the end of the expression"),
            ("* a", 1, 0, "found \"*\""),
            ("a % b", 2, 2, "unexpected character '%'"),
            ("a + é", 1, 4, "unexpected character 'é'"),
            ("foo(a)", 1, 0, "unknown function \"foo\""),
            ("a + pow(a, 2)", 1, 4, "unknown function \"pow\""),
            (
                "c",
                2,
                0,
                "unknown variable \"c\": 2 paths are bound, to a..b",
            ),
            ("b", 1, 0, "1 path is bound, to a"),
            ("a", 0, 0, "no paths are bound"),
            ("A", 1, 0, "single lowercase letters"),
            ("ab", 2, 0, "unknown variable \"ab\""),
            ("sum", 1, 0, "needs its arguments in parentheses"),
            ("sum()", 1, 0, "sum() needs at least one argument"),
            (
                "sqrt(1, 2)",
                1,
                0,
                "sqrt() takes exactly one argument, found 2",
            ),
            (
                "max(1, 2",
                0,
                8,
                "expected ',' or ')' in the arguments of max( at position 3, found the end",
            ),
            (
                "max(1 2)",
                0,
                6,
                "expected ',' or ')' in the arguments of max(",
            ),
            ("max(1,)", 0, 6, "found \")\""),
            ("1.", 0, 2, "digit after the decimal point"),
            ("1e", 0, 2, "digits of an exponent"),
            ("1e+", 0, 3, "digits of an exponent"),
            ("99999999999999999999", 0, 0, "outside the integer range"),
            ("1e999", 0, 0, "too large for a float"),
            (
                "1.2.3",
                0,
                3,
                "unexpected \".3\" after a complete expression",
            ),
        ];
        for (source, variables, position, needle) in cases {
            let (at, reason) = parse_error(source, *variables);
            assert!(
                reason.contains(needle),
                "{source:?}: reason {reason:?} lacks {needle:?}"
            );
            assert_eq!(at, *position, "{source:?}: {reason}");
        }
    }

    #[test]
    fn error_message_names_the_expression() {
        let err = Expression::parse("a +", 1).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid expression \"a +\" at position 3: expected a number, a variable, a \
             function call or '(', found the end of the expression"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        let (_, reason) = parse_error(&deep, 0);
        assert!(reason.contains("nests deeper"), "{reason}");
        let minus = format!("{}1", "-".repeat(10_000));
        assert!(Expression::parse(&minus, 0).is_err());
        let ok = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(Expression::parse(&ok, 0).unwrap().evaluate(&[]), Some(I(1)));
    }

    #[test]
    fn accessors() {
        let e = Expression::parse("a / b", 2).unwrap();
        assert_eq!(e.source(), "a / b");
        assert_eq!(e.variables(), 2);
        assert_eq!(e.to_string(), "a / b");
    }
}
