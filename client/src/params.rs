//! Query parameters of list, watch and delete requests.
//!
//! Owns the parameter structs and their translation into query pairs. It must
//! not send anything.

use std::time::Duration;

/// Parameters of a list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// `labelSelector`, e.g. `app=web,tier!=db`.
    pub label_selector: Option<String>,
    /// `fieldSelector`, e.g. `spec.agent=node-1`.
    pub field_selector: Option<String>,
    /// Page size (`limit`); the answer carries a `continue` token when cut short.
    pub limit: Option<u32>,
    /// `continue` token from the previous page.
    pub continue_token: Option<String>,
    /// Leave every item's `metadata.managedFields` out of the decode (`None`),
    /// as client-go's informers strip it: see
    /// [`meseta_schemas::skipping_managed_fields`]. Default: false.
    pub strip_managed_fields: bool,
}

impl ListParams {
    /// Only objects matching this label selector.
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// Only objects matching this field selector.
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }

    /// At most `limit` objects per page.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after the page that returned `token`.
    pub fn continue_from(mut self, token: impl Into<String>) -> Self {
        self.continue_token = Some(token.into());
        self
    }

    /// Decode the items without their `managedFields`.
    pub fn strip_managed_fields(mut self) -> Self {
        self.strip_managed_fields = true;
        self
    }

    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        push_selectors(&mut q, &self.label_selector, &self.field_selector);
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        if let Some(token) = &self.continue_token {
            q.push(("continue", token.clone()));
        }
        q
    }
}

/// Parameters of a watch, and of the [`crate::watcher`] (which lists first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Ask the server to end the watch after this long (`timeoutSeconds`); the
    /// watcher then resumes. The client gives up 30 s after it, so a silent
    /// dead connection is noticed. `None`: no limit on either side.
    pub timeout: Option<Duration>,
    /// Ask for BOOKMARK events (`allowWatchBookmarks`). Default: true.
    pub bookmarks: bool,
    /// Page size of the watcher's initial list. Default: 500.
    pub page_size: Option<u32>,
    /// Leave `metadata.managedFields` out of every object decoded, listed
    /// or watched (`None`), as client-go's informers strip it: for caches
    /// whose readers never look at field ownership. Default: false.
    pub strip_managed_fields: bool,
}

impl Default for WatchParams {
    fn default() -> Self {
        WatchParams {
            label_selector: None,
            field_selector: None,
            timeout: Some(Duration::from_secs(290)),
            bookmarks: true,
            page_size: Some(500),
            strip_managed_fields: false,
        }
    }
}

/// Margin past the server-side watch timeout after which the client drops the connection.
pub(crate) const WATCH_CLIENT_MARGIN: Duration = Duration::from_secs(30);

impl WatchParams {
    /// Only objects matching this label selector.
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// Only objects matching this field selector.
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }

    /// Server-side watch timeout (`None`: unlimited).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Decode every object without its `managedFields`.
    pub fn strip_managed_fields(mut self) -> Self {
        self.strip_managed_fields = true;
        self
    }

    /// The list parameters of the watcher's initial list.
    pub fn list_params(&self) -> ListParams {
        ListParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            limit: self.page_size,
            continue_token: None,
            strip_managed_fields: self.strip_managed_fields,
        }
    }

    pub(crate) fn query(&self, resource_version: &str) -> Vec<(&'static str, String)> {
        let mut q = vec![("watch", "true".to_string())];
        if !resource_version.is_empty() {
            q.push(("resourceVersion", resource_version.to_string()));
        }
        push_selectors(&mut q, &self.label_selector, &self.field_selector);
        if self.bookmarks {
            q.push(("allowWatchBookmarks", "true".into()));
        }
        if let Some(t) = self.timeout {
            q.push(("timeoutSeconds", t.as_secs().max(1).to_string()));
        }
        q
    }
}

fn push_selectors(q: &mut Vec<(&'static str, String)>, labels: &Option<String>, fields: &Option<String>) {
    if let Some(l) = labels.as_ref().filter(|l| !l.is_empty()) {
        q.push(("labelSelector", l.clone()));
    }
    if let Some(f) = fields.as_ref().filter(|f| !f.is_empty()) {
        q.push(("fieldSelector", f.clone()));
    }
}

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagationPolicy {
    /// Delete the owner now, collect dependents in the background.
    Background,
    /// Keep the owner (with a finalizer) until every dependent is gone.
    Foreground,
    /// Leave dependents alone.
    Orphan,
}

impl PropagationPolicy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PropagationPolicy::Background => "Background",
            PropagationPolicy::Foreground => "Foreground",
            PropagationPolicy::Orphan => "Orphan",
        }
    }
}

/// Parameters of a delete request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteParams {
    /// `propagationPolicy`; the server's default when `None`.
    pub propagation_policy: Option<PropagationPolicy>,
    /// Validate only, change nothing (`dryRun=All`).
    pub dry_run: bool,
}

impl DeleteParams {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(p) = self.propagation_policy {
            q.push(("propagationPolicy", p.as_str().to_string()));
        }
        if self.dry_run {
            q.push(("dryRun", "All".into()));
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_has_only_what_is_set() {
        let q = ListParams::default().labels("app=web").limit(10).continue_from("tok").query();
        assert_eq!(q, vec![("labelSelector", "app=web".into()), ("limit", "10".into()), ("continue", "tok".into())]);
        assert!(ListParams::default().query().is_empty());
    }

    #[test]
    fn watch_query_names_the_resource_version() {
        let q = WatchParams::default().fields("spec.agent=a1").query("42");
        assert_eq!(
            q,
            vec![
                ("watch", "true".into()),
                ("resourceVersion", "42".into()),
                ("fieldSelector", "spec.agent=a1".into()),
                ("allowWatchBookmarks", "true".into()),
                ("timeoutSeconds", "290".into()),
            ]
        );
    }
}
