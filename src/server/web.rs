//! What the HTTP layer does around every page, whatever door serves it:
//! security headers, the caller's address behind trusted proxies, the
//! public origin that decides cookie security and cross-site checks, and
//! media types. It knows nothing of users or state: who may open a page is
//! [`crate::server::policy::page_guard`]'s to say.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The media type a message declares (`Content-Type` without its
/// parameters, lowercase); empty when it declares none.
pub fn media_type(headers: &HeaderMap) -> String {
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether a [`media_type`] is JSON (`application/json` or `…+json`).
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// Settings of the HTTP layer, from `serve`'s flags.
#[derive(Clone, Debug, Default)]
pub struct WebSettings {
    /// `scheme://host[:port]` people reach Tally at, when configured.
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
}

impl WebSettings {
    /// Whether cookies must be `Secure`: the configured origin is https, or
    /// (unconfigured) the request was not sent to localhost.
    pub fn secure_cookies(&self, headers: &HeaderMap) -> bool {
        match &self.public_url {
            Some(u) => u.starts_with("https://"),
            None => !is_local(headers),
        }
    }

    /// Whether `Origin` (else `Referer`) names our own origin: the configured
    /// public origin, else the host the request was sent to.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
        let Some(source) = source else { return false };
        match &self.public_url {
            Some(origin) => {
                source == origin || source.strip_prefix(origin.as_str()).is_some_and(|rest| rest.starts_with('/'))
            }
            None => {
                let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
                source.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or("")) == Some(host)
            }
        }
    }

    /// The client's address: the peer, unless the peer is a trusted proxy,
    /// then the nearest `X-Forwarded-For` hop that is not one.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        let peer = peer?;
        if !trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        // Right to left: each trusted proxy appended the address it saw.
        Some(hops.iter().rev().copied().find(|ip| !trusted(*ip)).or(hops.first().copied()).unwrap_or(peer))
    }
}

fn is_local(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let name =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name.ends_with(".localhost")
}

/// The Content-Security-Policy of a page: our own scripts, the inline
/// hydration scripts carrying this response's nonce, and the WASM.
pub fn page_csp(nonce: Option<&str>) -> String {
    let inline = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{inline} 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Headers a security review expects on every response. Pages set their
/// own CSP (with the nonce) while rendering; anything else gets one without.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "strict-origin-when-cross-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(v) = HeaderValue::from_str(&page_csp(None))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// Decodes `%XX` escapes (and `+` as space); `None` for malformed input.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The peer address of a request, when the server recorded it.
pub fn peer_ip(req_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    req_extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// An address range: an address and a prefix length (a single address has
/// the full length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address.
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(ip, V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl IpNet {
    /// `10.0.0.0/8`, or one address (`127.0.0.1`, `::1`).
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr =
            addr.parse().map_err(|_| format!("`{s}` is not an IP address or CIDR range such as 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(IpNet { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn origins_follow_the_public_url_when_set() {
        let open = WebSettings::default();
        assert!(open.same_origin(&h(&[("host", "a.test:3000"), ("origin", "http://a.test:3000")])));
        assert!(!open.same_origin(&h(&[("host", "a.test"), ("origin", "https://a.test.evil.test")])));
        assert!(!open.same_origin(&h(&[("host", "a.test")])));
        let set = WebSettings { public_url: Some("https://bill.example.com".into()), ..Default::default() };
        // A forged Host header no longer decides what "our origin" is.
        assert!(!set.same_origin(&h(&[("host", "evil.test"), ("origin", "https://evil.test")])));
        assert!(set.same_origin(&h(&[("host", "internal:3000"), ("origin", "https://bill.example.com")])));
        assert!(set.same_origin(&h(&[("referer", "https://bill.example.com/login")])));
        assert!(!set.same_origin(&h(&[("origin", "https://bill.example.com.evil.test")])));
        assert!(set.secure_cookies(&h(&[("host", "127.0.0.1:3000")])));
        assert!(!open.secure_cookies(&h(&[("host", "127.0.0.1:3000")])));
        assert!(open.secure_cookies(&h(&[("host", "bill.example.com")])));
    }

    #[test]
    fn client_address_believes_only_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let xff = h(&[("x-forwarded-for", "203.0.113.9, 10.0.0.7")]);
        let none = WebSettings::default();
        assert_eq!(none.client_ip(Some(proxy), &xff), Some(proxy), "untrusted peer: its headers are ignored");
        let web = WebSettings {
            trusted_proxies: vec![IpNet { addr: "10.0.0.0".parse().unwrap(), prefix: 8 }],
            ..Default::default()
        };
        assert_eq!(web.client_ip(Some(proxy), &xff), Some("203.0.113.9".parse().unwrap()));
        // A client cannot pick its address by sending its own header to a proxy
        // that appends: the nearest untrusted hop wins.
        let spoof = h(&[("x-forwarded-for", "1.2.3.4, 198.51.100.2")]);
        assert_eq!(web.client_ip(Some(proxy), &spoof), Some("198.51.100.2".parse().unwrap()));
        let direct: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(web.client_ip(Some(direct), &xff), Some(direct));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("%2Fusage%3Fa%3D1").as_deref(), Some("/usage?a=1"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%"), None);
    }
}
