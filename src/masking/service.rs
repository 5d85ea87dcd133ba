//! The gateway-facing side of masking: one [`Masking`] per process holds the strategies,
//! the HMAC key and each datasource's classified catalog; per statement it builds a
//! [`StatementPlan`] from column lineage, which says which classified columns the
//! statement filters on (probing) and, once the result's width is known, how to mask each
//! result column.
//!
//! Masking does not know policy: whether a caller may see a class raw on a column is a
//! question the gateway answers (Cedar `unmask`) through the closures it passes in.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sqlparser::ast::Statement;

use crate::config::{MaskingConfig, PredicateRule};
use crate::datasource::{Column, Datasource, Driver};
use crate::intent::TableName;

use super::Classification;
use super::classify::{CatalogError, MaskCatalog, check_columns, is_stringish};
use super::engine::ColumnPlan;
use super::lineage::{self, Catalog, Lineage, SourceColumn};
use super::strategy::{Masker, UnknownStrategyKey, load_or_create_key};

/// File name of the generated HMAC key in the data directory.
pub const KEY_FILE: &str = "masking.key";

/// Masking cannot be set up: start-up stops with this.
#[derive(Debug, thiserror::Error)]
pub enum MaskingSetupError {
    #[error("cannot read or create the masking key {path}: {source}")]
    Key {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("[masking.strategies]: unknown key `{}`; use a classification name (pii.email, …) or `pii` / `secret`", .0.0)]
    Strategy(UnknownStrategyKey),
    #[error("{0}")]
    Columns(CatalogError),
}

pub struct Masking {
    config: MaskingConfig,
    masker: Masker,
    /// Datasource name → its classified catalog. Replaced whole on refresh; readers keep
    /// the `Arc` they took, so a refresh never changes a statement's plan mid-flight.
    catalogs: RwLock<HashMap<String, Cached>>,
    /// Datasource name → the lock one reload holds, so a catalog past its age is read
    /// again by one request while the others go on with the one they have.
    reloads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// `[masking] catalog_max_age_s`.
    max_age: Duration,
}

/// A loaded catalog and when it was read; `loaded` is `None` once it is known stale (a
/// reload after DDL failed), so the next use reads it again.
struct Cached {
    catalog: Arc<MaskCatalog>,
    loaded: Option<Instant>,
}

impl Masking {
    /// Checks the configuration and loads (or creates, mode 0600) the HMAC key. No
    /// database is contacted: catalogs load on first use or through [`Masking::refresh`].
    pub fn new(config: &MaskingConfig, data_dir: &Path) -> Result<Masking, MaskingSetupError> {
        check_columns(config).map_err(MaskingSetupError::Columns)?;
        let path = config
            .hmac_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join(KEY_FILE));
        let key = load_or_create_key(&path).map_err(|source| MaskingSetupError::Key {
            path: path.display().to_string(),
            source,
        })?;
        let masker = Masker::new(&config.strategies, key).map_err(MaskingSetupError::Strategy)?;
        Ok(Masking {
            config: config.clone(),
            masker,
            catalogs: RwLock::new(HashMap::new()),
            reloads: Mutex::new(HashMap::new()),
            max_age: Duration::from_secs(config.catalog_max_age_s),
        })
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    pub fn predicates(&self) -> PredicateRule {
        self.config.predicates
    }

    pub fn free_text_predicates(&self) -> PredicateRule {
        self.config.free_text_predicates
    }

    /// The datasource's classified catalog: loaded on first use, and read again once it
    /// is older than `catalog_max_age_s`, so tables and data changed outside Gatehouse are
    /// seen. One request reloads an aged catalog; requests meanwhile use the one they
    /// have, and keep it if the reload fails (it is retried on the next use).
    pub async fn catalog(&self, datasource: &Datasource) -> Result<Arc<MaskCatalog>, CatalogError> {
        let name = datasource.name().as_str();
        let cached = self
            .catalogs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|cached| {
                let fresh = cached
                    .loaded
                    .is_some_and(|loaded| loaded.elapsed() < self.max_age);
                (Arc::clone(&cached.catalog), fresh)
            });
        match cached {
            Some((catalog, true)) => Ok(catalog),
            Some((catalog, false)) => {
                let reload = self.reload_lock(name);
                let Ok(_reloading) = reload.try_lock() else {
                    return Ok(catalog);
                };
                match self.load(datasource).await {
                    Ok(reloaded) => Ok(reloaded),
                    Err(error) => {
                        tracing::warn!(datasource = %name, %error, "catalog reload failed; the previous one stays in use");
                        Ok(catalog)
                    }
                }
            }
            None => {
                let reload = self.reload_lock(name);
                let _reloading = reload.lock().await;
                // Whoever held the lock may have just loaded it.
                let loaded = self
                    .catalogs
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(name)
                    .map(|cached| Arc::clone(&cached.catalog));
                match loaded {
                    Some(catalog) => Ok(catalog),
                    None => self.load(datasource).await,
                }
            }
        }
    }

    /// Reads the datasource's catalog again now (after DDL through the service, or when a
    /// result's shape shows it is out of date). If that fails the catalog in use is marked
    /// stale, so the next use tries again.
    pub async fn refresh(&self, datasource: &Datasource) -> Result<Arc<MaskCatalog>, CatalogError> {
        let reload = self.reload_lock(datasource.name().as_str());
        let _reloading = reload.lock().await;
        let loaded = self.load(datasource).await;
        if loaded.is_err()
            && let Some(cached) = self
                .catalogs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(datasource.name().as_str())
        {
            cached.loaded = None;
        }
        loaded
    }

    fn reload_lock(&self, datasource: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut reloads = self.reloads.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(reloads.entry(datasource.to_owned()).or_default())
    }

    async fn load(&self, datasource: &Datasource) -> Result<Arc<MaskCatalog>, CatalogError> {
        // Boxed: loading nests the catalog read, sampling and execution futures, and inlined
        // into every caller's future that depth exceeds the compiler's layout limit.
        let catalog = Arc::new(Box::pin(MaskCatalog::load(datasource, &self.config)).await?);
        self.catalogs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                datasource.name().to_string(),
                Cached {
                    catalog: Arc::clone(&catalog),
                    loaded: Some(Instant::now()),
                },
            );
        Ok(catalog)
    }

    /// The plan of one request's statements. Several statements (refused by policy
    /// anyway) get no lineage: every result column would be masked.
    pub fn plan(
        &self,
        driver: Driver,
        statements: &[Statement],
        catalog: Arc<MaskCatalog>,
    ) -> StatementPlan {
        let lineage = match statements {
            [statement] => lineage::lineage(driver, statement, &*catalog),
            _ => Lineage {
                outputs: None,
                predicates: BTreeSet::new(),
                unresolved_predicates: true,
                computed_over: BTreeSet::new(),
                unresolved_computed: true,
            },
        };
        StatementPlan { lineage, catalog }
    }
}

impl Catalog for MaskCatalog {
    fn columns(&self, table: &TableName) -> Option<Vec<String>> {
        MaskCatalog::columns(self, table)
    }
}

/// What masking knows about one statement before it runs.
pub struct StatementPlan {
    lineage: Lineage,
    catalog: Arc<MaskCatalog>,
}

impl StatementPlan {
    /// Every (column, class) the statement filters, joins, groups or orders on: the
    /// columns an agent could probe masked values through (`WHERE ssn LIKE '123%'`).
    pub fn predicate_columns(&self) -> Vec<(SourceColumn, Classification)> {
        self.classified(&self.lineage.predicates)
    }

    /// Every (column, class) an expression of the statement computes on
    /// ([`Lineage::computed_over`]): whether the computation fails or turns NULL can
    /// reveal the value (`1 / (ascii(ssn) - 49)`).
    pub fn computed_columns(&self) -> Vec<(SourceColumn, Classification)> {
        self.classified(&self.lineage.computed_over)
    }

    /// [`StatementPlan::predicate_columns`] for free text: the classes found inside some
    /// values of unclassified columns the statement filters on.
    pub fn free_text_predicate_columns(&self) -> Vec<(SourceColumn, Classification)> {
        self.embedded(&self.lineage.predicates)
    }

    /// [`StatementPlan::computed_columns`] for free text.
    pub fn free_text_computed_columns(&self) -> Vec<(SourceColumn, Classification)> {
        self.embedded(&self.lineage.computed_over)
    }

    fn classified(&self, sources: &BTreeSet<SourceColumn>) -> Vec<(SourceColumn, Classification)> {
        self.each_class(sources, |table, column| self.catalog.classes(table, column))
    }

    fn embedded(&self, sources: &BTreeSet<SourceColumn>) -> Vec<(SourceColumn, Classification)> {
        self.each_class(sources, |table, column| {
            self.catalog.embedded(table, column)
        })
    }

    fn each_class<'p>(
        &'p self,
        sources: &BTreeSet<SourceColumn>,
        classes: impl Fn(&TableName, &str) -> &'p [Classification],
    ) -> Vec<(SourceColumn, Classification)> {
        sources
            .iter()
            .flat_map(|source| {
                classes(&source.table, &source.column)
                    .iter()
                    .map(move |class| (source.clone(), *class))
            })
            .collect()
    }

    /// A predicate, or a computation, referenced something lineage could not trace to a
    /// column, in a statement over at least one table with classified columns: probing
    /// cannot be ruled out.
    pub fn unresolved_predicates_over(&self, tables: &[TableName]) -> bool {
        (self.lineage.unresolved_predicates || self.lineage.unresolved_computed)
            && tables.iter().any(|table| {
                self.catalog
                    .columns(table)
                    .unwrap_or_default()
                    .iter()
                    .any(|column| !self.catalog.classes(table, column).is_empty())
            })
    }

    /// The classes of a source column.
    pub fn classes(&self, source: &SourceColumn) -> &[Classification] {
        self.catalog.classes(&source.table, &source.column)
    }

    /// How to mask each of a result's columns. A class is shown raw on a column only when
    /// lineage resolved it and `may_unmask` allows that class on every source column
    /// carrying it (for a class found by the value detectors, on every source column). When lineage does not know the result's shape, or knows a
    /// different number of columns than the database returned, every column is masked.
    ///
    /// A computed text value over free text (`reverse(notes)`, `hex(notes)`,
    /// `replace(notes, '@', ' at ')`, `substr(notes, 10, 8)`) can carry an entity in a
    /// form no detector recognises, so it is masked whole (fail closed); stored values of
    /// free text keep span masking, and computed numbers (`length(notes)`) stay.
    pub fn column_plans(
        &self,
        columns: &[Column],
        mut may_unmask: impl FnMut(&SourceColumn, Classification) -> bool,
    ) -> Vec<ColumnPlan> {
        let width = columns.len();
        let outputs = match &self.lineage.outputs {
            Some(outputs) if outputs.len() == width => outputs,
            _ => {
                return vec![
                    ColumnPlan {
                        fail_closed: true,
                        ..ColumnPlan::default()
                    };
                    width
                ];
            }
        };
        outputs
            .iter()
            .zip(columns)
            .map(|(output, column)| {
                let stringish = is_stringish(&column.type_name);
                let hides_free_text = output.computed
                    && stringish
                    && output
                        .sources
                        .iter()
                        .any(|source| self.catalog.is_free_text(&source.table, &source.column));
                let mut carriers: HashMap<Classification, Vec<&SourceColumn>> = HashMap::new();
                for source in &output.sources {
                    for class in self.classes(source) {
                        carriers.entry(*class).or_default().push(source);
                    }
                    // A computed text value over free text that holds entities
                    // (`reverse(notes)`) can hide them from the value detectors: it carries
                    // their classes. A computed number (`length(notes)`) cannot.
                    if output.computed && stringish {
                        for class in self.catalog.embedded(&source.table, &source.column) {
                            carriers.entry(*class).or_default().push(source);
                        }
                    }
                }
                let classes: BTreeSet<Classification> = carriers.keys().copied().collect();
                // A class the column is not classified with can still turn up inside its
                // values (a phone number in `notes`): the value detectors leave it raw only
                // for a caller who may unmask that class on every source column.
                let unmasked = if output.resolved && !output.sources.is_empty() {
                    Classification::ALL
                        .into_iter()
                        .filter(|class| match carriers.get(class) {
                            Some(sources) => sources.iter().all(|s| may_unmask(s, *class)),
                            None => output.sources.iter().all(|s| may_unmask(s, *class)),
                        })
                        .collect()
                } else {
                    BTreeSet::new()
                };
                ColumnPlan {
                    classes,
                    fail_closed: !output.resolved || hides_free_text,
                    unmasked,
                    computed: output.computed,
                }
            })
            .collect()
    }

    /// Lineage knew the result's shape but the database returned another: the catalog is
    /// probably stale (a column added outside Gatehouse).
    pub fn shape_mismatch(&self, width: usize) -> bool {
        self.lineage
            .outputs
            .as_ref()
            .is_some_and(|outputs| outputs.len() != width)
    }
}
