//! Filtered, paginated listing.
//!
//! # Pagination
//!
//! A page holds at most `limit` matching objects; when more keys remain, the
//! `continue` token records the last key examined and the revision of the
//! first page. A continued page reads the *current* state of the keys after
//! the token's key (the store keeps no snapshots), but reports the first
//! page's revision as its `resourceVersion`: a client that lists every page
//! and then watches from that revision sees every change made after the first
//! page, at worst some of them twice, and misses none.

use serde_json::Value;

use super::Filter;
use crate::error::ApiError;
use crate::object;
use crate::patch::ContinueToken;
use crate::store::{Revision, Store};

/// Smallest batch read from the store while filling a page.
const MIN_BATCH: usize = 64;

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// The matching objects, each with its `resourceVersion`.
    pub items: Vec<Value>,
    /// The list's `resourceVersion` (see the module docs for continued pages).
    pub revision: Revision,
    /// Token of the next page, when one may follow.
    pub continue_token: Option<String>,
}

/// Lists keys under `prefix` matching `filter`.
pub async fn list(
    store: &dyn Store,
    prefix: &str,
    filter: &Filter,
    limit: Option<usize>,
    continue_from: Option<&str>,
) -> Result<ListPage, ApiError> {
    let token = continue_from
        .filter(|c| !c.is_empty())
        .map(|c| ContinueToken::decode(c).map_err(|e| ApiError::BadRequest(e.to_string())))
        .transpose()?;
    if let Some(t) = &token {
        if !t.key.starts_with(prefix) {
            return Err(ApiError::BadRequest(
                "invalid continue token: it belongs to another list; restart the list without the continue parameter"
                    .into(),
            ));
        }
    }
    let mut after = token.as_ref().map(|t| t.key.clone());
    let mut revision = token.as_ref().map(|t| t.revision);
    let mut items = Vec::new();
    loop {
        let batch = limit.map(|l| (l - items.len()).max(if filter.is_everything() { 1 } else { MIN_BATCH }));
        let page = store.list(prefix, after.as_deref(), batch).await?;
        let rev = *revision.get_or_insert(page.revision);
        let count = page.items.len();
        for (i, kv) in page.items.iter().enumerate() {
            after = Some(kv.key.clone());
            let obj = object::from_kv(kv)?;
            if filter.matches(&obj) {
                items.push(obj);
            }
            if limit.is_some_and(|l| items.len() >= l) {
                let more = i + 1 < count || page.more;
                let continue_token = more.then(|| ContinueToken { key: kv.key.clone(), revision: rev }.encode());
                return Ok(ListPage { items, revision: rev, continue_token });
            }
        }
        if !page.more || count == 0 {
            return Ok(ListPage { items, revision: rev, continue_token: None });
        }
    }
}
