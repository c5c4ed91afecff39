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
use crate::store::{KeyValue, Revision, Store};

/// Smallest batch read from the store while filling a page.
const MIN_BATCH: usize = 64;

/// Largest batch a selective filter's reads grow to.
const MAX_BATCH: usize = 4096;

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
    let page = collect(store, prefix, filter, limit, continue_from).await?;
    let items = page
        .items
        .into_iter()
        .map(|(kv, parsed)| match parsed {
            Some(obj) => Ok(obj),
            None => object::from_kv(&kv),
        })
        .collect::<Result<_, _>>()?;
    Ok(ListPage { items, revision: page.revision, continue_token: page.continue_token })
}

/// One item of a [`StoredPage`], ready to be written to the wire.
#[derive(Debug, Clone)]
pub enum StoredItem {
    /// Stored bytes of the plain shape; `resourceVersion` goes in at `point`
    /// (see [`object::append_spliced`]).
    Spliced {
        /// The store entry.
        kv: KeyValue,
        /// Where `resourceVersion` goes.
        point: (usize, bool),
    },
    /// An object that had to be decoded (odd stored shape), with its `resourceVersion`.
    Parsed(Value),
}

impl StoredItem {
    /// Appends the item's wire JSON to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            StoredItem::Spliced { kv, point } => object::append_spliced(out, &kv.value, *point, kv.mod_revision),
            StoredItem::Parsed(obj) => serde_json::to_writer(out, obj).expect("a JSON value serialises"),
        }
    }
}

/// A page like [`ListPage`] whose items stay in their stored bytes: for
/// writing a list to the wire without decoding every object.
#[derive(Debug, Clone)]
pub struct StoredPage {
    /// The matching objects.
    pub items: Vec<StoredItem>,
    /// The list's `resourceVersion`.
    pub revision: Revision,
    /// Token of the next page, when one may follow.
    pub continue_token: Option<String>,
}

/// Like [`list`], but objects are decoded only when a selector needs them
/// or their stored bytes are not of the plain shape. Same pages, same errors
/// for bad tokens and undecodable objects.
pub async fn list_stored(
    store: &dyn Store,
    prefix: &str,
    filter: &Filter,
    limit: Option<usize>,
    continue_from: Option<&str>,
) -> Result<StoredPage, ApiError> {
    let page = collect(store, prefix, filter, limit, continue_from).await?;
    let items = page
        .items
        .into_iter()
        .map(|(kv, parsed)| match object::splice_point(&kv.value) {
            Some(point) => Ok(StoredItem::Spliced { kv, point }),
            None => match parsed {
                Some(obj) => Ok(StoredItem::Parsed(obj)),
                None => object::from_kv(&kv).map(StoredItem::Parsed),
            },
        })
        .collect::<Result<_, _>>()?;
    Ok(StoredPage { items, revision: page.revision, continue_token: page.continue_token })
}

/// A page of matching entries, each with its decoded object when matching
/// needed one.
struct Collected {
    items: Vec<(KeyValue, Option<Value>)>,
    revision: Revision,
    continue_token: Option<String>,
}

async fn collect(
    store: &dyn Store,
    prefix: &str,
    filter: &Filter,
    limit: Option<usize>,
    continue_from: Option<&str>,
) -> Result<Collected, ApiError> {
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
    let everything = filter.is_everything();
    // A selective filter may pass over many keys per match: each read from
    // the store takes twice as many as the last, so a long scan makes few
    // trips to the store and a short one reads little past its matches.
    let mut least = MIN_BATCH;
    loop {
        let batch = limit.map(|l| (l - items.len()).max(if everything { 1 } else { least }));
        least = (least * 2).min(MAX_BATCH);
        let page = store.list(prefix, after.as_deref(), batch).await?;
        let rev = *revision.get_or_insert(page.revision);
        let count = page.items.len();
        let more_in_store = page.more;
        for (i, kv) in page.items.into_iter().enumerate() {
            after = Some(kv.key.clone());
            if everything {
                items.push((kv, None));
            } else {
                match filter.matches_stored(&kv.value) {
                    Some(true) => items.push((kv, None)),
                    Some(false) => {}
                    None => {
                        let obj = object::from_kv(&kv)?;
                        if filter.matches(&obj) {
                            items.push((kv, Some(obj)));
                        }
                    }
                }
            }
            if limit.is_some_and(|l| items.len() >= l) {
                let more = i + 1 < count || more_in_store;
                let continue_token =
                    more.then(|| ContinueToken { key: after.clone().unwrap_or_default(), revision: rev }.encode());
                return Ok(Collected { items, revision: rev, continue_token });
            }
        }
        if !more_in_store || count == 0 {
            return Ok(Collected { items, revision: rev, continue_token: None });
        }
    }
}
