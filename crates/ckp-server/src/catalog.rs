//! The procedure catalog: import (compile + validate, then store; every error with its pointer, warnings kept),
//! and compiled procedures by id and version, compiled once per version and cached (DESIGN §6: "compile once and
//! cache per procedure version"), with the stored records a run's creation checks (status, effective date). Both
//! caches are dropped whenever procedures change, in this process or (shared database) another one
//! ([`Store::watch_procedures`]). It is the engine's [`Procedures`] source for workers and subflows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ckp_connectors::mcp::McpConnector;
use ckp_core::{Code, Compilation, Diagnostic, Limits, Procedure};
use ckp_engine::effects::BoxFuture;
use ckp_engine::engine::Procedures;
use ckp_store::{ProcedureRecord, Store, StoreError};

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The document has errors (every diagnostic, warnings included, in source order).
    #[error("the procedure has {} error(s)", .0.iter().filter(|d| d.is_error()).count())]
    Invalid(Vec<Diagnostic>),
    /// The document is over the server's `max_procedure_bytes` or `max_procedure_nodes` (the compiler's message).
    #[error("{0}")]
    TooLarge(String),
    /// That id and version exist already.
    #[error("{0}")]
    Conflict(String),
    /// The document names another procedure or version than the one addressed.
    #[error("{0}")]
    Mismatch(String),
    /// The document asks for what the server's settings do not allow (a stdio MCP server whose command is not on
    /// `mcp_stdio_allow`); the message names the setting.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl ImportError {
    /// The refusal of a document that did not compile: too large when the compiler stopped at the limits.
    pub fn from_diagnostics(diagnostics: Vec<Diagnostic>) -> Self {
        match diagnostics.iter().find(|d| d.code == Code::TooLarge) {
            Some(d) => ImportError::TooLarge(d.message.clone()),
            None => ImportError::Invalid(diagnostics),
        }
    }
}

/// Compiles on a blocking thread: a large document is milliseconds of CPU, which would stall every other request
/// of an async thread.
pub async fn compile(text: String, limits: Limits) -> Compilation {
    match tokio::task::spawn_blocking(move || ckp_core::compile_with(&text, limits)).await {
        Ok(compilation) => compilation,
        // A panic in the compiler is raised here as it would have been inline.
        Err(e) => std::panic::resume_unwind(e.try_into_panic().unwrap_or_else(|e| Box::new(e.to_string()))),
    }
}

/// Compiled procedures over the store.
pub struct Catalog {
    store: Arc<dyn Store>,
    cache: Mutex<Cache>,
    /// Judges a procedure's own MCP server declarations at import (none: every declaration is accepted).
    mcp: Option<Arc<McpConnector>>,
    /// The limits of documents imported or updated (stored ones were checked when they came in).
    limits: Limits,
}

/// What the catalog keeps, valid until procedures change.
struct Cache {
    changes: tokio::sync::watch::Receiver<u64>,
    /// Compiled procedures by id and version.
    compiled: HashMap<(String, String), Arc<Procedure>>,
    /// Stored records by id and version (None: the latest).
    records: HashMap<(String, Option<String>), Arc<ProcedureRecord>>,
}

impl Cache {
    /// The cache, emptied first if procedures changed since it was last looked at.
    fn fresh(&mut self) -> &mut Self {
        if self.changes.has_changed().unwrap_or(false) {
            self.changes.borrow_and_update();
            self.compiled.clear();
            self.records.clear();
        }
        self
    }

    /// Which change the cache is at: something read from the store before may be kept only if this is unchanged
    /// after the read.
    fn generation(&self) -> u64 {
        *self.changes.borrow()
    }
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

impl Catalog {
    /// A catalog over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let cache = Cache { changes: store.watch_procedures(), compiled: HashMap::new(), records: HashMap::new() };
        Catalog { store, cache: Mutex::new(cache), mcp: None, limits: Limits::DEFAULT }
    }

    /// Refuses at import the MCP server declarations `mcp` would refuse to run ([`McpConnector::refusal`]).
    pub fn with_mcp(mut self, mcp: Arc<McpConnector>) -> Self {
        self.mcp = Some(mcp);
        self
    }

    /// The same catalog, accepting documents within `limits` (the server's `max_procedure_bytes` and
    /// `max_procedure_nodes`) instead of the defaults.
    #[must_use]
    pub fn with_limits(self, limits: Limits) -> Self {
        Catalog { limits, ..self }
    }

    /// The limits of documents imported or updated.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.fresh();
        cache
    }

    /// Compiles and stores a CKP document; returns the stored record and the warnings.
    pub async fn import(
        &self,
        text: &str,
        project_id: Option<String>,
    ) -> Result<(ProcedureRecord, Vec<Diagnostic>), ImportError> {
        let (procedure, record, warnings) = self.compile(text).await?;
        let record = ProcedureRecord { project_id, ..record };
        let stored = self.store.insert_procedure(record).await.map_err(|e| match e {
            StoreError::Conflict(m) => ImportError::Conflict(m),
            other => ImportError::Store(other),
        })?;
        self.remember(&stored, procedure);
        Ok((stored, warnings))
    }

    /// Replaces the document of an existing version (same id and version, compiled and validated first).
    pub async fn update(
        &self,
        id: &str,
        version: &str,
        text: &str,
    ) -> Result<(ProcedureRecord, Vec<Diagnostic>), ImportError> {
        let (procedure, record, warnings) = self.compile(text).await?;
        if record.procedure_id != id {
            return Err(ImportError::Mismatch("procedure_id in CKP does not match target procedure_id".into()));
        }
        if record.version != version {
            return Err(ImportError::Mismatch("version in CKP does not match target version".into()));
        }
        let stored = self.store.update_procedure(record).await.map_err(ImportError::Store)?;
        self.remember(&stored, procedure);
        Ok((stored, warnings))
    }

    fn remember(&self, stored: &ProcedureRecord, procedure: Procedure) {
        self.cache().compiled.insert((stored.procedure_id.clone(), stored.version.clone()), Arc::new(procedure));
    }

    /// Compiles `text` into a procedure and the record to store (fields taken from the document), refusing what
    /// the server's settings do not allow.
    async fn compile(&self, text: &str) -> Result<(Procedure, ProcedureRecord, Vec<Diagnostic>), ImportError> {
        let compilation = compile(text.to_owned(), self.limits).await;
        let Some(procedure) = compilation.procedure else {
            return Err(ImportError::from_diagnostics(compilation.diagnostics));
        };
        if let Some(mcp) = &self.mcp
            && let Some(why) = procedure.config.mcp_servers.iter().find_map(|(name, s)| mcp.refusal(name, s))
        {
            return Err(ImportError::Refused(why));
        }
        let raw: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let field = |k: &str| raw.get(k).filter(|v| !v.is_null()).map(serde_json::Value::to_string);
        let doc = &procedure.document;
        let record = ProcedureRecord {
            id: 0,
            procedure_id: procedure.id.clone(),
            version: procedure.version.clone(),
            name: procedure.name.clone(),
            // The compiler accepted one of the statuses (any case), or none: draft.
            status: doc.status.as_deref().and_then(|s| s.trim().to_ascii_lowercase().parse().ok()).unwrap_or_default(),
            effective_date: doc.effective_date.clone(),
            description: doc.description.clone(),
            project_id: None,
            ckp_json: text.to_owned(),
            provenance: field("provenance"),
            retrieval_metadata: field("retrieval_metadata"),
            trigger_config: field("trigger"),
            release_channel: Some(
                raw.pointer("/release/channel").and_then(serde_json::Value::as_str).unwrap_or("dev").to_owned(),
            ),
            created_at: String::new(),
        };
        let warnings = compilation.diagnostics;
        Ok((procedure, record, warnings))
    }

    /// The stored record of procedure `id` at `version` (None or `latest`: the latest imported), cached until
    /// procedures change.
    pub async fn record(&self, id: &str, version: Option<&str>) -> Result<Option<Arc<ProcedureRecord>>, StoreError> {
        let key = (id.to_owned(), version.filter(|v| *v != "latest").map(str::to_owned));
        let generation = {
            let cache = self.cache();
            if let Some(record) = cache.records.get(&key) {
                return Ok(Some(record.clone()));
            }
            cache.generation()
        };
        let Some(record) = self.store.get_procedure(id, key.1.as_deref()).await? else { return Ok(None) };
        let record = Arc::new(record);
        let mut cache = self.cache();
        if cache.generation() == generation {
            cache.records.insert(key, record.clone());
        }
        Ok(Some(record))
    }

    /// The compiled procedure `id` at `version` (None or `latest`: the latest imported).
    pub async fn get(&self, id: &str, version: Option<&str>) -> Result<Option<Arc<Procedure>>, StoreError> {
        if let Some(v) = version.filter(|v| *v != "latest")
            && let Some(p) = self.cache().compiled.get(&(id.to_owned(), v.to_owned())).cloned()
        {
            return Ok(Some(p));
        }
        let generation = self.cache().generation();
        let Some(record) = self.record(id, version).await? else { return Ok(None) };
        let key = (record.procedure_id.clone(), record.version.clone());
        if let Some(p) = self.cache().compiled.get(&key).cloned() {
            return Ok(Some(p));
        }
        // Stored documents compiled when imported; a newer compiler could reject one, which then cannot run.
        let Some(p) = compile(record.ckp_json.clone(), Limits::NONE).await.procedure.map(Arc::new) else {
            return Ok(None);
        };
        let mut cache = self.cache();
        if cache.generation() == generation {
            cache.compiled.insert(key, p.clone());
        }
        Ok(Some(p))
    }
}

impl Procedures for Catalog {
    fn find<'a>(&'a self, id: &'a str, version: Option<&'a str>) -> BoxFuture<'a, Option<Arc<Procedure>>> {
        Box::pin(async move { self.get(id, version).await.ok().flatten() })
    }
}
