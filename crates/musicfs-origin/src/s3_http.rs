//! The HTTP layer under `object_store`'s S3 client, for two things it does not do.
//!
//! Refusals by type: `object_store` keeps the status of most failed requests (a 416, a 503)
//! in a private type and puts S3's whole error body in its message. A `SignatureDoesNotMatch`
//! body holds the access key id and the canonical request, so that message must never be
//! shown. Here every answer of 400 or more becomes an [`S3Refusal`] (its status and S3's error
//! code, nothing else of the body), which `s3.rs` finds in the error's sources.
//!
//! Odd keys: `object_store` refuses a whole listing page when one key is not a path it
//! accepts (a macOS `Icon\r`, `a//b`, a `.` or `..` segment), so one odd key would hide a whole
//! folder. Here such keys are taken out of each `ListObjectsV2` page before it is parsed, and
//! kept (per listed prefix) for the listing to report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};

/// An S3 answer of 400 or more: its status and S3's error code (`AccessDenied`,
/// `SignatureDoesNotMatch`…). The rest of the body is dropped: it may echo credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Refusal {
    pub status: u16,
    pub code: Option<String>,
}

impl std::fmt::Display for S3Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        Ok(())
    }
}

impl std::error::Error for S3Refusal {}

/// Keys taken out of listing pages, by the listed prefix (as sent, `a/b/`; empty for the
/// root), until the listing takes them.
pub(crate) type OddKeys = Arc<Mutex<HashMap<String, Vec<String>>>>;

#[derive(Debug)]
pub(crate) struct Connector {
    pub odd_keys: OddKeys,
}

impl HttpConnector for Connector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Service {
            inner,
            odd_keys: self.odd_keys.clone(),
        }))
    }
}

#[derive(Debug)]
struct Service {
    inner: HttpClient,
    odd_keys: OddKeys,
}

#[async_trait::async_trait]
impl HttpService for Service {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let listed_prefix = listing_prefix(req.uri().query());
        let response = self.inner.execute(req).await?;
        let status = response.status().as_u16();
        if status >= 400 {
            // A body that cannot be read still leaves the status.
            let body = response.into_body().bytes().await.unwrap_or_default();
            let refusal = S3Refusal {
                status,
                code: element(&String::from_utf8_lossy(&body), "Code")
                    .map(|c| unescape(&c))
                    .filter(|c| c.len() <= 64 && c.chars().all(|c| c.is_ascii_alphanumeric())),
            };
            return Err(HttpError::new(HttpErrorKind::Unknown, refusal));
        }
        let Some(prefix) = listed_prefix.filter(|_| status == 200) else {
            return Ok(response);
        };
        let (parts, body) = response.into_parts();
        let body = body.bytes().await?;
        let text = String::from_utf8_lossy(&body);
        let (kept, odd) = drop_odd_keys(&text);
        if odd.is_empty() {
            return Ok(HttpResponse::from_parts(parts, body.into()));
        }
        self.odd_keys
            .lock()
            .unwrap()
            .entry(prefix)
            .or_default()
            .extend(odd);
        Ok(HttpResponse::from_parts(parts, kept.into()))
    }
}

/// The `prefix` of a `ListObjectsV2` request (`list-type=2`), empty if none; `None` for any
/// other request.
fn listing_prefix(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = query?
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect();
    if !pairs.iter().any(|(k, v)| k == "list-type" && v == "2") {
        return None;
    }
    Some(
        pairs
            .into_iter()
            .find(|(k, _)| k == "prefix")
            .map(|(_, v)| v)
            .unwrap_or_default(),
    )
}

/// A listing page without the `<Contents>` and `<CommonPrefixes>` whose key `object_store`
/// would refuse, and those keys.
fn drop_odd_keys(xml: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(xml.len());
    let mut odd = Vec::new();
    let mut rest = xml;
    loop {
        let next = [
            ("<Contents>", "</Contents>", "Key"),
            ("<CommonPrefixes>", "</CommonPrefixes>", "Prefix"),
        ]
        .into_iter()
        .filter_map(|(open, close, field)| rest.find(open).map(|at| (at, open, close, field)))
        .min_by_key(|(at, ..)| *at);
        let Some((at, _, close, field)) = next else {
            out.push_str(rest);
            break;
        };
        let Some(end) = rest[at..].find(close).map(|e| at + e + close.len()) else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at]);
        let block = &rest[at..end];
        match element(block, field).map(|k| unescape(&k)) {
            Some(key) if object_store::path::Path::parse(&key).is_err() || has_control(&key) => {
                odd.push(key)
            }
            _ => out.push_str(block),
        }
        rest = &rest[end..];
    }
    (out, odd)
}

fn has_control(key: &str) -> bool {
    key.chars().any(|c| c.is_control())
}

/// The text of the first `<name>…</name>` in `xml`, still escaped.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(xml[start..start + len].to_owned())
}

/// XML text as its parser reads it: the five named entities and character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_keys_leave_the_page_and_the_rest_stays() {
        let page = "<ListBucketResult><Name>b</Name>\
            <Contents><Key>A/01.flac</Key><Size>1</Size></Contents>\
            <Contents><Key>A/Icon&#13;</Key><Size>2</Size></Contents>\
            <Contents><Key>A/a//b.flac</Key><Size>3</Size></Contents>\
            <Contents><Key>A/./x.flac</Key><Size>4</Size></Contents>\
            <Contents><Key>A/../up.flac</Key><Size>5</Size></Contents>\
            <Contents><Key>A/R&amp;B.flac</Key><Size>6</Size></Contents>\
            <CommonPrefixes><Prefix>A/..//</Prefix></CommonPrefixes>\
            <CommonPrefixes><Prefix>A/B/</Prefix></CommonPrefixes>\
            <KeyCount>8</KeyCount></ListBucketResult>";
        let (kept, odd) = drop_odd_keys(page);
        assert_eq!(
            odd,
            [
                "A/Icon\r",
                "A/a//b.flac",
                "A/./x.flac",
                "A/../up.flac",
                "A/..//"
            ]
        );
        assert_eq!(
            kept,
            "<ListBucketResult><Name>b</Name>\
            <Contents><Key>A/01.flac</Key><Size>1</Size></Contents>\
            <Contents><Key>A/R&amp;B.flac</Key><Size>6</Size></Contents>\
            <CommonPrefixes><Prefix>A/B/</Prefix></CommonPrefixes>\
            <KeyCount>8</KeyCount></ListBucketResult>"
        );
    }

    #[test]
    fn only_listings_are_filtered() {
        assert_eq!(
            listing_prefix(Some("list-type=2&prefix=A%2FB%20C%2F&delimiter=%2F")),
            Some("A/B C/".to_owned())
        );
        assert_eq!(listing_prefix(Some("list-type=2")), Some(String::new()));
        assert_eq!(listing_prefix(Some("uploads")), None);
        assert_eq!(listing_prefix(None), None);
    }
}
