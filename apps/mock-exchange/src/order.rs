//! Validation of order input (pure: no I/O), shared by the query and the JSON form.

use serde::Serialize;

/// Longest accepted symbol.
pub const MAX_SYMBOL_LEN: usize = 16;
/// Largest accepted quantity; anything above is a typo or an attack, not an order.
pub const MAX_QTY: f64 = 1_000_000.0;
/// Longest accepted textual quantity (query form).
const MAX_QTY_TEXT: usize = 32;
/// The fields of an order, in the order they are reported.
pub const FIELDS: &[&str] = &["symbol", "side", "qty"];

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// A validated order, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    /// Instrument symbol, ASCII.
    pub symbol: String,
    /// Direction.
    pub side: Side,
    /// Quantity, finite, > 0 and ≤ [`MAX_QTY`].
    pub qty: f64,
}

/// A rejected input: which field and why (becomes a 4xx JSON body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The offending field (`symbol`, `side`, `qty`, `order_id`, `body`, `query`, ...).
    pub field: String,
    /// What was expected.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A raw field value as it arrived: text (query form) or any JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// From the query string.
    Text(String),
    /// From a JSON body.
    Json(serde_json::Value),
}

/// Validates the three fields; `get` returns a field's raw value if it was given.
pub fn validate(get: impl Fn(&str) -> Option<Raw>) -> Result<NewOrder, FieldError> {
    let symbol = symbol(get("symbol"))?;
    let side = side(get("side"))?;
    let qty = qty(get("qty"))?;
    Ok(NewOrder { symbol, side, qty })
}

fn text_of(field: &str, raw: Option<Raw>, what: &str) -> Result<String, FieldError> {
    match raw {
        None => Err(FieldError::new(field, format!("is required ({what})"))),
        Some(Raw::Text(t)) | Some(Raw::Json(serde_json::Value::String(t))) => Ok(t),
        Some(Raw::Json(_)) => Err(FieldError::new(field, format!("must be a string ({what})"))),
    }
}

fn symbol(raw: Option<Raw>) -> Result<String, FieldError> {
    const WHAT: &str = "1-16 ASCII letters, digits, '.', '-', '_' or '/'";
    let s = text_of("symbol", raw, WHAT)?;
    if s.is_empty() {
        return Err(FieldError::new(
            "symbol",
            format!("must not be empty ({WHAT})"),
        ));
    }
    if !s.is_ascii() {
        return Err(FieldError::new("symbol", format!("must be ASCII ({WHAT})")));
    }
    if s.len() > MAX_SYMBOL_LEN {
        return Err(FieldError::new(
            "symbol",
            format!("is {} characters long ({WHAT})", s.len()),
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
    {
        return Err(FieldError::new(
            "symbol",
            format!("contains a character that is not allowed ({WHAT})"),
        ));
    }
    Ok(s)
}

fn side(raw: Option<Raw>) -> Result<Side, FieldError> {
    const WHAT: &str = "buy or sell";
    let s = text_of("side", raw, WHAT)?;
    match s.to_ascii_lowercase().as_str() {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        _ => Err(FieldError::new(
            "side",
            format!("unknown side {:?} (expected {WHAT})", truncate(&s)),
        )),
    }
}

fn qty(raw: Option<Raw>) -> Result<f64, FieldError> {
    let what = format!("a finite number greater than 0 and at most {MAX_QTY}");
    let value = match raw {
        None => return Err(FieldError::new("qty", format!("is required ({what})"))),
        Some(Raw::Json(serde_json::Value::Number(n))) => n
            .as_f64()
            .ok_or_else(|| FieldError::new("qty", format!("is not representable ({what})")))?,
        Some(Raw::Text(t)) | Some(Raw::Json(serde_json::Value::String(t))) => {
            if t.len() > MAX_QTY_TEXT {
                return Err(FieldError::new("qty", format!("is too long ({what})")));
            }
            t.trim()
                .parse::<f64>()
                .map_err(|_| FieldError::new("qty", format!("is not a number ({what})")))?
        }
        Some(Raw::Json(_)) => {
            return Err(FieldError::new("qty", format!("must be a number ({what})")));
        }
    };
    if !value.is_finite() {
        return Err(FieldError::new("qty", format!("must be finite ({what})")));
    }
    if value <= 0.0 {
        return Err(FieldError::new(
            "qty",
            format!("must be greater than 0 ({what})"),
        ));
    }
    if value > MAX_QTY {
        return Err(FieldError::new("qty", format!("is too large ({what})")));
    }
    Ok(value)
}

/// Parses an order id from the path: a positive 64-bit integer.
pub fn order_id(text: &str) -> Result<i64, FieldError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(FieldError::new(
            "order_id",
            format!("{:?} is not a positive integer", truncate(text)),
        )),
    }
}

/// Echoes at most 32 characters of user input back in messages.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from_text(symbol: &str, side: &str, qty: &str) -> Result<NewOrder, FieldError> {
        validate(|f| {
            let v = match f {
                "symbol" => symbol,
                "side" => side,
                _ => qty,
            };
            Some(Raw::Text(v.to_string()))
        })
    }

    fn field_of(r: Result<NewOrder, FieldError>) -> String {
        r.expect_err("must be rejected").field
    }

    #[test]
    fn valid_query_form_order_is_accepted() {
        let o = from_text("BTC", "buy", "1").expect("valid");
        assert_eq!(o.symbol, "BTC");
        assert_eq!(o.side, Side::Buy);
        assert_eq!(o.qty, 1.0);
        assert_eq!(
            from_text("ETH-USD", "SELL", "0.5").map(|o| o.side),
            Ok(Side::Sell)
        );
    }

    #[test]
    fn each_bad_symbol_names_symbol() {
        for s in ["", "BTCBTCBTCBTCBTCBTC", "BTÇ", "B C", "BTC;"] {
            assert_eq!(field_of(from_text(s, "buy", "1")), "symbol", "{s:?}");
        }
    }

    #[test]
    fn unknown_side_names_side() {
        assert_eq!(field_of(from_text("BTC", "hold", "1")), "side");
        assert_eq!(field_of(from_text("BTC", "", "1")), "side");
    }

    #[test]
    fn each_bad_qty_names_qty() {
        for q in [
            "0", "-1", "NaN", "inf", "-inf", "1e400", "1e7", "abc", "", "0x10",
        ] {
            assert_eq!(field_of(from_text("BTC", "buy", q)), "qty", "{q:?}");
        }
    }

    #[test]
    fn json_types_are_checked() {
        let order = |v: serde_json::Value| validate(move |f| v.get(f).cloned().map(Raw::Json));
        assert!(order(json!({"symbol":"BTC","side":"buy","qty":2.5})).is_ok());
        assert!(order(json!({"symbol":"BTC","side":"buy","qty":"2.5"})).is_ok());
        assert_eq!(
            field_of(order(json!({"symbol":1,"side":"buy","qty":1}))),
            "symbol"
        );
        assert_eq!(
            field_of(order(json!({"symbol":"BTC","side":"buy","qty":true}))),
            "qty"
        );
        assert_eq!(field_of(order(json!({"symbol":"BTC","qty":1}))), "side");
        assert_eq!(
            field_of(order(json!({"symbol":"BTC","side":"buy","qty":1e300}))),
            "qty"
        );
    }

    #[test]
    fn order_id_must_be_a_positive_integer() {
        assert_eq!(order_id("42"), Ok(42));
        for bad in ["0", "-3", "abc", "1.5", "99999999999999999999"] {
            assert_eq!(order_id(bad).map_err(|e| e.field), Err("order_id".into()));
        }
    }
}
