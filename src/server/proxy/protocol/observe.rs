//! The answer side: what a call used, read from its answer, whole or
//! streamed as it passes.

use serde_json::{Value, json};

use super::*;
use crate::domain::pricing::{Count, Quantities};
use crate::domain::provider_usage::map_usage;

/// What a call used, as read from its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The provider's own count, when the answer carried one.
    pub usage: Option<Quantities>,
    /// Characters of generated text seen, for an estimate when it did not.
    pub text_chars: u64,
    /// The answer arrived whole. A stream cut short may carry a count
    /// that stops before the text it delivered.
    pub complete: bool,
}

impl Observed {
    /// The quantities to record and whether they are an estimate: the
    /// provider's count, or else the request's input estimate and the text
    /// seen at four characters a token.
    pub fn quantities(&self, plan: &CallPlan) -> (Quantities, bool) {
        let mut q = match self.usage {
            Some(q) if self.complete => (q, false),
            Some(mut q) => {
                q[Count::Output] = q[Count::Output].max(tokens_for_chars(self.text_chars));
                (q, true)
            }
            None if plan.endpoint.usage_format().is_none() => (Quantities::default(), false),
            None => (Quantities::tokens(plan.input_estimate, tokens_for_chars(self.text_chars)), true),
        };
        q.0.service_tier = plan.service_tier;
        q.0.units = plan.units.unwrap_or(0);
        q
    }
}

fn usage_from(endpoint: Endpoint, usage: Option<&Value>) -> Option<Quantities> {
    let format = endpoint.usage_format()?;
    usage.filter(|u| u.is_object()).and_then(|u| map_usage(format, u).ok())
}

fn text_chars(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_str).map_or(0, |s| s.chars().count() as u64)
}

/// Characters of generated text in an OpenAI chat choice list (`message`
/// in a whole answer, `delta` in a stream chunk).
fn chat_text(choices: Option<&Value>, field: &str) -> u64 {
    choices.and_then(Value::as_array).map_or(0, |cs| {
        cs.iter()
            .map(|c| {
                let m = c.get(field);
                let tools = m
                    .and_then(|m| m.get("tool_calls"))
                    .and_then(Value::as_array)
                    .map_or(0, |ts| ts.iter().map(|t| text_chars(t.pointer("/function/arguments"))).sum::<u64>());
                text_chars(m.and_then(|m| m.get("content"))) + tools
            })
            .sum()
    })
}

fn gemini_text(v: &Value) -> u64 {
    v.get("candidates").and_then(Value::as_array).map_or(0, |cs| {
        cs.iter()
            .flat_map(|c| c.pointer("/content/parts").and_then(Value::as_array).into_iter().flatten())
            .map(|p| text_chars(p.get("text")))
            .sum()
    })
}

/// Usage from a whole (not streamed) answer body.
pub fn observe_body(endpoint: Endpoint, body: &[u8]) -> Observed {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        // Not JSON (or cut short): only its length says anything.
        return Observed { usage: None, text_chars: body.len() as u64, complete: false };
    };
    match endpoint {
        Endpoint::OpenAiChat => Observed {
            usage: usage_from(endpoint, doc.get("usage")),
            text_chars: chat_text(doc.get("choices"), "message"),
            complete: true,
        },
        Endpoint::OpenAiResponses | Endpoint::OpenAiEmbeddings | Endpoint::AnthropicMessages => {
            Observed { usage: usage_from(endpoint, doc.get("usage")), text_chars: 0, complete: true }
        }
        Endpoint::GeminiGenerate => {
            // A streamed generation asked for without `alt=sse` is one JSON
            // array of answers; the last count is the call's.
            let items: Vec<&Value> = match &doc {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            Observed {
                usage: items.iter().rev().find_map(|i| usage_from(endpoint, i.get("usageMetadata"))),
                text_chars: items.iter().map(|i| gemini_text(i)).sum(),
                complete: true,
            }
        }
        Endpoint::Search => Observed { complete: true, ..Observed::default() },
    }
}

/// Reads a server-sent event stream as it passes: forwards each event
/// whole as soon as it is complete (so a client never waits on the proxy
/// for more than the rest of an event), keeps the usage it carries, counts
/// the generated text, and drops the usage chunk the proxy asked for on a
/// client's behalf.
#[derive(Debug)]
pub struct StreamTap {
    endpoint: Endpoint,
    hide_usage_chunk: bool,
    /// Not server-sent events (Gemini's stream without `alt=sse` is one
    /// JSON array sent in parts): passed on as it comes and read whole at
    /// the end.
    raw: bool,
    pending: Vec<u8>,
    /// The usage object so far (Anthropic's grows across events).
    usage: Option<Value>,
    /// Usage read from a raw stream at its end.
    usage_seen: Option<Quantities>,
    text_chars: u64,
}

impl StreamTap {
    pub fn new(plan: &CallPlan, sse: bool) -> StreamTap {
        StreamTap {
            endpoint: plan.endpoint,
            hide_usage_chunk: plan.hide_usage_chunk,
            raw: !sse,
            pending: Vec::new(),
            usage: None,
            usage_seen: None,
            text_chars: 0,
        }
    }

    /// Takes a chunk from upstream; the bytes to send the client now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.raw {
            if self.pending.len() + chunk.len() <= MAX_RAW_STREAM_BYTES {
                self.pending.extend_from_slice(chunk);
            } else {
                self.text_chars += chunk.len() as u64;
            }
            return chunk.to_vec();
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(pending.len());
        let mut start = 0;
        while let Some((end, sep)) = event_end(&pending[start..]) {
            if self.inspect(&pending[start..start + end]) {
                out.extend_from_slice(&pending[start..start + end + sep]);
            }
            start += end + sep;
        }
        pending.drain(..start);
        self.pending = pending;
        out
    }

    /// The stream ended: whatever incomplete event is left, as it came.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.raw {
            let o = observe_body(self.endpoint, &self.pending);
            self.usage_seen = o.usage;
            self.text_chars += o.text_chars;
            self.pending.clear();
            return Vec::new();
        }
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.inspect(&rest);
        }
        rest
    }

    /// What the stream showed; complete unless the caller knows better.
    pub fn observed(&self) -> Observed {
        Observed {
            usage: self.usage_seen.or_else(|| usage_from(self.endpoint, self.usage.as_ref())),
            text_chars: self.text_chars,
            complete: true,
        }
    }

    /// Reads one event; whether to forward it.
    fn inspect(&mut self, event: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(event) else { return true };
        let mut data = String::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if !data.starts_with('{') {
            return true;
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else { return true };
        match self.endpoint {
            Endpoint::OpenAiChat => {
                self.text_chars += chat_text(v.get("choices"), "delta");
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(u.clone());
                    let no_choices = v.get("choices").and_then(Value::as_array).is_none_or(Vec::is_empty);
                    if self.hide_usage_chunk && no_choices {
                        return false;
                    }
                }
            }
            Endpoint::OpenAiResponses => match v.get("type").and_then(Value::as_str) {
                Some("response.output_text.delta" | "response.function_call_arguments.delta") => {
                    self.text_chars += text_chars(v.get("delta"));
                }
                Some("response.completed" | "response.incomplete" | "response.failed") => {
                    if let Some(u) = v.pointer("/response/usage").filter(|u| u.is_object()) {
                        self.usage = Some(u.clone());
                    }
                }
                _ => {}
            },
            Endpoint::AnthropicMessages => match v.get("type").and_then(Value::as_str) {
                Some("message_start") => {
                    if let Some(u) = v.pointer("/message/usage").filter(|u| u.is_object()) {
                        self.usage = Some(u.clone());
                    }
                }
                Some("message_delta") => {
                    // Later counts replace earlier ones, field by field.
                    if let Some(Value::Object(delta)) = v.get("usage") {
                        let usage = self.usage.get_or_insert_with(|| json!({}));
                        for (k, val) in delta {
                            if !val.is_null() {
                                usage[k.as_str()] = val.clone();
                            }
                        }
                    }
                }
                Some("content_block_delta") => {
                    let d = v.get("delta");
                    self.text_chars += ["text", "thinking", "partial_json"]
                        .iter()
                        .map(|k| text_chars(d.and_then(|d| d.get(*k))))
                        .sum::<u64>();
                }
                _ => {}
            },
            Endpoint::GeminiGenerate => {
                self.text_chars += gemini_text(&v);
                if let Some(u) = v.get("usageMetadata").filter(|u| u.is_object()) {
                    self.usage = Some(u.clone());
                }
            }
            Endpoint::OpenAiEmbeddings | Endpoint::Search => {}
        }
        true
    }
}

/// The most of a raw stream kept to read its usage at the end.
const MAX_RAW_STREAM_BYTES: usize = 64 * 1024 * 1024;

/// Where the first complete event of `buf` ends, and the separator's
/// length (`\n\n`, `\r\n\r\n` or `\r\r`).
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        match (buf[i], buf[i + 1]) {
            (b'\n', b'\n') | (b'\r', b'\r') => return Some((i, 2)),
            (b'\r', b'\n') if buf[i + 2..].starts_with(b"\r\n") => return Some((i, 4)),
            _ => i += 1,
        }
    }
    None
}
