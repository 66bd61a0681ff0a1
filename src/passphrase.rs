//! Rating new passphrases: the passphrase that wraps the reader identity in the store is
//! what stands between a leaked store (or a whole-store copy made with a writer key) and
//! every backup, so a new one must be hard to guess. Rated with zxcvbn (the estimator
//! Dropbox published: dictionaries, keyboard patterns, dates, l33t substitutions); scores
//! below 3 ("safely unguessable: moderate protection from an offline slow-hash attack")
//! are refused with zxcvbn's reason. Existing wraps are never re-rated.

use crate::error::{Error, Remedy, Result};
use secrecy::{ExposeSecret, SecretString};

/// The lowest zxcvbn score a new passphrase may have.
pub const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// Refuses a weak passphrase with the reason; `context` holds words an attacker would
/// try first (host name, product name). The message ends with the reasons, each a
/// sentence ending in one period.
pub fn check_strength(pass: &SecretString, context: &[&str]) -> Result<()> {
    let entropy = zxcvbn::zxcvbn(pass.expose_secret(), context);
    if entropy.score() >= MIN_SCORE {
        return Ok(());
    }
    let mut why = Vec::new();
    if let Some(feedback) = entropy.feedback() {
        if let Some(w) = feedback.warning() {
            why.push(sentence(&w.to_string()));
        }
        why.extend(
            feedback
                .suggestions()
                .iter()
                .map(|s| sentence(&s.to_string())),
        );
    }
    if why.is_empty() {
        why.push("It is too short or too predictable.".into());
    }
    Err(Error::Usage(format!(
        "the new passphrase is too weak (strength {} of 4, guessed in {} by an offline attacker): {}",
        u8::from(entropy.score()),
        entropy.crack_times().offline_slow_hashing_1e4_per_second(),
        why.join(" ")
    ))
    .with_remedy(Remedy::StrongerPassphrase))
}

/// One sentence ending in exactly one period: zxcvbn's warnings and suggestions mostly
/// end with one already, and some do not.
fn sentence(text: &str) -> String {
    format!("{}.", text.trim().trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_refused_strong_accepted() {
        for weak in ["a", "password1", "travis1", "qwerty123", "abc123"] {
            let err = check_strength(&SecretString::from(weak), &["vault", "travis"]).unwrap_err();
            assert!(err.to_string().contains("too weak"), "{weak}: {err}");
        }
        check_strength(
            &SecretString::from("correct horse battery staple"),
            &["vault"],
        )
        .unwrap();
        check_strength(&SecretString::from("plinth-marmot-quasar-ochre-gully"), &[]).unwrap();
    }

    #[test]
    fn the_reasons_for_a_refusal_end_in_one_period_each() {
        for weak in ["a", "password1", "travis1", "qwerty123", "abc123"] {
            let err = check_strength(&SecretString::from(weak), &["vault", "travis"]).unwrap_err();
            let text = err.to_string();
            assert!(!text.contains(".."), "{weak}: {text}");
            let reasons = text.split_once("attacker): ").map(|(_, r)| r).unwrap();
            assert!(reasons.trim_end().ends_with('.'), "{weak}: {reasons}");
        }
        assert_eq!(
            sentence("Uncommon words are better."),
            "Uncommon words are better."
        );
        assert_eq!(
            sentence("Add another word or two"),
            "Add another word or two."
        );
    }
}
