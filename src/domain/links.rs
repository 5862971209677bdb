//! Links between pages: where signing in may send a visitor back to, and
//! how a query value is written. Pure rules shared by the server's page
//! layer and the browser.

/// `next` if it is a path on this site, by a strict pattern: one leading
/// `/` not followed by `/` or `\\`, then only URL characters with no
/// whitespace, control characters or backslashes (which browsers may read
/// as a host: `/\\evil.com`, `/<TAB>/evil.com`).
pub fn safe_next(next: &str) -> Option<&str> {
    let b = next.as_bytes();
    let ok = (1..=2048).contains(&b.len())
        && b[0] == b'/'
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"-._~/?=&%+,:@!$'()*;#".contains(&c));
    ok.then_some(next)
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_allows_only_paths_on_this_site() {
        for ok in ["/", "/dashboard", "/usage?provider=gemini&period=2026-01", "/admin/plans#x"] {
            assert_eq!(safe_next(ok), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "//evil.com",
            "/\\evil.com",
            "/\t/evil.com",
            "https://evil.com",
            "evil.com",
            "/a\u{0}b",
            "/a\nb",
            "/a b",
            "/\u{e9}",
            "\\\\evil.com",
            "/%0d%0aSet-Cookie:x",
            "javascript:alert(1)",
        ] {
            // Percent escapes are fine (they stay a path); raw bytes are not.
            let allowed = safe_next(bad).is_some();
            assert_eq!(allowed, bad.starts_with("/%"), "{bad:?}");
        }
        assert!(safe_next(&format!("/{}", "a".repeat(3000))).is_none());
    }
}
