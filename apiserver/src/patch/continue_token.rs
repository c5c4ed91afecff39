//! The `continue` token of paginated lists: where the next page starts and at which store
//! revision the list is read, as URL-safe base64 of a small versioned JSON document.
//!
//! The token is opaque to clients; only its round trip through [`ContinueToken::encode`] and
//! [`ContinueToken::decode`] is a contract. Anything that does not decode is refused with a
//! message telling the client to restart the list.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::PatchError;

/// Version written into every token; a token with another version is refused.
const VERSION: u32 = 1;

/// URL-safe alphabet, no padding written, padding accepted either way.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Position of the next page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContinueToken {
    /// Store key to resume from (the next page starts at the first key after it).
    pub key: String,
    /// Store revision the whole list is read at.
    pub revision: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    rv: u64,
    start: String,
}

impl ContinueToken {
    /// The token as a string safe to put in a URL query without escaping.
    pub fn encode(&self) -> String {
        let wire = Wire { v: VERSION, rv: self.revision, start: self.key.clone() };
        let json = serde_json::to_vec(&wire).expect("a string and two integers always serialize");
        ENGINE.encode(json)
    }

    /// Reads a token produced by [`ContinueToken::encode`].
    pub fn decode(s: &str) -> Result<ContinueToken, PatchError> {
        let invalid = |reason: String| PatchError::InvalidContinue { reason };
        if s.is_empty() {
            return Err(invalid("the token is empty".to_owned()));
        }
        let bytes = ENGINE.decode(s).map_err(|e| invalid(format!("not base64: {e}")))?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("malformed contents: {e}")))?;
        if wire.v != VERSION {
            return Err(invalid(format!("unsupported version {}", wire.v)));
        }
        Ok(ContinueToken { key: wire.start, revision: wire.rv })
    }
}
