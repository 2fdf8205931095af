//! Assertions that a log (stdout, stderr, a log file) carries no secret.
//!
//! A secret counts as leaked when the log contains it whole, percent-encoded,
//! or (for secrets of 32+ characters) its last 16 characters — for a JWT that
//! is the end of its signature, enough to catch truncated or re-wrapped
//! tokens. The panic message names the kind of secret and where it was found,
//! never the secret itself.

/// Panics when `log` contains any of `secrets`, naming the secret's kind
/// (guessed from its shape: "JWT", "opaque token/code", ...) and its position
/// in the list, never its value.
///
/// # Panics
/// On a leak, and on an empty secret (an empty string matches every log, so
/// passing one is a bug in the test).
pub fn assert_no_secrets(log: &str, secrets: &[&str]) {
    let named: Vec<(String, &str)> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("secret #{} ({})", i + 1, guess_kind(s)), *s))
        .collect();
    check(log, named.iter().map(|(n, s)| (n.as_str(), *s)));
}

/// Like [`assert_no_secrets`] with the kinds given by the caller, e.g.
/// `&[("refresh token", &rt), ("PKCE verifier", &verifier)]`.
///
/// # Panics
/// On a leak, naming the kind, and on an empty secret.
pub fn assert_no_named_secrets(log: &str, secrets: &[(&str, &str)]) {
    check(log, secrets.iter().copied());
}

fn check<'a>(log: &str, secrets: impl Iterator<Item = (&'a str, &'a str)>) {
    for (name, secret) in secrets {
        assert!(
            !secret.is_empty(),
            "{name} is empty: cannot check a log for it (test bug)"
        );
        if let Some((how, offset)) = find(log, secret) {
            let line = log[..offset].matches('\n').count() + 1;
            panic!("log leaks {name}: {how} found at line {line} (byte {offset}); value not shown");
        }
    }
}

fn find(log: &str, secret: &str) -> Option<(&'static str, usize)> {
    if let Some(i) = log.find(secret) {
        return Some(("the whole value", i));
    }
    let encoded = percent_encode(secret);
    if encoded != secret {
        if let Some(i) = log.find(&encoded) {
            return Some(("the percent-encoded value", i));
        }
    }
    if secret.chars().count() >= 32 {
        let tail_start = secret.char_indices().rev().nth(15).map_or(0, |(i, _)| i);
        if let Some(i) = log.find(&secret[tail_start..]) {
            return Some(("its last 16 characters", i));
        }
    }
    None
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn guess_kind(secret: &str) -> &'static str {
    let parts: Vec<&str> = secret.split('.').collect();
    let b64url = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts.len() == 3 && secret.starts_with("eyJ") && parts.iter().take(2).all(|p| b64url(p)) {
        "JWT"
    } else if parts.len() == 5 && secret.starts_with("eyJ") {
        "JWE"
    } else if b64url(secret) && (43..=128).contains(&secret.len()) {
        "opaque token, code or PKCE verifier"
    } else if b64url(secret) {
        "opaque value"
    } else {
        "password or free-form secret"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str =
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";

    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> Option<String> {
        let err = std::panic::catch_unwind(f).err()?;
        Some(
            err.downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default(),
        )
    }

    #[test]
    fn clean_log_passes() {
        assert_no_secrets(
            "GET /token -> 200\nsigned in as alice",
            &[JWT, "s3cr3t pass"],
        );
    }

    #[test]
    fn leak_names_kind_and_hides_value() {
        let log = format!("line one\nAuthorization: Bearer {JWT}\n");
        let msg = panic_message(|| assert_no_secrets(&log, &["other-secret-value", JWT]))
            .expect("a leaked JWT must panic");
        assert!(msg.contains("secret #2 (JWT)"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(
            !msg.contains(JWT),
            "message must not print the secret: {msg}"
        );
        assert!(
            !msg.contains("c2lnbmF0dXJl"),
            "no part of the secret either: {msg}"
        );
    }

    #[test]
    fn truncated_and_percent_encoded_leaks_are_caught() {
        let tail = &JWT[JWT.len() - 20..];
        let msg = panic_message(|| {
            assert_no_named_secrets(&format!("token=…{tail}"), &[("access token", JWT)])
        })
        .expect("a token tail must be caught");
        assert!(
            msg.contains("access token: its last 16 characters"),
            "{msg}"
        );

        let msg = panic_message(|| {
            assert_no_named_secrets("password=p%40ss%20word", &[("password", "p@ss word")])
        })
        .expect("a percent-encoded password must be caught");
        assert!(msg.contains("password: the percent-encoded value"), "{msg}");
    }

    #[test]
    fn empty_secret_is_a_test_bug() {
        let msg = panic_message(|| assert_no_secrets("anything", &[""])).expect("must panic");
        assert!(msg.contains("is empty"), "{msg}");
    }
}
