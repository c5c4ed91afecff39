//! [`Api`]: typed requests for one kind, in one namespace or across all.
//!
//! Owns the URL layout (`/apis/meseta.io/v1/[namespaces/{ns}/]{plural}[/{name}[/{sub}]]`)
//! and the typed verbs. It must not retry, cache or watch for longer than one
//! request: [`crate::watcher`] and [`crate::reflector`] build on it.

mod watch;

use std::marker::PhantomData;

use http::Method;
use meseta_schemas::{ObjectList, Resource, API_VERSION};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

pub use watch::{WatchEvent, WatchStream};

use crate::client::{Body, Client};
use crate::error::{decode, decode_value, Error, Result};
use crate::params::{DeleteParams, ListParams, WatchParams, WATCH_CLIENT_MARGIN};

/// The request header asking a write for a minimal answer (RFC 7240): the
/// object's identity and revision alone.
const MINIMAL: [(&str, &str); 1] = [("prefer", "return=minimal")];
/// Media type of a JSON merge patch (RFC 7386).
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// Media type of a JSON patch (RFC 6902).
pub const JSON_PATCH: &str = "application/json-patch+json";

/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteOutcome<K> {
    /// The object is gone (or would be, for a dry run).
    Deleted,
    /// The object is marked for deletion and waits for its finalizers.
    Pending(K),
}

impl<K> DeleteOutcome<K> {
    /// Whether the object is already gone.
    pub fn is_deleted(&self) -> bool {
        matches!(self, DeleteOutcome::Deleted)
    }
}

/// Typed access to objects of kind `K`.
///
/// `Api::namespaced(c, ns)` addresses one namespace (namespaced kinds only);
/// `Api::all(c)` addresses cluster-scoped kinds, or every namespace of a
/// namespaced kind for `list`/`watch` (single-object calls then take the
/// namespace from the object, and fail for bare names).
pub struct Api<K> {
    client: Client,
    namespace: Option<String>,
    dry_run: bool,
    field_manager: Option<String>,
    _kind: PhantomData<fn() -> K>,
}

/// The one field of a write's answer that [`Api::replace_status_in_place`] reads.
#[derive(serde::Deserialize)]
struct WrittenRevision {
    metadata: WrittenMeta,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WrittenMeta {
    resource_version: Option<String>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            dry_run: self.dry_run,
            field_manager: self.field_manager.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Api<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("kind", &std::any::type_name::<K>()).field("namespace", &self.namespace).finish()
    }
}

/// Whether `json`, an object serialised by serde, starts with the fields
/// `"apiVersion":"meseta.io/v1","kind":"<kind>"` (both present and set).
fn has_type_meta(json: &[u8], kind: &str) -> bool {
    let rest = json.strip_prefix(br#"{"apiVersion":""#).and_then(|r| r.strip_prefix(API_VERSION.as_bytes()));
    let rest = rest.and_then(|r| r.strip_prefix(br#"","kind":""#)).and_then(|r| r.strip_prefix(kind.as_bytes()));
    rest.is_some_and(|r| r.starts_with(b"\""))
}

fn group_prefix() -> String {
    format!("/apis/{API_VERSION}")
}

impl<K: Resource> Api<K> {
    /// Objects of a namespaced kind in namespace `ns`.
    ///
    /// For a cluster-scoped kind every request fails with
    /// [`Error::InvalidRequest`] saying to use [`Api::all`].
    pub fn namespaced(client: Client, ns: impl Into<String>) -> Self {
        Api { client, namespace: Some(ns.into()), dry_run: false, field_manager: None, _kind: PhantomData }
    }

    /// Objects of a cluster-scoped kind, or of a namespaced kind in every namespace.
    pub fn all(client: Client) -> Self {
        Api { client, namespace: None, dry_run: false, field_manager: None, _kind: PhantomData }
    }

    /// The same Api, but writes are validated and not stored (`dryRun=All`).
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The same Api, naming `manager` as the writer of its changes (`fieldManager`).
    pub fn field_manager(mut self, manager: impl Into<String>) -> Self {
        self.field_manager = Some(manager.into());
        self
    }

    /// The namespace this Api is bound to.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Path of the collection: the namespace's, or every namespace's.
    pub fn collection_path(&self) -> Result<String> {
        match (&self.namespace, K::NAMESPACED) {
            (Some(ns), true) => Ok(format!("{}/namespaces/{ns}/{}", group_prefix(), K::PLURAL)),
            (None, _) => Ok(format!("{}/{}", group_prefix(), K::PLURAL)),
            (Some(_), false) => Err(Error::InvalidRequest(format!(
                "{} is cluster-scoped; use Api::all instead of Api::namespaced",
                K::KIND
            ))),
        }
    }

    /// Path of the object `name` (in `ns` for namespaced kinds, defaulting to the Api's).
    fn object_path(&self, name: &str, ns: Option<&str>) -> Result<String> {
        if name.is_empty() {
            return Err(Error::InvalidRequest(format!("a {} name is required", K::KIND)));
        }
        if name.contains(['/', '?', '#', '%']) {
            return Err(Error::InvalidRequest(format!("{} name {name:?} contains a character not allowed", K::KIND)));
        }
        if !K::NAMESPACED {
            return Ok(format!("{}/{name}", self.collection_path()?));
        }
        match ns.or(self.namespace.as_deref()) {
            Some(ns) => Ok(format!("{}/namespaces/{ns}/{}/{name}", group_prefix(), K::PLURAL)),
            None => Err(Error::InvalidRequest(format!(
                "{} is namespaced: use Api::namespaced(client, ns) to address {name:?}",
                K::KIND
            ))),
        }
    }

    fn path_of(&self, obj: &K, subresource: Option<&str>) -> Result<String> {
        let mut path = self.object_path(obj.name(), obj.namespace())?;
        if let Some(sub) = subresource {
            path.push('/');
            path.push_str(sub);
        }
        Ok(path)
    }

    fn write_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if self.dry_run {
            q.push(("dryRun", "All".to_string()));
        }
        if let Some(m) = &self.field_manager {
            q.push(("fieldManager", m.clone()));
        }
        q
    }

    async fn send_obj(&self, method: Method, path: &str, query: &[(&str, String)], body: Body<'_>) -> Result<K> {
        let bytes = self.client.send(method, path, query, body).await?;
        decode(K::KIND, &bytes)
    }

    /// The body of a write of `obj`: its JSON, with `apiVersion` and `kind`
    /// filled in where empty. Serialised straight to bytes when the object
    /// already carries both (the usual case: its first bytes say so, as
    /// every kind serialises those two fields first); otherwise through
    /// [`Api::to_json`].
    fn to_body(obj: &K) -> Result<Vec<u8>> {
        let bytes = serde_json::to_vec(obj)
            .map_err(|e| Error::InvalidRequest(format!("cannot serialise the {}: {e}", K::KIND)))?;
        if has_type_meta(&bytes, K::KIND) {
            return Ok(bytes);
        }
        let value = Self::to_json(obj)?;
        Ok(serde_json::to_vec(&value).expect("a JSON value always serialises"))
    }

    fn to_json(obj: &K) -> Result<Value> {
        let mut value = serde_json::to_value(obj)
            .map_err(|e| Error::InvalidRequest(format!("cannot serialise the {}: {e}", K::KIND)))?;
        // Objects built with `Default` lack apiVersion/kind; the server wants them.
        if let Some(map) = value.as_object_mut() {
            for (key, wanted) in [("apiVersion", API_VERSION), ("kind", K::KIND)] {
                if map.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                    map.insert(key.into(), Value::String(wanted.into()));
                }
            }
        }
        Ok(value)
    }

    /// The object `name`; [`Error::is_not_found`] when absent.
    #[tracing::instrument(level = "debug", skip(self), fields(kind = K::KIND, ns = ?self.namespace))]
    pub async fn get(&self, name: &str) -> Result<K> {
        self.send_obj(Method::GET, &self.object_path(name, None)?, &[], Body::None).await
    }

    /// The object `name`, or `None` when absent.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(obj) => Ok(Some(obj)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of objects.
    #[tracing::instrument(level = "debug", skip(self), fields(kind = K::KIND, ns = ?self.namespace))]
    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<K>> {
        let bytes = self.client.send(Method::GET, &self.collection_path()?, &params.query(), Body::None).await?;
        let what = format!("{}List", K::KIND);
        meseta_schemas::skipping_managed_fields(params.strip_managed_fields, || decode(&what, &bytes))
    }

    /// Every object, following `continue` tokens page by page (page size from
    /// `params.limit`). The result's resourceVersion is the first page's, the
    /// oldest state any item may reflect, so a watch from it misses nothing.
    pub async fn list_all(&self, params: &ListParams) -> Result<ObjectList<K>> {
        let mut params = params.clone();
        let mut all = self.list(&params).await?;
        while let Some(token) = all.metadata.r#continue.take().filter(|t| !t.is_empty()) {
            params.continue_token = Some(token);
            let page = self.list(&params).await?;
            all.items.extend(page.items);
            all.metadata.r#continue = page.metadata.r#continue;
        }
        all.metadata.remaining_item_count = None;
        Ok(all)
    }

    /// Creates `obj` (its namespace defaults to the Api's).
    #[tracing::instrument(level = "debug", skip_all, fields(kind = K::KIND, name = obj.name()))]
    pub async fn create(&self, obj: &K) -> Result<K> {
        let body = Self::to_body(obj)?;
        self.send_obj(Method::POST, &self.create_path(obj)?, &self.write_query(), Body::Json(body)).await
    }

    /// Creates `obj` like [`Api::create`], without decoding the created
    /// object the apiserver answers with: for callers that learn of it from
    /// a watch anyway. Errors are the same.
    #[tracing::instrument(level = "debug", skip_all, fields(kind = K::KIND, name = obj.name()))]
    pub async fn create_unread(&self, obj: &K) -> Result<()> {
        let body = Self::to_body(obj)?;
        self.client.send(Method::POST, &self.create_path(obj)?, &self.write_query(), Body::Json(body)).await?;
        Ok(())
    }

    /// Where a create of `obj` is posted.
    fn create_path(&self, obj: &K) -> Result<String> {
        match (K::NAMESPACED, obj.namespace().or(self.namespace.as_deref())) {
            (true, Some(ns)) => Ok(format!("{}/namespaces/{ns}/{}", group_prefix(), K::PLURAL)),
            (true, None) => Err(Error::InvalidRequest(format!(
                "{} is namespaced: set metadata.namespace or use Api::namespaced",
                K::KIND
            ))),
            (false, _) => self.collection_path(),
        }
    }

    /// Replaces `obj` wholesale (PUT). With `metadata.resourceVersion` set the
    /// write fails with [`Error::is_conflict`] if the object changed since.
    #[tracing::instrument(level = "debug", skip_all, fields(kind = K::KIND, name = obj.name()))]
    pub async fn replace(&self, obj: &K) -> Result<K> {
        let body = Self::to_body(obj)?;
        self.send_obj(Method::PUT, &self.path_of(obj, None)?, &self.write_query(), Body::Json(body)).await
    }

    /// Replaces the status of `obj` through the `status` subresource.
    #[tracing::instrument(level = "debug", skip_all, fields(kind = K::KIND, name = obj.name()))]
    pub async fn replace_status(&self, obj: &K) -> Result<K> {
        let body = Self::to_body(obj)?;
        self.send_obj(Method::PUT, &self.path_of(obj, Some("status"))?, &self.write_query(), Body::Json(body)).await
    }

    /// [`Api::replace_status`] with its answer decoded without
    /// `metadata.managedFields` (skipped, not built): for a caller that keeps
    /// the answer as its copy of the object and gets its other copies from a
    /// watch that strips them too (`WatchParams::strip_managed_fields`), such
    /// as an agent. A write whose object has no managedFields keeps the
    /// stored ones, so writing such a copy again loses none.
    pub async fn replace_status_stripped(&self, obj: &K) -> Result<K> {
        let body = Self::to_body(obj)?;
        let path = self.path_of(obj, Some("status"))?;
        let bytes = self.client.send(Method::PUT, &path, &self.write_query(), Body::Json(body)).await?;
        meseta_schemas::skipping_managed_fields(true, || decode(K::KIND, &bytes))
    }

    /// [`Api::replace_status`] for a caller that keeps `obj` as its copy of
    /// the object, such as an agent: once the write succeeds, `obj` takes
    /// the resourceVersion it gave, and the answer is read for nothing else.
    ///
    /// `obj` must be a copy as read with only its status changed, and carry
    /// its `resourceVersion`. The write is then conditional, and the status
    /// subresource changes nothing but the status, so the stored object is
    /// `obj` at its new revision: decoding the answer would only build it
    /// again. Its managedFields are dropped, as [`Api::replace_status_stripped`]
    /// drops the answer's (the write keeps the stored ones). Without a
    /// resourceVersion, `obj` becomes the answer, decoded as that method does.
    pub async fn replace_status_in_place(&self, obj: &mut K) -> Result<()> {
        if obj.meta().resource_version.is_none() {
            *obj = self.replace_status_stripped(obj).await?;
            return Ok(());
        }
        let body = Self::to_body(obj)?;
        let path = self.path_of(obj, Some("status"))?;
        // Only the revision is read from the answer: a server that takes the
        // preference sends nothing else.
        let bytes = self.client.send_with(Method::PUT, &path, &self.write_query(), Body::Json(body), &MINIMAL).await?;
        let written: WrittenRevision = decode(K::KIND, &bytes)?;
        let meta = obj.meta_mut();
        meta.resource_version = written.metadata.resource_version;
        meta.managed_fields = None;
        Ok(())
    }

    async fn patch(&self, name: &str, sub: Option<&str>, patch: &Value, media: &'static str) -> Result<K> {
        let mut path = self.object_path(name, None)?;
        if let Some(sub) = sub {
            path = format!("{path}/{sub}");
        }
        self.send_obj(Method::PATCH, &path, &self.write_query(), Body::Typed(patch, media)).await
    }

    /// Applies a JSON merge patch (RFC 7386) to `name`.
    #[tracing::instrument(level = "debug", skip(self, patch), fields(kind = K::KIND))]
    pub async fn patch_merge(&self, name: &str, patch: &Value) -> Result<K> {
        self.patch(name, None, patch, MERGE_PATCH).await
    }

    /// Applies a JSON patch (RFC 6902, an array of operations) to `name`.
    #[tracing::instrument(level = "debug", skip(self, patch), fields(kind = K::KIND))]
    pub async fn patch_json(&self, name: &str, patch: &Value) -> Result<K> {
        self.patch(name, None, patch, JSON_PATCH).await
    }

    /// Applies a JSON merge patch to the status of `name` (e.g. `{"status":{..}}`).
    #[tracing::instrument(level = "debug", skip(self, patch), fields(kind = K::KIND))]
    pub async fn patch_status_merge(&self, name: &str, patch: &Value) -> Result<K> {
        self.patch(name, Some("status"), patch, MERGE_PATCH).await
    }

    /// Deletes `name`: [`DeleteOutcome::Deleted`] when it is gone,
    /// [`DeleteOutcome::Pending`] while finalizers hold it.
    #[tracing::instrument(level = "debug", skip(self), fields(kind = K::KIND))]
    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<DeleteOutcome<K>> {
        let path = self.object_path(name, None)?;
        let bytes = self.client.send(Method::DELETE, &path, &params.query(), Body::None).await?;
        let value: Value = decode(K::KIND, &bytes)?;
        if value.get("kind").and_then(Value::as_str) == Some("Status") || value.is_null() {
            return Ok(DeleteOutcome::Deleted);
        }
        let obj: K = decode_value(K::KIND, value)?;
        let meta = obj.meta();
        if meta.deletion_timestamp.is_some() && !meta.finalizers.is_empty() && !params.dry_run {
            Ok(DeleteOutcome::Pending(obj))
        } else {
            Ok(DeleteOutcome::Deleted)
        }
    }

    /// Watches the collection from `resource_version` (empty: from now, with
    /// no initial state). Errors opening the watch (e.g. 410 when the version
    /// was compacted, see [`Error::is_gone`]) are returned here; later ones
    /// come through the stream, which ends when the server closes the watch.
    #[tracing::instrument(level = "debug", skip(self, params), fields(kind = K::KIND, ns = ?self.namespace))]
    pub async fn watch(&self, params: &WatchParams, resource_version: &str) -> Result<WatchStream<K>> {
        let path = self.collection_path()?;
        let limit = params.timeout.map(|t| t + WATCH_CLIENT_MARGIN);
        let resp = self.client.stream(&path, &params.query(resource_version), limit).await?;
        Ok(watch::decode_stream(resp, self.client.url_for(&path), params.strip_managed_fields))
    }

    /// Escape hatch: POSTs `body` to the subresource `sub` of `name`
    /// (e.g. `offers/{name}/accept`) and decodes the answer as `Resp`.
    pub async fn post_subresource<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        name: &str,
        sub: &str,
        body: &Req,
    ) -> Result<Resp> {
        let path = format!("{}/{sub}", self.object_path(name, None)?);
        self.client.request_json(Method::POST, &path, &self.write_query(), Some(body)).await
    }

    /// [`Api::post_subresource`] for a caller that only needs to know that the
    /// call succeeded: it asks for a minimal answer (`Prefer:
    /// return=minimal`), such as an offer's accept without its bound tasks,
    /// and reads none of it.
    pub async fn post_subresource_minimal<Req: Serialize + ?Sized>(
        &self,
        name: &str,
        sub: &str,
        body: &Req,
    ) -> Result<()> {
        let path = format!("{}/{sub}", self.object_path(name, None)?);
        let body = Body::Json(crate::client::request_body(body)?);
        self.client.send_with(Method::POST, &path, &self.write_query(), body, &MINIMAL).await?;
        Ok(())
    }

    /// Escape hatch: GETs the subresource `sub` of `name` as text (e.g. `log`).
    pub async fn get_subresource_text(&self, name: &str, sub: &str, query: &[(&str, String)]) -> Result<String> {
        let path = format!("{}/{sub}", self.object_path(name, None)?);
        self.client.request_text(&path, query).await
    }
}

#[cfg(test)]
mod tests {
    use meseta_schemas::{Role, Task};

    use super::*;

    fn client() -> Client {
        Client::new("http://127.0.0.1:1").unwrap()
    }

    #[test]
    fn paths_follow_the_scope_of_the_kind() {
        let tasks: Api<Task> = Api::namespaced(client(), "web");
        assert_eq!(tasks.collection_path().unwrap(), "/apis/meseta.io/v1/namespaces/web/tasks");
        assert_eq!(tasks.object_path("t1", None).unwrap(), "/apis/meseta.io/v1/namespaces/web/tasks/t1");
        let all: Api<Task> = Api::all(client());
        assert_eq!(all.collection_path().unwrap(), "/apis/meseta.io/v1/tasks");
        assert_eq!(all.object_path("t1", Some("db")).unwrap(), "/apis/meseta.io/v1/namespaces/db/tasks/t1");
        let err = all.object_path("t1", None).unwrap_err().to_string();
        assert!(err.contains("Task is namespaced"), "{err}");

        let roles: Api<Role> = Api::all(client());
        assert_eq!(roles.object_path("web", None).unwrap(), "/apis/meseta.io/v1/roles/web");
        let wrong: Api<Role> = Api::namespaced(client(), "web");
        assert!(wrong.collection_path().unwrap_err().to_string().contains("cluster-scoped"));
    }

    #[test]
    fn names_that_would_change_the_url_are_refused() {
        let tasks: Api<Task> = Api::namespaced(client(), "web");
        assert!(tasks.object_path("a/b", None).is_err());
        assert!(tasks.object_path("", None).is_err());
    }

    #[test]
    fn bodies_carry_api_version_and_kind() {
        let v = Api::<Task>::to_json(&Task::default()).unwrap();
        assert_eq!(v["apiVersion"], "meseta.io/v1");
        assert_eq!(v["kind"], "Task");
    }

    #[test]
    fn bodies_are_the_objects_json_with_api_version_and_kind() {
        let mut t = Task::new("t1", Default::default()).in_namespace("web");
        t.metadata.labels.insert("job".into(), "j".into());
        let body = Api::<Task>::to_body(&t).unwrap();
        assert!(has_type_meta(&body, "Task"), "{}", String::from_utf8_lossy(&body));
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), Api::<Task>::to_json(&t).unwrap());
        let bare = Api::<Task>::to_body(&Task::default()).unwrap();
        let v: Value = serde_json::from_slice(&bare).unwrap();
        assert_eq!((v["apiVersion"].as_str(), v["kind"].as_str()), (Some("meseta.io/v1"), Some("Task")));
    }

    #[test]
    fn type_meta_is_recognised_only_when_both_fields_are_set_as_expected() {
        assert!(has_type_meta(br#"{"apiVersion":"meseta.io/v1","kind":"Task","metadata":{}}"#, "Task"));
        assert!(!has_type_meta(br#"{"apiVersion":"meseta.io/v1","kind":"TaskX","metadata":{}}"#, "Task"));
        assert!(!has_type_meta(br#"{"apiVersion":"meseta.io/v1","kind":"","metadata":{}}"#, "Task"));
        assert!(!has_type_meta(br#"{"apiVersion":"","kind":"Task"}"#, "Task"));
        assert!(!has_type_meta(br#"{"kind":"Task","apiVersion":"meseta.io/v1"}"#, "Task"));
    }

    proptest::proptest! {
        /// Whatever apiVersion / kind an object carries, the fast body is
        /// the same JSON as the one built through a `Value`.
        #[test]
        fn fast_bodies_equal_value_bodies(
            api_version in proptest::prop_oneof![
                proptest::strategy::Just(String::new()),
                proptest::strategy::Just(API_VERSION.to_string()),
                "[a-z./0-9\"]{0,14}",
            ],
            kind in proptest::prop_oneof![
                proptest::strategy::Just(String::new()),
                proptest::strategy::Just("Task".to_string()),
                "[A-Za-z\"]{0,6}",
            ],
            name in "[a-z0-9-]{1,12}",
        ) {
            let mut t = Task::new(name, Default::default()).in_namespace("r");
            t.api_version = api_version;
            t.kind = kind;
            let fast: Value = serde_json::from_slice(&Api::<Task>::to_body(&t).unwrap()).unwrap();
            proptest::prop_assert_eq!(fast, Api::<Task>::to_json(&t).unwrap());
        }
    }

    #[test]
    fn write_query_carries_dry_run_and_manager() {
        let tasks: Api<Task> = Api::namespaced(client(), "web").dry_run().field_manager("jobs");
        assert_eq!(tasks.write_query(), vec![("dryRun", "All".to_string()), ("fieldManager", "jobs".to_string())]);
    }
}
