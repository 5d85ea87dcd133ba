//! What names mean inside one SELECT (or DML statement): the relations of its FROM clause,
//! the columns an unqualified name or `*` sees, and how names compare per engine.

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::datasource::Driver;

/// Base columns, as indices into the walker's table of them: sorted and unique. Most values
/// derive from no column or one, which cost no allocation; the `SourceColumn`s themselves
/// are built once, for the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Sources {
    #[default]
    None,
    One(u32),
    Many(Vec<u32>),
}

impl Sources {
    /// From any list of ids.
    pub(super) fn from_vec(mut ids: Vec<u32>) -> Sources {
        ids.sort_unstable();
        ids.dedup();
        match ids.as_slice() {
            [] => Sources::None,
            [one] => Sources::One(*one),
            _ => Sources::Many(ids),
        }
    }

    pub(super) fn as_slice(&self) -> &[u32] {
        match self {
            Sources::None => &[],
            Sources::One(id) => std::slice::from_ref(id),
            Sources::Many(ids) => ids,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        matches!(self, Sources::None)
    }

    fn insert_all(&mut self, other: &[u32]) {
        match (&mut *self, other) {
            (_, []) => {}
            (Sources::None, [one]) => *self = Sources::One(*one),
            (Sources::One(mine), [one]) if mine == one => {}
            (Sources::Many(ids), _) => {
                ids.extend_from_slice(other);
                ids.sort_unstable();
                ids.dedup();
            }
            _ => {
                let mut ids = Vec::with_capacity(self.as_slice().len() + other.len());
                ids.extend_from_slice(self.as_slice());
                ids.extend_from_slice(other);
                *self = Sources::from_vec(ids);
            }
        }
    }
}

/// More base columns than one value may derive from: such a value (a whole row of a very
/// wide table, say) is unresolved instead, which bounds what any text can make the walk
/// hold.
const MAX_SOURCES: usize = 512;

/// What one value derives from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Derivation {
    pub(super) sources: Sources,
    /// Some part of the value could not be traced to base columns.
    pub(super) unresolved: bool,
    /// The value was computed from its sources rather than being one of their stored
    /// values (or several, as a UNION or USING column is).
    pub(super) computed: bool,
}

impl Derivation {
    pub(super) fn unresolved() -> Derivation {
        Derivation {
            sources: Sources::None,
            unresolved: true,
            computed: false,
        }
    }

    pub(super) fn base(id: u32) -> Derivation {
        Derivation {
            sources: Sources::One(id),
            unresolved: false,
            computed: false,
        }
    }

    pub(super) fn absorb(&mut self, other: Derivation) {
        if self.sources.is_empty() {
            self.sources = other.sources;
        } else {
            self.sources.insert_all(other.sources.as_slice());
        }
        self.unresolved |= other.unresolved;
        self.computed |= other.computed;
        self.cap();
    }

    pub(super) fn absorb_ref(&mut self, other: &Derivation) {
        self.sources.insert_all(other.sources.as_slice());
        self.unresolved |= other.unresolved;
        self.computed |= other.computed;
        self.cap();
    }

    /// Gives up on a value that derives from more than [`MAX_SOURCES`] columns.
    pub(super) fn cap(&mut self) {
        if self.sources.as_slice().len() > MAX_SOURCES {
            self.sources = Sources::None;
            self.unresolved = true;
        }
    }
}

/// One column of a relation or of a result. Cloned into every scope that sees it, so its
/// name is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    /// PostgreSQL: exactly as the server names it (folded identifiers compare equal to it).
    /// MariaDB and SQLite: as written; compared case-insensitively.
    pub(super) name: Rc<str>,
    pub(super) derivation: Derivation,
}

/// The columns of a relation or result, in order; `None` when they are not known (an
/// unknown table, a table-valued function, `*` over either).
pub(super) type Shape = Option<Vec<Column>>;

/// What a qualifier must say to name a relation.
#[derive(Debug)]
pub(super) enum RelationName {
    /// `FROM customers AS c`: only `c` names it.
    Alias(String),
    /// `FROM public.customers` (or a CTE): the name's parts, folded.
    Named(Vec<String>),
    /// A derived table without an alias: it cannot be qualified.
    Anonymous,
}

impl RelationName {
    /// Whether `qualifier` (folded parts) names this relation. A table matches by its last
    /// part, and by every further part the qualifier spells: `customers.id` and
    /// `public.customers.id` both name `FROM public.customers`, and `public.customers.id`
    /// names `FROM customers` too (the default schema). Several relations of one scope
    /// answering to one qualifier is an error in the engine, and unresolved here.
    pub(super) fn is_named_by(&self, qualifier: &[String]) -> bool {
        match self {
            RelationName::Alias(alias) => matches!(qualifier, [one] if one == alias),
            RelationName::Named(parts) => {
                !qualifier.is_empty()
                    && qualifier
                        .iter()
                        .rev()
                        .zip(parts.iter().rev())
                        .all(|(q, p)| q == p)
            }
            RelationName::Anonymous => false,
        }
    }
}

/// One FROM item: a table, CTE, derived table, function or aliased join.
#[derive(Debug)]
pub(super) struct Relation {
    pub(super) name: RelationName,
    pub(super) columns: Shape,
}

/// What an unqualified name or `*` sees, in `*` order.
#[derive(Debug, Clone)]
pub(super) enum Visible {
    Column(Column),
    /// Columns that are not known: an unqualified name not found elsewhere may be one of
    /// them, and `*` cannot be expanded.
    Opaque,
}

/// Scopes this wide are looked up through an index; narrower ones (nearly all) are
/// scanned, which costs no allocation.
const INDEX_FROM: usize = 16;

/// Folded name → positions, built on the first lookup after a change.
type NameIndex = RefCell<Option<HashMap<String, Vec<usize>>>>;

/// What a lookup of an unqualified name found in one scope.
pub(super) struct Found<'s> {
    /// The one visible column of that name, unless `ambiguous`.
    pub(super) column: Option<&'s Column>,
    /// Several visible columns have that name.
    pub(super) ambiguous: bool,
    /// The scope sees columns that are not known.
    pub(super) opaque: bool,
}

/// The names one SELECT (or DML statement) brings into scope. The lists are private so
/// that every change drops the indexes built over them.
#[derive(Debug, Default)]
pub(super) struct Scope {
    relations: Vec<Relation>,
    visible: Vec<Visible>,
    /// The result columns, while the clauses that may name them by alias (GROUP BY, HAVING,
    /// ORDER BY, DISTINCT ON) are read.
    outputs: Option<Vec<Column>>,
    relation_index: NameIndex,
    visible_index: NameIndex,
    output_index: NameIndex,
    /// Whether `visible` holds an opaque entry, once asked.
    opaque: Cell<Option<bool>>,
}

impl Scope {
    /// Brings a relation into scope: qualified names find it, unqualified names and `*` see
    /// its columns.
    pub(super) fn add(&mut self, name: RelationName, columns: Shape) {
        let visible = self.visible_mut();
        match &columns {
            Some(columns) => visible.extend(columns.iter().cloned().map(Visible::Column)),
            None => visible.push(Visible::Opaque),
        }
        self.relations_mut().push(Relation { name, columns });
    }

    pub(super) fn relations(&self) -> &[Relation] {
        &self.relations
    }

    pub(super) fn relations_mut(&mut self) -> &mut Vec<Relation> {
        self.relation_index.get_mut().take();
        &mut self.relations
    }

    pub(super) fn visible(&self) -> &[Visible] {
        &self.visible
    }

    pub(super) fn visible_mut(&mut self) -> &mut Vec<Visible> {
        self.visible_index.get_mut().take();
        self.opaque.set(None);
        &mut self.visible
    }

    pub(super) fn into_visible(self) -> Vec<Visible> {
        self.visible
    }

    /// Whether the scope sees columns that are not known.
    pub(super) fn is_opaque(&self) -> bool {
        if let Some(opaque) = self.opaque.get() {
            return opaque;
        }
        let opaque = self.visible.iter().any(|v| matches!(v, Visible::Opaque));
        self.opaque.set(Some(opaque));
        opaque
    }

    pub(super) fn outputs(&self) -> Option<&[Column]> {
        self.outputs.as_deref()
    }

    pub(super) fn set_outputs(&mut self, outputs: Option<Vec<Column>>) {
        self.output_index.get_mut().take();
        self.outputs = outputs;
    }

    pub(super) fn take_outputs(&mut self) -> Option<Vec<Column>> {
        self.output_index.get_mut().take();
        self.outputs.take()
    }

    /// The visible columns named `name` (folded).
    pub(super) fn find_visible(&self, driver: Driver, name: &str) -> Found<'_> {
        let mut column: Option<&Column> = None;
        let mut ambiguous = false;
        match positions(
            &self.visible_index,
            &self.visible,
            driver,
            name,
            visible_key,
        ) {
            Some(positions) => {
                for &i in positions.iter() {
                    if let Visible::Column(c) = &self.visible[i] {
                        ambiguous |= column.is_some();
                        column = Some(c);
                    }
                    if ambiguous {
                        break;
                    }
                }
            }
            None => {
                for visible in &self.visible {
                    if let Visible::Column(c) = visible
                        && same(driver, &c.name, name)
                    {
                        ambiguous |= column.is_some();
                        column = Some(c);
                    }
                    if ambiguous {
                        break;
                    }
                }
            }
        }
        Found {
            column: if ambiguous { None } else { column },
            ambiguous,
            opaque: self.is_opaque(),
        }
    }

    /// The result columns named `name` (folded), while they are in scope.
    pub(super) fn find_outputs(&self, driver: Driver, name: &str) -> Vec<&Column> {
        let Some(outputs) = &self.outputs else {
            return Vec::new();
        };
        match positions(&self.output_index, outputs, driver, name, column_key) {
            Some(positions) => positions.iter().map(|&i| &outputs[i]).collect(),
            None => outputs
                .iter()
                .filter(|c| same(driver, &c.name, name))
                .collect(),
        }
    }

    /// The relations `qualifier` (folded parts) names.
    pub(super) fn find_relations(&self, qualifier: &[String]) -> Vec<&Relation> {
        let Some(last) = qualifier.last() else {
            return Vec::new();
        };
        // Relation names are folded already: indexed as they are, whatever the driver.
        let candidates = positions(
            &self.relation_index,
            &self.relations,
            Driver::Postgres,
            last,
            relation_key,
        );
        match candidates {
            Some(positions) => positions
                .iter()
                .map(|&i| &self.relations[i])
                .filter(|r| r.name.is_named_by(qualifier))
                .collect(),
            None => self
                .relations
                .iter()
                .filter(|r| r.name.is_named_by(qualifier))
                .collect(),
        }
    }
}

/// The positions of the items named `name` through `index` (built when missing), or
/// `None` when the list is short enough to scan.
fn positions<'i, T>(
    index: &'i NameIndex,
    items: &[T],
    driver: Driver,
    name: &str,
    key: fn(&T) -> Option<&str>,
) -> Option<Ref<'i, [usize]>> {
    if items.len() < INDEX_FROM {
        return None;
    }
    if index.borrow().is_none() {
        let mut map: HashMap<String, Vec<usize>> = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(k) = key(item) {
                map.entry(fold_name(driver, k)).or_default().push(i);
            }
        }
        *index.borrow_mut() = Some(map);
    }
    Some(Ref::map(index.borrow(), |map| {
        map.as_ref()
            .and_then(|map| map.get(name))
            .map_or(&[][..], Vec::as_slice)
    }))
}

fn visible_key(visible: &Visible) -> Option<&str> {
    match visible {
        Visible::Column(column) => Some(&column.name),
        Visible::Opaque => None,
    }
}

fn column_key(column: &Column) -> Option<&str> {
    Some(&column.name)
}

/// The part of a relation's name every qualifier naming it ends with.
fn relation_key(relation: &Relation) -> Option<&str> {
    match &relation.name {
        RelationName::Alias(alias) => Some(alias),
        RelationName::Named(parts) => parts.last().map(String::as_str),
        RelationName::Anonymous => None,
    }
}

/// A stored name folded as references are, so that `same(d, a, b)` is
/// `fold_name(d, a) == b` for any folded reference `b`.
pub(super) fn fold_name(driver: Driver, name: &str) -> String {
    match driver {
        Driver::Postgres => name.to_owned(),
        Driver::Sqlite => name.to_ascii_lowercase(),
        Driver::MySql => name.to_lowercase(),
    }
}

/// Whether a stored column name and a folded reference name the same column in `driver`
/// (exactly as [`fold_name`] would say, without allocating for ASCII names).
pub(super) fn same(driver: Driver, stored: &str, folded: &str) -> bool {
    match driver {
        Driver::Postgres => stored == folded,
        Driver::Sqlite => stored.eq_ignore_ascii_case(folded) && !has_ascii_upper(folded),
        Driver::MySql if stored.is_ascii() => {
            stored.eq_ignore_ascii_case(folded) && !has_ascii_upper(folded)
        }
        Driver::MySql => stored.to_lowercase() == folded,
    }
}

fn has_ascii_upper(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn tables_are_named_by_any_suffix_of_their_name() {
        let qualified = RelationName::Named(parts(&["public", "customers"]));
        assert!(qualified.is_named_by(&parts(&["customers"])));
        assert!(qualified.is_named_by(&parts(&["public", "customers"])));
        assert!(!qualified.is_named_by(&parts(&["other", "customers"])));
        assert!(!qualified.is_named_by(&[]));
        let plain = RelationName::Named(parts(&["customers"]));
        assert!(plain.is_named_by(&parts(&["public", "customers"])));
        assert!(!plain.is_named_by(&parts(&["orders"])));
    }

    #[test]
    fn wide_scopes_find_the_same_as_narrow_ones() {
        let column = |name: &str| Column {
            name: name.into(),
            derivation: Derivation::default(),
        };
        for width in [3, 40] {
            let mut scope = Scope::default();
            let columns: Vec<Column> = (0..width).map(|i| column(&format!("c{i}"))).collect();
            scope.add(RelationName::Alias("t".to_owned()), Some(columns));
            scope.add(
                RelationName::Named(parts(&["public", "u"])),
                Some(vec![column("C1"), column("x")]),
            );
            let found = scope.find_visible(Driver::Sqlite, "c1");
            assert!(found.ambiguous && found.column.is_none() && !found.opaque);
            let found = scope.find_visible(Driver::Sqlite, "x");
            assert_eq!(found.column.map(|c| &*c.name), Some("x"));
            assert!(!found.ambiguous);
            assert_eq!(scope.find_relations(&parts(&["u"])).len(), 1);
            assert_eq!(scope.find_relations(&parts(&["other", "u"])).len(), 0);
            // A change drops the index.
            scope.visible_mut().push(Visible::Opaque);
            scope.add(RelationName::Alias("v".to_owned()), Some(vec![column("y")]));
            assert!(scope.find_visible(Driver::Sqlite, "y").opaque);
            assert!(scope.find_visible(Driver::Sqlite, "y").column.is_some());
            assert_eq!(scope.find_relations(&parts(&["v"])).len(), 1);
            scope.set_outputs(Some((0..width).map(|i| column(&format!("o{i}"))).collect()));
            assert_eq!(scope.find_outputs(Driver::Sqlite, "o2").len(), 1);
            assert!(scope.find_outputs(Driver::Sqlite, "c2").is_empty());
        }
    }

    #[test]
    fn aliases_hide_the_table_name() {
        let alias = RelationName::Alias("c".to_owned());
        assert!(alias.is_named_by(&parts(&["c"])));
        assert!(!alias.is_named_by(&parts(&["customers"])));
        assert!(!RelationName::Anonymous.is_named_by(&parts(&["s"])));
    }

    #[test]
    fn sources_stay_sorted_and_unique() {
        let mut d = Derivation::base(3);
        d.absorb(Derivation::base(3));
        assert_eq!(d.sources, Sources::One(3));
        d.absorb(Derivation::base(1));
        d.absorb_ref(&Derivation {
            sources: Sources::from_vec(vec![5, 1, 3]),
            unresolved: true,
            computed: false,
        });
        assert_eq!(d.sources.as_slice(), [1, 3, 5]);
        assert!(d.unresolved);
        assert_eq!(Sources::from_vec(vec![2, 2]), Sources::One(2));
    }

    #[test]
    fn names_compare_as_each_engine_does() {
        assert!(same(Driver::Postgres, "email", "email"));
        assert!(!same(Driver::Postgres, "Email", "email"));
        assert!(same(Driver::Sqlite, "Email", "email"));
        assert!(same(Driver::MySql, "ÉMAIL", "émail"));
        assert!(!same(Driver::MySql, "email2", "email"));
        for driver in [Driver::Postgres, Driver::MySql, Driver::Sqlite] {
            for (stored, folded) in [("Email", "email"), ("ÉMAIL", "émail"), ("ÉMAIL", "Émail")]
            {
                assert_eq!(
                    same(driver, stored, folded),
                    fold_name(driver, stored) == folded,
                    "{driver:?} {stored} {folded}"
                );
            }
        }
    }
}
