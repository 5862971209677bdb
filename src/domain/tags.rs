//! Tags on usage events: free attribution labels such as
//! `{"project": "blog", "feature": "outline"}`, by which cost, calls and
//! tokens can be broken down and the usage log filtered.
//!
//! At most [`MAX_TAGS`] keys of 1-64 characters, each to a value of 1-128
//! characters, none with control characters. Keys also may not contain `=`
//! or `,`, so every tag set can be written as the proxy's
//! `x-tally-tags: project=blog,feature=outline` header and as the usage
//! log's `tag=project=blog` filter without quoting.

use std::collections::BTreeMap;

use serde_json::Value;

pub const MAX_TAGS: usize = 10;
/// The most distinct tag keys one user's events may carry in all: every
/// dashboard load lists them, so a new key past this is refused (the
/// event alone, saying so) rather than stored.
pub const MAX_KEYS_PER_USER: usize = 100;
pub const MAX_KEY_CHARS: usize = 64;
pub const MAX_VALUE_CHARS: usize = 128;

/// A valid tag set, keys sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags(pub BTreeMap<String, String>);

fn check_key(k: &str) -> Result<(), String> {
    let n = k.chars().count();
    if n == 0 || n > MAX_KEY_CHARS {
        return Err(format!("tag key `{k}` must be 1-{MAX_KEY_CHARS} characters"));
    }
    if let Some(c) = k.chars().find(|c| c.is_control() || matches!(c, '=' | ',')) {
        return Err(format!("tag key `{}` may not contain {}", k.escape_debug(), describe(c)));
    }
    Ok(())
}

fn check_value(k: &str, v: &str) -> Result<(), String> {
    let n = v.chars().count();
    if n == 0 || n > MAX_VALUE_CHARS {
        return Err(format!("tag `{k}`: the value must be 1-{MAX_VALUE_CHARS} characters"));
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(format!("tag `{k}`: the value may not contain {}", describe(c)));
    }
    Ok(())
}

fn describe(c: char) -> String {
    if c.is_control() { format!("a control character (U+{:04X})", c as u32) } else { format!("`{c}`") }
}

impl Tags {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn insert(&mut self, k: &str, v: &str) -> Result<(), String> {
        check_key(k)?;
        check_value(k, v)?;
        if self.0.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("tag `{k}` is given twice"));
        }
        if self.0.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags per event"));
        }
        Ok(())
    }

    /// The `tags` field of an event: an object of strings, or null.
    pub fn from_json(v: Option<&Value>) -> Result<Tags, String> {
        let mut tags = Tags::default();
        match v {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let Value::String(s) = v else {
                        return Err(format!("`tags`: the value of `{k}` must be a string"));
                    };
                    tags.insert(k, s).map_err(|e| format!("`tags`: {e}"))?;
                }
            }
            Some(_) => return Err("`tags` must be an object of strings".into()),
        }
        Ok(tags)
    }

    /// The proxy's `x-tally-tags` header: `key=value` pairs separated by
    /// commas, spaces around each trimmed. Empty means none.
    pub fn from_header(raw: &str) -> Result<Tags, String> {
        let mut tags = Tags::default();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("x-tally-tags: `{pair}` is not key=value"))?;
            tags.insert(k.trim(), v.trim()).map_err(|e| format!("x-tally-tags: {e}"))?;
        }
        Ok(tags)
    }

    /// The stored form: a JSON object with sorted keys, or `None` when empty.
    pub fn encode(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(&self.0).expect("strings serialise"))
    }

    /// The stored form read back (`None` = no tags).
    pub fn decode(stored: Option<&str>) -> Option<Tags> {
        match stored {
            None => Some(Tags::default()),
            Some(s) => serde_json::from_str(s).ok().map(Tags),
        }
    }

    /// `feature=outline, project=blog` for people.
    pub fn describe(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    }
}

/// A usage-log filter on one tag: `key=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: String,
}

impl TagFilter {
    /// `key=value` (split at the first `=`, which keys never contain), or
    /// empty for none.
    pub fn parse(raw: Option<&str>) -> Result<Option<TagFilter>, String> {
        let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
        let (k, v) = raw.split_once('=').ok_or_else(|| format!("tag filter `{raw}` must be key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        check_key(k).and_then(|_| check_value(k, v))?;
        Ok(Some(TagFilter { key: k.to_string(), value: v.to_string() }))
    }

    pub fn as_param(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

/// What a breakdown groups by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakdownBy {
    Provider,
    Model,
    Tag(String),
}

impl BreakdownBy {
    /// `provider`, `model` or `tag:<key>`.
    pub fn parse(raw: &str) -> Result<BreakdownBy, String> {
        match raw.trim() {
            "provider" | "" => Ok(BreakdownBy::Provider),
            "model" => Ok(BreakdownBy::Model),
            s => match s.strip_prefix("tag:") {
                Some(k) => {
                    check_key(k)?;
                    Ok(BreakdownBy::Tag(k.to_string()))
                }
                None => Err(format!("by must be provider, model or tag:<key> (got `{s}`)")),
            },
        }
    }

    pub fn as_param(&self) -> String {
        match self {
            BreakdownBy::Provider => "provider".into(),
            BreakdownBy::Model => "model".into(),
            BreakdownBy::Tag(k) => format!("tag:{k}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_tags_are_checked() {
        let t = Tags::from_json(Some(&json!({"project": "blog", "feature": "outline"}))).unwrap();
        assert_eq!(t.encode().unwrap(), r#"{"feature":"outline","project":"blog"}"#);
        assert_eq!(Tags::decode(t.encode().as_deref()), Some(t.clone()));
        assert_eq!(t.describe(), "feature=outline, project=blog");
        assert_eq!(Tags::from_json(None).unwrap(), Tags::default());
        assert_eq!(Tags::default().encode(), None);
        let eleven: serde_json::Map<String, Value> = (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
        let cases = [
            (json!(["a"]), "must be an object"),
            (json!({"a": 1}), "must be a string"),
            (json!({"": "x"}), "1-64"),
            (json!({"k".repeat(65): "x"}), "1-64"),
            (json!({"a": ""}), "1-128"),
            (json!({"a": "v".repeat(129)}), "1-128"),
            (json!({"a=b": "x"}), "may not contain `=`"),
            (json!({"a,b": "x"}), "may not contain `,`"),
            (json!({"a": "x\u{0}"}), "control character (U+0000)"),
            (Value::Object(eleven), "at most 10"),
        ];
        for (v, want) in cases {
            let e = Tags::from_json(Some(&v)).unwrap_err();
            assert!(e.contains(want), "{v} -> {e}");
        }
        // 64 and 128 characters (not bytes) are fine.
        assert!(Tags::from_json(Some(&json!({"é".repeat(64): "ü".repeat(128)}))).is_ok());
    }

    #[test]
    fn header_tags() {
        let t = Tags::from_header(" project=blog , feature = outline,").unwrap();
        assert_eq!(t.get("project"), Some("blog"));
        assert_eq!(t.get("feature"), Some("outline"));
        assert_eq!(Tags::from_header("").unwrap(), Tags::default());
        assert!(Tags::from_header("project").unwrap_err().contains("not key=value"));
        assert!(Tags::from_header("a=1,a=2").unwrap_err().contains("twice"));
        assert!(Tags::from_header("a=").unwrap_err().contains("1-128"));
        // A value may hold `=`: only the first one splits.
        assert_eq!(Tags::from_header("q=a=b").unwrap().get("q"), Some("a=b"));
    }

    #[test]
    fn filters_and_breakdowns() {
        assert_eq!(TagFilter::parse(None), Ok(None));
        assert_eq!(TagFilter::parse(Some(" ")), Ok(None));
        let f = TagFilter::parse(Some("project=blog=x")).unwrap().unwrap();
        assert_eq!((f.key.as_str(), f.value.as_str()), ("project", "blog=x"));
        assert_eq!(f.as_param(), "project=blog=x");
        assert!(TagFilter::parse(Some("project")).unwrap_err().contains("key=value"));
        assert!(TagFilter::parse(Some("=blog")).is_err());
        assert_eq!(BreakdownBy::parse("model"), Ok(BreakdownBy::Model));
        assert_eq!(BreakdownBy::parse("provider"), Ok(BreakdownBy::Provider));
        assert_eq!(BreakdownBy::parse("tag:project"), Ok(BreakdownBy::Tag("project".into())));
        assert_eq!(BreakdownBy::Tag("project".into()).as_param(), "tag:project");
        assert!(BreakdownBy::parse("tag:").is_err());
        assert!(BreakdownBy::parse("colour").unwrap_err().contains("provider, model or tag:<key>"));
    }
}
