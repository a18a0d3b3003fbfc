//! Who may use the service, and the names of the reasons a request is refused.
//!
//! The rules (see the README's "Who can reach the service"):
//! - **Token** (optional): with one configured (`FER_PREDICT_TOKEN`, or `--token-file`, never a
//!   flag's value, which `ps` shows), `/predict` and `/metrics` need
//!   `Authorization: Bearer <token>` (401 otherwise). The comparison is of the two strings'
//!   blake3 hashes, whose equality test is constant-time: the time taken says nothing of how
//!   much of a guess was right.
//! - **Browsers on the same machine**: a page from any web site, open on the kiosk, can send a
//!   "simple" cross-origin `POST` (no CORS preflight) to a loopback service. Such a request
//!   carries an `Origin` header, and a simple request's `Content-Type` can only be a form or
//!   text type (or absent). So `/predict` refuses (403) any `Origin` that is not the service's
//!   own (`http://<bound address>`, `http://localhost:<port>`) or one given with
//!   `--allow-origin`, and (415) a `Content-Type` other than `image/jpeg`, `image/png` or
//!   `application/octet-stream`.
//! - `/health` answers anyone, but its model path, the scorer's failure reason and the last
//!   panic's text only to a request with the token (with no token configured: to nobody).

use axum::http::{HeaderMap, header};
use std::net::SocketAddr;

/// Why a request or a connection was refused: the `reason` label of
/// `fer_refusals_total` (every value is registered at start, so the series never grow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The image costs more memory than the budget (413), or has too many pixels or too
    /// narrow a shape.
    Budget,
    /// The body is over `--max-body` (413).
    Body,
    /// The body arrived slower than `--min-body-rate` (408).
    Rate,
    /// No token or a wrong one (401).
    Token,
    /// A cross-origin browser request (403).
    Origin,
    /// A `Content-Type` that is not an image type (415).
    ContentType,
    /// Busy: the queue, the bodies in flight or the client's share is full (503).
    Shed,
    /// The request did not finish within `--timeout` (503), or its body within it (408).
    Timeout,
    /// A connection over the total or per-client cap (503, closed).
    Connections,
    /// A connection closed because its client did not read the answers (`--write-timeout`).
    Write,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Refusal::Budget,
        Refusal::Body,
        Refusal::Rate,
        Refusal::Token,
        Refusal::Origin,
        Refusal::ContentType,
        Refusal::Shed,
        Refusal::Timeout,
        Refusal::Connections,
        Refusal::Write,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Budget => "budget",
            Refusal::Body => "body",
            Refusal::Rate => "rate",
            Refusal::Token => "token",
            Refusal::Origin => "origin",
            Refusal::ContentType => "content_type",
            Refusal::Shed => "shed",
            Refusal::Timeout => "timeout",
            Refusal::Connections => "connections",
            Refusal::Write => "write",
        }
    }
}

/// The access rules of one service.
#[derive(Debug, Clone)]
pub struct Access {
    /// blake3 of the token, when one is configured.
    token: Option<blake3::Hash>,
    /// Origins allowed besides none at all (lower case, no trailing slash).
    origins: Vec<String>,
}

/// The media types `/predict` takes.
pub const IMAGE_TYPES: [&str; 3] = ["image/jpeg", "image/png", "application/octet-stream"];

impl Access {
    /// `token`: the configured token (`None`: open); `addr`: where the service is bound;
    /// `extra`: `--allow-origin` values.
    pub fn new(token: Option<&str>, addr: SocketAddr, extra: &[String]) -> Access {
        let port = addr.port();
        let mut origins = vec![
            format!("http://{addr}"),
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}"),
            format!("http://[::1]:{port}"),
        ];
        origins.extend(
            extra
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase()),
        );
        Access {
            token: token.map(|t| blake3::hash(t.as_bytes())),
            origins,
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the request carries the configured token (false when none is configured).
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(want) = &self.token else {
            return false;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        // blake3::Hash's == is constant-time.
        given.is_some_and(|g| blake3::hash(g.as_bytes()) == *want)
    }

    /// The token rule: `Err` when a token is configured and the request lacks it.
    pub fn check_token(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        if self.token.is_none() || self.authorized(headers) {
            Ok(())
        } else {
            Err("missing or wrong token: send `Authorization: Bearer <token>`")
        }
    }

    /// The browser rules of `/predict`: the `Origin` (403) and the `Content-Type` (415).
    pub fn check_browser(&self, headers: &HeaderMap) -> Result<(), (Refusal, String)> {
        if let Some(o) = headers.get(header::ORIGIN) {
            let o = o
                .to_str()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_ascii_lowercase();
            if !self.origins.contains(&o) {
                return Err((
                    Refusal::Origin,
                    format!(
                        "cross-origin request from `{o}` refused (only the service's own origin, or one given with --allow-origin)"
                    ),
                ));
            }
        }
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !IMAGE_TYPES.contains(&media.as_str()) {
            return Err((
                Refusal::ContentType,
                format!(
                    "Content-Type `{ct}` refused: send the image as image/jpeg, image/png or application/octet-stream (curl: -H 'Content-Type: image/jpeg')"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn token_origin_and_content_type_rules() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let open = Access::new(None, addr, &[]);
        assert!(open.check_token(&HeaderMap::new()).is_ok());
        assert!(!open.authorized(&HeaderMap::new()));
        let a = Access::new(Some("s3cret"), addr, &["https://kiosk.example/".into()]);
        assert!(a.check_token(&HeaderMap::new()).is_err());
        let wrong = headers(&[(header::AUTHORIZATION, "Bearer s3cre")]);
        assert!(a.check_token(&wrong).is_err());
        let right = headers(&[(header::AUTHORIZATION, "Bearer s3cret")]);
        assert!(a.check_token(&right).is_ok() && a.authorized(&right));

        let img = (header::CONTENT_TYPE, "image/jpeg");
        assert!(
            a.check_browser(&headers(std::slice::from_ref(&img)))
                .is_ok()
        );
        let own = (header::ORIGIN, "http://localhost:8080");
        assert!(a.check_browser(&headers(&[img.clone(), own])).is_ok());
        let listed = (header::ORIGIN, "https://KIOSK.example");
        assert!(a.check_browser(&headers(&[img.clone(), listed])).is_ok());
        let evil = (header::ORIGIN, "http://evil.example");
        let e = a.check_browser(&headers(&[img, evil])).unwrap_err();
        assert_eq!(e.0, Refusal::Origin);
        let form = (header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        assert_eq!(
            a.check_browser(&headers(&[form])).unwrap_err().0,
            Refusal::ContentType
        );
        assert_eq!(
            a.check_browser(&HeaderMap::new()).unwrap_err().0,
            Refusal::ContentType
        );
        let with_params = (header::CONTENT_TYPE, "Image/PNG; charset=binary");
        assert!(a.check_browser(&headers(&[with_params])).is_ok());
    }
}
