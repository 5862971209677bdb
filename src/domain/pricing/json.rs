//! Rates as JSON: the admin API's shape and the store's for tiers. Prices
//! are decimal strings, read exactly (never through a float).

use super::*;
use crate::domain::money::Price;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Problems found, each as (field path, message).
pub type FieldErrors = Vec<(String, String)>;

pub fn class_to_map(r: &ClassRates, with_unset: bool) -> Map<String, Value> {
    let mut m = Map::new();
    for f in RateField::ALL {
        match r.get(f) {
            Some(p) => {
                m.insert(f.name().into(), Value::String(p.as_string()));
            }
            None if with_unset => {
                m.insert(f.name().into(), Value::Null);
            }
            None => {}
        }
    }
    m
}

pub fn tiers_to_json(tiers: &[ContextTier]) -> Value {
    Value::Array(
        tiers
            .iter()
            .map(|t| {
                let mut m = Map::new();
                m.insert("above_input_tokens".into(), t.above_input_tokens.into());
                m.extend(class_to_map(&t.rates, false));
                Value::Object(m)
            })
            .collect(),
    )
}

pub fn service_tiers_to_json(s: &BTreeMap<ServiceTier, ServiceTierRates>) -> Value {
    Value::Object(
        s.iter()
            .map(|(tier, r)| {
                let mut m = class_to_map(&r.rates, false);
                if !r.tiers.is_empty() {
                    m.insert("tiers".into(), tiers_to_json(&r.tiers));
                }
                (tier.as_str().to_string(), Value::Object(m))
            })
            .collect(),
    )
}

/// Every base rate (null when unset), `tiers` and `service_tiers`.
pub fn rates_to_map(r: &Rates) -> Map<String, Value> {
    let mut m = class_to_map(&r.base, true);
    m.insert("tiers".into(), tiers_to_json(&r.tiers));
    m.insert("service_tiers".into(), service_tiers_to_json(&r.service_tiers));
    m
}

/// Reads prices no larger than `max` USD.
pub struct Reader {
    pub max: Decimal,
    pub errors: FieldErrors,
}

impl Reader {
    pub fn new(max: Decimal) -> Reader {
        Reader { max, errors: Vec::new() }
    }

    fn err(&mut self, path: String, msg: impl Into<String>) {
        self.errors.push((path, msg.into()));
    }

    /// One price: a decimal string, blank or null for unset.
    pub fn price(&mut self, path: &str, v: &Value) -> Option<Price> {
        let raw = match v {
            Value::Null => return None,
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => s.trim(),
            _ => {
                self.err(path.into(), "must be a price in US dollars as a string, such as \"1.25\"");
                return None;
            }
        };
        match Price::parse(raw) {
            Ok(p) if p.decimal() > self.max => {
                self.err(path.into(), format!("Enter a price up to {} US dollars.", self.max));
                None
            }
            Ok(p) => Some(p),
            Err(_) => {
                self.err(path.into(), "Enter a price in US dollars such as 1.25 or 0.0025.");
                None
            }
        }
    }

    /// The rate fields of `obj`; any key that is neither a rate nor in
    /// `also` is an error.
    pub fn class(&mut self, obj: &Map<String, Value>, prefix: &str, also: &[&str]) -> ClassRates {
        let mut r = ClassRates::default();
        for (k, v) in obj {
            match RateField::parse(k) {
                Some(f) => {
                    let p = self.price(&format!("{prefix}{k}"), v);
                    r.set(f, p);
                }
                None if also.contains(&k.as_str()) => {}
                None => self.err(format!("{prefix}{k}"), "is not a price field"),
            }
        }
        r
    }

    /// `[{"above_input_tokens": N, <rates>}, ...]`, sorted by N.
    pub fn tiers(&mut self, v: &Value, path: &str) -> Vec<ContextTier> {
        let list = match v {
            Value::Null => return Vec::new(),
            Value::Array(a) => a,
            _ => {
                self.err(path.into(), "must be a list of {\"above_input_tokens\": N, <rates>}");
                return Vec::new();
            }
        };
        let mut out: Vec<ContextTier> = Vec::new();
        for (i, t) in list.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(obj) = t.as_object() else {
                self.err(at, "must be an object");
                continue;
            };
            let above = match obj.get("above_input_tokens").and_then(Value::as_u64) {
                Some(n) if n > 0 => n,
                _ => {
                    self.err(format!("{at}.above_input_tokens"), "must be a whole number of tokens above 0");
                    continue;
                }
            };
            let rates = self.class(obj, &format!("{at}."), &["above_input_tokens"]);
            if rates.is_empty() {
                self.err(at.clone(), "sets no rate");
            }
            if out.iter().any(|o| o.above_input_tokens == above) {
                self.err(format!("{at}.above_input_tokens"), format!("two tiers start above {above} tokens"));
            }
            out.push(ContextTier { above_input_tokens: above, rates });
        }
        out.sort_by_key(|t| t.above_input_tokens);
        out
    }

    /// `{"batch"|"flex"|"priority": {<rates>, "tiers"?: [...]}}`.
    pub fn service_tiers(&mut self, v: &Value, path: &str) -> BTreeMap<ServiceTier, ServiceTierRates> {
        let obj = match v {
            Value::Null => return BTreeMap::new(),
            Value::Object(o) => o,
            _ => {
                self.err(path.into(), "must be an object keyed by batch, flex or priority");
                return BTreeMap::new();
            }
        };
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let at = format!("{path}.{k}");
            let tier = match ServiceTier::parse(k) {
                Some(ServiceTier::Standard) | None => {
                    self.err(at, "must be batch, flex or priority (standard rates are the base rates)");
                    continue;
                }
                Some(t) => t,
            };
            let Some(o) = v.as_object() else {
                self.err(at, "must be an object of rates");
                continue;
            };
            let rates = self.class(o, &format!("{at}."), &["tiers"]);
            let tiers = self.tiers(o.get("tiers").unwrap_or(&Value::Null), &format!("{at}.tiers"));
            if rates.is_empty() && tiers.is_empty() {
                self.err(at, "sets no rate");
            }
            out.insert(tier, ServiceTierRates { rates, tiers });
        }
        out
    }
}
