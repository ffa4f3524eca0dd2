//! Request signing with an access key and a secret key, both halves: the client signs
//! (`x-mq-date-time` plus an `authorization: MQv2-HMAC-SHA1 …` header, PROTOCOL.md §2.1) and
//! the server verifies ([`ServerCredentials::verify`], [`check`]). The secret never travels:
//! the signature is HMAC-SHA1 of the date-time keyed by it.
//!
//! The server side follows Apache RocketMQ 5's proxy, which the official clients are written
//! against: `auth/src/main/java/org/apache/rocketmq/auth/authentication/builder/
//! DefaultAuthenticationContextBuilder.java` (the header parsed into `Credential`, the part
//! before any `/`, and `Signature`, hex decoded, so its case does not matter; the signed content
//! is the `x-mq-date-time` value as sent) and `…/authentication/chain/
//! DefaultAuthenticationHandler.java` (unknown user, then the signature compared in constant
//! time with `MessageDigest.isEqual`). Neither checks how old the date-time is, and we do not
//! either: the official Python client formats its *local* time with a `Z` suffix, so a skew
//! check would refuse it on every machine whose time zone is not UTC.

use std::fmt;

use hmac::{Hmac, Mac};
use tonic::metadata::MetadataMap;

/// The header carrying the signature.
pub const AUTHORIZATION: &str = "authorization";
/// The header the signature covers.
pub const DATE_TIME: &str = "x-mq-date-time";
/// The only signing algorithm of RocketMQ 5's gRPC protocol.
pub const ALGORITHM: &str = "MQv2-HMAC-SHA1";

type HmacSha1 = Hmac<sha1::Sha1>;

/// `yyyyMMdd'T'HHmmss'Z'` in UTC, the `x-mq-date-time` the signature covers.
pub fn date_time(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The `authorization` header: `MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=x-mq-date-time,
/// Signature=HEX`, the signature being HMAC-SHA1 of the date-time keyed by the secret.
pub fn authorization(access_key: &str, secret_key: &str, date_time: &str) -> String {
    format!(
        "{ALGORITHM} Credential={access_key}, SignedHeaders={DATE_TIME}, Signature={}",
        signature(secret_key, date_time)
    )
}

/// Upper-case hex HMAC-SHA1 of `data` keyed by `secret`, as the Java client sends it.
pub fn signature(secret: &str, data: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(40);
    for b in mac(secret, data).finalize().into_bytes() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
    out
}

fn mac(secret: &str, data: &str) -> HmacSha1 {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail.
    let mut mac = HmacSha1::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(data.as_bytes());
    mac
}

/// Why a request's credentials were refused. The messages name the cause, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header.
    #[error(
        "no authorization header: this server requires credentials (access key and secret key)"
    )]
    Missing,
    /// An `authorization` header with an empty access key (the official Python client signs
    /// with empty keys when none are configured).
    #[error(
        "empty access key in the authorization header: this server requires credentials \
         (access key and secret key)"
    )]
    EmptyAccessKey,
    /// The access key is not the server's.
    #[error("unknown access key {0:?}")]
    UnknownAccessKey(String),
    /// The signature is not HMAC-SHA1 of the date-time with the server's secret.
    #[error("signature does not match (wrong secret key?)")]
    BadSignature,
    /// An `authorization` header without the `x-mq-date-time` it signs.
    #[error("no x-mq-date-time header: the authorization signature covers it")]
    NoDateTime,
    /// An `authorization` header that is not `MQv2-HMAC-SHA1 Credential=…, Signature=…`.
    #[error(
        "malformed authorization header ({0}); expected \
         `MQv2-HMAC-SHA1 Credential=<access key>, SignedHeaders=x-mq-date-time, Signature=<hex>`"
    )]
    Malformed(String),
}

/// The access key and secret key a server requires of every request.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCredentials {
    /// The access key clients name in `Credential=`.
    pub access_key: String,
    /// The secret key their signatures are keyed with.
    pub secret_key: String,
}

impl fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl ServerCredentials {
    /// An access key and its secret.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        ServerCredentials { access_key: access_key.into(), secret_key: secret_key.into() }
    }

    /// Checks the `authorization` header of a request against these credentials.
    ///
    /// # Errors
    ///
    /// [`AuthError`] naming why the request is refused.
    pub fn verify(&self, meta: &MetadataMap) -> Result<(), AuthError> {
        let header = meta.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
        let header =
            header.to_str().map_err(|_| AuthError::Malformed("not printable ASCII".to_owned()))?;
        if header.trim().is_empty() {
            return Err(AuthError::Missing);
        }
        let date = meta.get(DATE_TIME).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if date.is_empty() {
            return Err(AuthError::NoDateTime);
        }
        let parsed = Authorization::parse(header)?;
        if parsed.access_key.is_empty() {
            return Err(AuthError::EmptyAccessKey);
        }
        if parsed.access_key != self.access_key {
            return Err(AuthError::UnknownAccessKey(parsed.access_key.to_owned()));
        }
        // `verify_slice` compares in constant time.
        mac(&self.secret_key, date)
            .verify_slice(&parsed.signature)
            .map_err(|_| AuthError::BadSignature)
    }
}

/// Checks a request's credentials when the server has some; without, every request passes,
/// signed or not (the official Python client always sends a header, even with empty keys).
/// Every gRPC service of the server calls this first.
///
/// # Errors
///
/// [`AuthError`] naming why the request is refused.
pub fn check(creds: Option<&ServerCredentials>, meta: &MetadataMap) -> Result<(), AuthError> {
    creds.map_or(Ok(()), |c| c.verify(meta))
}

/// A tonic interceptor refusing, with gRPC status `UNAUTHENTICATED` and the cause, requests
/// without valid credentials: for services whose errors are gRPC statuses (`orbitmq.v1.Admin`).
/// `MessagingService` answers RocketMQ's in-body `UNAUTHORIZED` instead, as Apache's proxy does.
#[derive(Debug, Clone, Default)]
pub struct RequireCredentials {
    creds: Option<std::sync::Arc<ServerCredentials>>,
}

impl RequireCredentials {
    /// Requires `creds`; `None` lets every request through.
    pub fn new(creds: Option<ServerCredentials>) -> Self {
        RequireCredentials { creds: creds.map(std::sync::Arc::new) }
    }
}

impl tonic::service::Interceptor for RequireCredentials {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        check(self.creds.as_deref(), req.metadata())
            .map_err(|e| tonic::Status::unauthenticated(e.to_string()))?;
        Ok(req)
    }
}

/// The parts of an `authorization` header the server checks.
struct Authorization<'a> {
    access_key: &'a str,
    signature: Vec<u8>,
}

impl<'a> Authorization<'a> {
    /// Parses `MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=x-mq-date-time, Signature=HEX`,
    /// leniently: any spacing around the separators, keys in any case, the parts in any order,
    /// unknown parts ignored, and (as Apache does) `Credential` cut at a `/`.
    fn parse(header: &'a str) -> Result<Self, AuthError> {
        let malformed = |why: &str| AuthError::Malformed(why.to_owned());
        let header = header.trim();
        let (algorithm, rest) =
            header.split_once(char::is_whitespace).ok_or_else(|| malformed("no parameters"))?;
        if !algorithm.eq_ignore_ascii_case(ALGORITHM) {
            return Err(AuthError::Malformed(format!(
                "algorithm {algorithm:?}, only {ALGORITHM} is supported"
            )));
        }
        let (mut access_key, mut signature) = (None, None);
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| AuthError::Malformed(format!("{part:?} is not key=value")))?;
            let (key, value) = (key.trim(), value.trim());
            if key.eq_ignore_ascii_case("Credential") {
                access_key = Some(value.split('/').next().unwrap_or_default());
            } else if key.eq_ignore_ascii_case("Signature") {
                signature =
                    Some(decode_hex(value).ok_or_else(|| malformed("the signature is not hex"))?);
            }
        }
        Ok(Authorization {
            access_key: access_key.ok_or_else(|| malformed("no Credential"))?,
            signature: signature.ok_or_else(|| malformed("no Signature"))?,
        })
    }
}

/// Hex of either case to bytes; `None` if odd-length or not hex.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| match p {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DATE: &str = "20230913T063059Z";

    fn meta(auth: Option<&str>, date: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(a) = auth {
            m.insert(AUTHORIZATION, a.parse().unwrap());
        }
        if let Some(d) = date {
            m.insert(DATE_TIME, d.parse().unwrap());
        }
        m
    }

    fn creds() -> ServerCredentials {
        ServerCredentials::new("AK", "SK")
    }

    #[test]
    fn date_time_is_utc_in_the_signed_format() {
        let at = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(date_time(at(0)), "19700101T000000Z");
        // 2023-09-13T06:30:59Z, the example in the official Node client.
        assert_eq!(date_time(at(1_694_586_659)), "20230913T063059Z");
        // A leap day.
        assert_eq!(date_time(at(1_709_164_800)), "20240229T000000Z");
    }

    #[test]
    fn signature_is_hmac_sha1_of_the_date_time() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "EFFCDF6AE5EB2FA2D27416D5F184DF9C259A7C79"
        );
        let auth = authorization("AK", "Jefe", "what do ya want for nothing?");
        assert_eq!(
            auth,
            "MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=x-mq-date-time, \
             Signature=EFFCDF6AE5EB2FA2D27416D5F184DF9C259A7C79"
        );
    }

    #[test]
    fn verifies_upper_and_lower_hex_and_loose_spacing() {
        let sig = signature("SK", DATE);
        let c = creds();
        // Java and Node: upper case, as `authorization` writes it.
        c.verify(&meta(Some(&authorization("AK", "SK", DATE)), Some(DATE))).unwrap();
        // Python and the Rust client of apache/rocketmq-clients: lower case.
        let lower = format!(
            "MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=x-mq-date-time, Signature={}",
            sig.to_ascii_lowercase()
        );
        c.verify(&meta(Some(&lower), Some(DATE))).unwrap();
        // No spaces, extra spaces, another order, a credential scope after `/`.
        for h in [
            format!("MQv2-HMAC-SHA1 Credential=AK,SignedHeaders=x-mq-date-time,Signature={sig}"),
            format!("  MQv2-HMAC-SHA1   Credential = AK ,  Signature = {sig} ,  "),
            format!("mqv2-hmac-sha1 signature={sig}, credential=AK/20230913/rocketmq"),
        ] {
            c.verify(&meta(Some(&h), Some(DATE))).unwrap_or_else(|e| panic!("{h}: {e}"));
        }
    }

    #[test]
    fn refuses_wrong_keys_with_the_cause() {
        let c = creds();
        let e = c.verify(&meta(Some(&authorization("AK", "wrong", DATE)), Some(DATE)));
        assert_eq!(e, Err(AuthError::BadSignature));
        assert_eq!(e.unwrap_err().to_string(), "signature does not match (wrong secret key?)");
        // Signed for another date-time than the one sent.
        let e = c.verify(&meta(Some(&authorization("AK", "SK", DATE)), Some("20230913T063100Z")));
        assert_eq!(e, Err(AuthError::BadSignature));
        let e = c.verify(&meta(Some(&authorization("other", "SK", DATE)), Some(DATE)));
        assert_eq!(e, Err(AuthError::UnknownAccessKey("other".into())));
        assert_eq!(e.unwrap_err().to_string(), "unknown access key \"other\"");
        let e = c.verify(&meta(None, Some(DATE))).unwrap_err();
        assert_eq!(e, AuthError::Missing);
        assert!(e.to_string().starts_with("no authorization header: this server requires"));
        // What the official Python client sends without credentials.
        let e = c.verify(&meta(Some(&authorization("", "", DATE)), Some(DATE)));
        assert_eq!(e, Err(AuthError::EmptyAccessKey));
        let e = c.verify(&meta(Some(&authorization("AK", "SK", DATE)), None));
        assert_eq!(e, Err(AuthError::NoDateTime));
        // A truncated signature is wrong, not a prefix match.
        let sig = signature("SK", DATE);
        let h = format!("MQv2-HMAC-SHA1 Credential=AK, Signature={}", &sig[..38]);
        assert_eq!(c.verify(&meta(Some(&h), Some(DATE))), Err(AuthError::BadSignature));
    }

    #[test]
    fn refuses_malformed_headers() {
        let sig = signature("SK", DATE);
        for (h, why) in [
            ("MQv2-HMAC-SHA1".to_owned(), "no parameters"),
            (format!("Bearer Credential=AK, Signature={sig}"), "algorithm \"Bearer\""),
            (format!("MQv2-HMAC-SHA1 Signature={sig}"), "no Credential"),
            ("MQv2-HMAC-SHA1 Credential=AK".to_owned(), "no Signature"),
            ("MQv2-HMAC-SHA1 Credential=AK, Signature=XYZ1".to_owned(), "not hex"),
            ("MQv2-HMAC-SHA1 Credential=AK, Signature=ABC".to_owned(), "not hex"),
            (format!("MQv2-HMAC-SHA1 Credential AK, Signature={sig}"), "not key=value"),
        ] {
            let e = creds().verify(&meta(Some(&h), Some(DATE))).unwrap_err();
            assert!(matches!(e, AuthError::Malformed(_)), "{h}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.starts_with("malformed authorization header") && msg.contains(why),
                "{msg}"
            );
        }
    }

    #[test]
    fn without_server_credentials_everything_passes() {
        check(None, &meta(None, None)).unwrap();
        check(None, &meta(Some(&authorization("", "", DATE)), Some(DATE))).unwrap();
        check(None, &meta(Some("garbage"), None)).unwrap();
        assert_eq!(check(Some(&creds()), &meta(None, None)), Err(AuthError::Missing));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = format!("{:?}", ServerCredentials::new("AK", "s3cr3t-value"));
        assert!(s.contains("AK") && !s.contains("s3cr3t"), "{s}");
    }

    #[test]
    fn the_interceptor_answers_unauthenticated_with_the_cause() {
        use tonic::service::Interceptor;
        let mut open = RequireCredentials::new(None);
        open.call(tonic::Request::new(())).unwrap();
        let mut closed = RequireCredentials::new(Some(creds()));
        let st = closed.call(tonic::Request::new(())).unwrap_err();
        assert_eq!(st.code(), tonic::Code::Unauthenticated);
        assert!(st.message().starts_with("no authorization header"), "{}", st.message());
        let mut req = tonic::Request::new(());
        *req.metadata_mut() = meta(Some(&authorization("AK", "SK", DATE)), Some(DATE));
        closed.call(req).unwrap();
    }
}
