//! How a failed command ends: `error: <message>` on stderr, a hint when the
//! next step is obvious, and the exit code (0 success, 1 error, 2 usage).
//!
//! Commands return `anyhow` errors; this module looks inside them for a
//! [`ConnError`] or a [`Usage`] error. It must not decide what a command does.

use crate::conn::ConnError;

/// Success.
pub(crate) const EXIT_OK: u8 = 0;
/// A failure (server refusal, unreachable server, bad manifest, ...).
pub(crate) const EXIT_ERROR: u8 = 1;
/// The command line itself is wrong.
pub(crate) const EXIT_USAGE: u8 = 2;

/// A command line that parses but does not make sense (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub(crate) String);

/// Prints `err` on stderr and returns the exit code for it.
pub(crate) fn report(err: &anyhow::Error) -> u8 {
    eprintln!("error: {}", message(err));
    if let Some(hint) = hint(err) {
        eprintln!("hint: {hint}");
    }
    if err.downcast_ref::<Usage>().is_some() {
        eprintln!("See 'meseta --help' for usage.");
        EXIT_USAGE
    } else {
        EXIT_ERROR
    }
}

/// The whole chain of context, outermost first, without repeating itself.
pub(crate) fn message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// What to do next, where it is obvious.
fn hint(err: &anyhow::Error) -> Option<String> {
    let conn = err.chain().find_map(|c| c.downcast_ref::<ConnError>())?;
    match conn {
        ConnError::Connect { .. } => Some(
            "is the apiserver running? start one with `meseta up`, or point at one with --server or MESETA_SERVER"
                .into(),
        ),
        ConnError::Status { status } if status.code == 401 => {
            Some("the server wants a token: pass --token or set MESETA_TOKEN".into())
        }
        ConnError::Status { status } if status.code == 403 => {
            Some("the token is not allowed to do this; ask for a role binding or use another token".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_and_others_1() {
        assert_eq!(report(&anyhow::Error::new(Usage("x".into()))), EXIT_USAGE);
        assert_eq!(report(&anyhow::anyhow!("boom")), EXIT_ERROR);
    }

    #[test]
    fn connection_refused_gets_the_up_hint() {
        let err = anyhow::Error::new(ConnError::Connect { url: "http://x".into(), reason: "refused".into() });
        assert!(hint(&err).unwrap().contains("meseta up"));
        assert!(hint(&anyhow::anyhow!("boom")).is_none());
    }

    #[test]
    fn context_is_not_repeated() {
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&err), "outer: inner");
    }
}
