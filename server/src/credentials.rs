//! Access key and secret key: `--access-key`/`--secret-key` (`ORBITMQ_ACCESS_KEY`,
//! `ORBITMQ_SECRET_KEY`) for the commands that connect to a server (`admin`, `bench`), and the
//! [`SecretKey`] type that keeps a secret out of `Debug` output wherever it is held, the
//! server's configuration included.

use std::fmt;

use clap::Args;
use orbitmq_core::client::Credentials;

/// A secret key. `Debug` never shows it; `expose` is the one way to read it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretKey(String);

impl SecretKey {
    /// The secret itself, for signing or verifying with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for SecretKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretKey(s.to_owned()))
    }
}

/// Both keys or neither: `Ok(None)` for neither, an error naming the missing one otherwise.
pub fn pair(
    access_key: Option<String>,
    secret_key: Option<SecretKey>,
) -> anyhow::Result<Option<(String, SecretKey)>> {
    match (access_key, secret_key) {
        (None, None) => Ok(None),
        (Some(ak), Some(sk)) => {
            anyhow::ensure!(
                !ak.is_empty() && !sk.0.is_empty(),
                "the access key and the secret key must not be empty"
            );
            Ok(Some((ak, sk)))
        }
        (Some(ak), None) => anyhow::bail!(
            "--access-key {ak:?} needs --secret-key (secret_key, ORBITMQ_SECRET_KEY): give both \
             or neither"
        ),
        (None, Some(_)) => anyhow::bail!(
            "--secret-key needs --access-key (access_key, ORBITMQ_ACCESS_KEY): give both or neither"
        ),
    }
}

/// The credentials a client command signs its requests with.
#[derive(Debug, Clone, Args)]
pub struct CredentialArgs {
    /// Access key to sign requests with, for a server started with --access-key (with
    /// --secret-key).
    #[arg(
        long,
        global = true,
        env = "ORBITMQ_ACCESS_KEY",
        value_name = "KEY",
        help_heading = "Credentials"
    )]
    pub access_key: Option<String>,
    /// Secret key of --access-key. It signs each request (HMAC-SHA1 of the request's date-time)
    /// and is never sent. Prefer the environment variable to the flag: other users of the
    /// machine can read a process's arguments.
    #[arg(
        long,
        global = true,
        env = "ORBITMQ_SECRET_KEY",
        hide_env_values = true,
        value_name = "SECRET",
        help_heading = "Credentials"
    )]
    pub secret_key: Option<SecretKey>,
}

impl CredentialArgs {
    /// The SDK's credentials, if both keys are given.
    pub fn credentials(&self) -> anyhow::Result<Option<Credentials>> {
        Ok(pair(self.access_key.clone(), self.secret_key.clone())?
            .map(|(ak, sk)| Credentials::new(ak, sk.expose())))
    }
}

/// What to add to a refusal for credentials: how to give them, or that the given ones are not
/// the server's.
pub fn hint(given: bool) -> &'static str {
    if given {
        "check --access-key and --secret-key (ORBITMQ_ACCESS_KEY, ORBITMQ_SECRET_KEY) against \
         the server's"
    } else {
        "the server requires an access key and secret key: pass --access-key and --secret-key \
         (or set ORBITMQ_ACCESS_KEY and ORBITMQ_SECRET_KEY)"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_or_neither_and_the_secret_is_never_shown() {
        let sk = || Some(SecretKey("s3cr3t".to_owned()));
        assert!(pair(None, None).unwrap().is_none());
        let (ak, secret) = pair(Some("ak".into()), sk()).unwrap().unwrap();
        assert_eq!((ak.as_str(), secret.expose()), ("ak", "s3cr3t"));
        let e = pair(Some("ak".into()), None).unwrap_err().to_string();
        assert!(e.contains("needs --secret-key"), "{e}");
        let e = pair(None, sk()).unwrap_err().to_string();
        assert!(e.contains("needs --access-key") && !e.contains("s3cr3t"), "{e}");
        assert!(pair(Some(String::new()), sk()).is_err());
        let args = CredentialArgs { access_key: Some("ak".into()), secret_key: sk() };
        assert!(!format!("{args:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", args.credentials().unwrap()).contains("s3cr3t"));
    }
}
