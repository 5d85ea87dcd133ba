//! Masking a typed query result in place, from a per-column plan the gateway builds out of
//! lineage and policy.
//!
//! Two layers, in this order, for every cell:
//! 1. **Column.** A column whose lineage carries a class the caller may not see raw is
//!    masked whole with that class's strategy. With several such classes the strictest
//!    strategy wins: `null` > `redact` > `hmac` > `partial` (the one that keeps least of
//!    the value; see `Strategy::strictness`), ties going to the first class in
//!    [`Classification`] order. A column whose lineage could not be resolved is redacted
//!    whatever its values (`[redacted:unresolved]` for text, NULL otherwise).
//! 2. **Spans.** Every string the first layer left alone (text values, every string inside
//!    a JSON value, keys included, and text inside arrays) goes through the value
//!    detectors; each entity found whose class the caller may not see raw on that column is
//!    replaced in place with its class's strategy, keeping the surrounding text (`null`,
//!    which cannot apply to part of a string, redacts).
//!
//! NULL is never masked or counted: there is nothing to hide. Anything inconsistent (a
//! plan that does not match the columns, a row of the wrong width) is an error, never a
//! pass-through: the gateway fails the request rather than return raw values.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::datasource::{QueryResult, Value};
use crate::masking::strategy::{Masker, Strategy, UNRESOLVED, redacted};
use crate::masking::{Classification, detect};

/// What the gateway decided about one result column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnPlan {
    /// Every class the column derives from, through lineage.
    pub classes: BTreeSet<Classification>,
    /// Lineage could not be resolved: mask whatever the values are.
    pub fail_closed: bool,
    /// Classes the caller may see raw on this column (policy's `unmask`).
    pub unmasked: BTreeSet<Classification>,
    /// The value is computed from its sources (a function, operator, cast, CASE,
    /// subquery), not a stored value: a partial mask or a token of a computed value can
    /// reveal its source (`reverse(card)` keeps the *first* digits in "the last four";
    /// tokens of `substr(ssn, 1, 1)` sort rows by digit), so such columns are at least
    /// redacted.
    pub computed: bool,
}

/// What masking did to one column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColumnMasking {
    /// Any value of the column was changed.
    pub masked: bool,
    /// The classes that were masked in it (by column or by span), sorted; `unresolved`
    /// for a fail-closed column. Classes the caller saw raw are not listed.
    pub classifications: Vec<String>,
}

/// What masking did to a result, for the response and the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MaskReport {
    /// One per result column, in order.
    pub columns: Vec<ColumnMasking>,
    /// Replacements made: one per cell masked whole, one per span masked inside a string.
    pub masked_values: u64,
    /// The same replacements by class (a cell masked whole counts under the class whose
    /// strategy applied); fail-closed cells have no class and are not in here.
    pub by_class: BTreeMap<Classification, u64>,
}

/// The result and the plan do not fit together; nothing may be returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("the masking plan has {plans} columns but the result has {columns}")]
    PlanMismatch { plans: usize, columns: usize },
    #[error("result row {row} has {width} values but the result has {columns} columns")]
    RowWidth {
        row: usize,
        width: usize,
        columns: usize,
    },
}

/// The first layer's decision for a column.
enum ColumnAction<'a> {
    FailClosed,
    Whole {
        class: Classification,
        strategy: Strategy,
        /// Every class that made the column masked, for the report.
        masked: Vec<Classification>,
    },
    Spans {
        unmasked: &'a BTreeSet<Classification>,
    },
}

/// Counts for one column and the whole result.
#[derive(Default)]
struct Tally {
    values: u64,
    by_class: BTreeMap<Classification, u64>,
}

impl Tally {
    fn count(&mut self, class: Option<Classification>, classes: &mut BTreeSet<&'static str>) {
        self.values += 1;
        if let Some(class) = class {
            *self.by_class.entry(class).or_default() += 1;
            classes.insert(class.as_str());
        }
    }
}

impl Masker {
    /// Masks `result` in place following `plans` (one per column, in order); see the
    /// module docs for the rules. Columns masked with `hmac` report the type `text`.
    pub fn mask_result(
        &self,
        result: &mut QueryResult,
        plans: &[ColumnPlan],
    ) -> Result<MaskReport, MaskError> {
        let width = result.columns.len();
        if plans.len() != width {
            return Err(MaskError::PlanMismatch {
                plans: plans.len(),
                columns: width,
            });
        }
        if let Some((row, values)) = result
            .rows
            .iter()
            .enumerate()
            .find(|(_, values)| values.len() != width)
        {
            return Err(MaskError::RowWidth {
                row,
                width: values.len(),
                columns: width,
            });
        }

        let actions: Vec<ColumnAction<'_>> = plans.iter().map(|plan| self.action(plan)).collect();
        let mut tally = Tally::default();
        let mut found: Vec<BTreeSet<&'static str>> = vec![BTreeSet::new(); width];
        for row in &mut result.rows {
            for ((value, action), classes) in row.iter_mut().zip(&actions).zip(&mut found) {
                self.mask_cell(value, action, &mut tally, classes);
            }
        }

        for (column, action) in result.columns.iter_mut().zip(&actions) {
            if let ColumnAction::Whole {
                strategy: Strategy::Hmac,
                ..
            } = action
            {
                "text".clone_into(&mut column.type_name);
            }
        }
        let columns = found
            .into_iter()
            .map(|classes| ColumnMasking {
                masked: !classes.is_empty(),
                classifications: classes.into_iter().map(str::to_owned).collect(),
            })
            .collect();
        Ok(MaskReport {
            columns,
            masked_values: tally.values,
            by_class: tally.by_class,
        })
    }

    /// `text` with every detected entity replaced by its class's redaction placeholder,
    /// whoever asks: for database error messages and the statement text stored in the
    /// audit trail, where nobody is entitled to raw values.
    pub fn scrub(&self, text: &str) -> String {
        let findings = detect::scan(text);
        if findings.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for finding in findings {
            out.push_str(&text[last..finding.start]);
            out.push_str(&redacted(finding.class.as_str()));
            last = finding.end;
        }
        out.push_str(&text[last..]);
        out
    }

    fn action<'a>(&self, plan: &'a ColumnPlan) -> ColumnAction<'a> {
        if plan.fail_closed {
            return ColumnAction::FailClosed;
        }
        let masked: Vec<Classification> =
            plan.classes.difference(&plan.unmasked).copied().collect();
        // `masked` is sorted, and `max_by_key` keeps the last maximum: iterate backwards
        // so ties go to the first class.
        match masked
            .iter()
            .rev()
            .map(|&class| (class, self.strategy(class)))
            .max_by_key(|(_, strategy)| strategy.strictness())
        {
            Some((class, strategy)) => ColumnAction::Whole {
                class,
                strategy: if plan.computed && strategy.strictness() < Strategy::Redact.strictness()
                {
                    Strategy::Redact
                } else {
                    strategy
                },
                masked,
            },
            None => ColumnAction::Spans {
                unmasked: &plan.unmasked,
            },
        }
    }

    fn mask_cell(
        &self,
        value: &mut Value,
        action: &ColumnAction<'_>,
        tally: &mut Tally,
        classes: &mut BTreeSet<&'static str>,
    ) {
        if matches!(value, Value::Null) {
            return;
        }
        match action {
            ColumnAction::FailClosed => {
                *value = match value {
                    Value::Text(_) => Value::Text(redacted(UNRESOLVED)),
                    _ => Value::Null,
                };
                tally.count(None, classes);
                classes.insert(UNRESOLVED);
            }
            ColumnAction::Whole {
                class,
                strategy,
                masked,
            } => {
                *value = self.mask_value(*class, *strategy, value);
                tally.count(Some(*class), classes);
                classes.extend(masked.iter().map(|c| c.as_str()));
            }
            ColumnAction::Spans { unmasked } => {
                let mut spans = Spans {
                    masker: self,
                    unmasked,
                    tally,
                    classes,
                };
                spans.value(value);
            }
        }
    }
}

/// The second layer over one cell.
struct Spans<'a> {
    masker: &'a Masker,
    unmasked: &'a BTreeSet<Classification>,
    tally: &'a mut Tally,
    classes: &'a mut BTreeSet<&'static str>,
}

impl Spans<'_> {
    fn value(&mut self, value: &mut Value) {
        match value {
            Value::Text(text) => {
                if let Some(masked) = self.text(text) {
                    *text = masked;
                }
            }
            Value::Bytes(bytes) => {
                let keep = self.bytes(bytes);
                if !keep {
                    *value = Value::Null;
                }
            }
            Value::Json(json) => self.json(json),
            Value::Array(items) => items.iter_mut().for_each(|item| self.value(item)),
            _ => {}
        }
    }

    /// Bytes often hold text (a document, a UTF-8 blob, a serialised record) and are
    /// scanned as text: UTF-8 gets its entities masked in place; anything else in which
    /// an entity shows up between the undecodable bytes is withheld whole (`false`), since
    /// masking inside it would corrupt it.
    fn bytes(&mut self, bytes: &mut Vec<u8>) -> bool {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                if let Some(masked) = self.text(text) {
                    *bytes = masked.into_bytes();
                }
                true
            }
            Err(_) => self.text(&String::from_utf8_lossy(bytes)).is_none(),
        }
    }

    fn json(&mut self, json: &mut serde_json::Value) {
        match json {
            serde_json::Value::String(text) => {
                if let Some(masked) = self.text(text) {
                    *text = masked;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|item| self.json(item)),
            serde_json::Value::Object(map) => {
                map.values_mut().for_each(|item| self.json(item));
                if map.keys().any(|key| detect::contains_sensitive(key)) {
                    self.object_keys(map);
                }
            }
            serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {
            }
        }
    }

    /// Keys can hold entities too (`{"ann@example.com": 3}`). A masked key that collides
    /// with another key gets a ` #n` suffix, so no entry is lost; keys that were not
    /// masked keep their names, and entries keep their order.
    fn object_keys(&mut self, map: &mut serde_json::Map<String, serde_json::Value>) {
        let entries: Vec<(Option<String>, String, serde_json::Value)> = std::mem::take(map)
            .into_iter()
            .map(|(key, item)| (self.text(&key), key, item))
            .collect();
        let mut taken: BTreeSet<String> = entries
            .iter()
            .filter(|(masked, _, _)| masked.is_none())
            .map(|(_, key, _)| key.clone())
            .collect();
        for (masked, key, item) in entries {
            let key = match masked {
                None => key,
                Some(masked) => {
                    let mut unique = masked.clone();
                    let mut n = 2;
                    while taken.contains(&unique) {
                        unique = format!("{masked} #{n}");
                        n += 1;
                    }
                    taken.insert(unique.clone());
                    unique
                }
            };
            map.insert(key, item);
        }
    }

    /// `text` with the entities the caller may not see replaced, or `None` if unchanged.
    fn text(&mut self, text: &str) -> Option<String> {
        let findings: Vec<detect::Finding> = detect::scan(text)
            .into_iter()
            .filter(|f| !self.unmasked.contains(&f.class))
            .collect();
        if findings.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for finding in findings {
            out.push_str(&text[last..finding.start]);
            let strategy = self.masker.strategy(finding.class);
            out.push_str(&self.masker.mask_text(
                finding.class,
                strategy,
                &text[finding.start..finding.end],
            ));
            last = finding.end;
            self.tally.count(Some(finding.class), self.classes);
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasource::Column;
    use crate::masking::HmacKey;
    use Classification as C;
    use serde_json::json;

    fn masker(configured: &[(&str, Strategy)]) -> Masker {
        let configured = configured
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        Masker::new(&configured, HmacKey::generate().unwrap()).unwrap()
    }

    fn result(columns: &[(&str, &str)], rows: Vec<Vec<Value>>) -> QueryResult {
        QueryResult {
            columns: columns
                .iter()
                .map(|(name, type_name)| Column {
                    name: (*name).to_owned(),
                    type_name: (*type_name).to_owned(),
                })
                .collect(),
            rows,
            truncated: false,
            rows_affected: 0,
        }
    }

    fn plan(classes: &[Classification]) -> ColumnPlan {
        ColumnPlan {
            classes: classes.iter().copied().collect(),
            ..ColumnPlan::default()
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    fn masking(masked: bool, classes: &[&str]) -> ColumnMasking {
        ColumnMasking {
            masked,
            classifications: classes.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn computed_columns_are_redacted_not_partially_masked_or_tokenised() {
        let m = masker(&[("pii.email", Strategy::Hmac)]);
        // `reverse(card)`: "the last four" of the reversed value are the first four.
        let mut r = result(
            &[("r", "text"), ("e", "text"), ("stored", "text")],
            vec![vec![
                text("1111 1111 1111 1114"),
                text("moc.elpmaxe@nna"),
                text("4111 1111 1111 1111"),
            ]],
        );
        let computed = |class| ColumnPlan {
            computed: true,
            ..plan(&[class])
        };
        let plans = [computed(C::Card), computed(C::Email), plan(&[C::Card])];
        m.mask_result(&mut r, &plans).unwrap();
        assert_eq!(r.rows[0][0], text("[redacted:pii.card]"));
        assert_eq!(r.rows[0][1], text("[redacted:pii.email]"));
        // A stored value keeps its configured strategy.
        assert_eq!(r.rows[0][2], text("**** **** **** 1111"));
    }

    #[test]
    fn classified_columns_are_masked_whole_and_free_text_by_span() {
        let m = masker(&[("pii.card", Strategy::Hmac)]);
        let mut r = result(
            &[
                ("id", "int8"),
                ("email", "text"),
                ("card", "int8"),
                ("notes", "text"),
            ],
            vec![
                vec![
                    Value::Int(1),
                    text("ann@example.com"),
                    Value::Int(4_111_111_111_111_111),
                    text("Call +44 20 7946 0958 or write to bob@example.org, ta."),
                ],
                vec![
                    Value::Int(2),
                    Value::Null,
                    Value::Null,
                    text("nothing to see"),
                ],
            ],
        );
        let plans = [plan(&[]), plan(&[C::Email]), plan(&[C::Card]), plan(&[])];
        let report = m.mask_result(&mut r, &plans).unwrap();

        assert_eq!(r.rows[0][0], Value::Int(1));
        assert_eq!(r.rows[0][1], text("a***@example.com"));
        let Value::Text(token) = &r.rows[0][2] else {
            panic!("hmac gives text: {:?}", r.rows[0][2]);
        };
        assert!(token.starts_with("tok_"), "{token}");
        assert_eq!(r.columns[2].type_name, "text");
        assert_eq!(r.columns[1].type_name, "text");
        assert_eq!(r.columns[0].type_name, "int8");
        assert_eq!(
            r.rows[0][3],
            text("Call +** ** **** **58 or write to b***@example.org, ta.")
        );
        assert_eq!(
            r.rows[1],
            vec![
                Value::Int(2),
                Value::Null,
                Value::Null,
                text("nothing to see")
            ]
        );

        assert_eq!(
            report.columns,
            vec![
                masking(false, &[]),
                masking(true, &["pii.email"]),
                masking(true, &["pii.card"]),
                masking(true, &["pii.email", "pii.phone"]),
            ]
        );
        assert_eq!(report.masked_values, 4);
        assert_eq!(
            report.by_class,
            BTreeMap::from([(C::Email, 2), (C::Card, 1), (C::Phone, 1)])
        );
    }

    #[test]
    fn json_values_are_masked_at_every_depth_keys_included() {
        let m = masker(&[]);
        let document = json!({
            "customer": {"email": "ann@example.com", "tags": ["vip", "ssn 123-45-6789"]},
            "a***@example.com": 2,
            "ann@example.com": 1,
            "count": 3,
            "ok": true,
        });
        let mut r = result(
            &[("doc", "jsonb"), ("items", "text[]")],
            vec![vec![
                Value::Json(document),
                Value::Array(vec![text("card 4111 1111 1111 1111"), Value::Int(7)]),
            ]],
        );
        let report = m.mask_result(&mut r, &[plan(&[]), plan(&[])]).unwrap();
        assert_eq!(
            r.rows[0][0],
            Value::Json(json!({
                "customer": {"email": "a***@example.com", "tags": ["vip", "ssn ***-**-6789"]},
                // The key already there keeps its name; the masked one gets a suffix.
                "a***@example.com": 2,
                "a***@example.com #2": 1,
                "count": 3,
                "ok": true,
            }))
        );
        assert_eq!(
            r.rows[0][1],
            Value::Array(vec![text("card **** **** **** 1111"), Value::Int(7)])
        );
        assert_eq!(report.masked_values, 4);
        assert_eq!(
            report.columns,
            vec![
                masking(true, &["pii.email", "pii.national_id"]),
                masking(true, &["pii.card"]),
            ]
        );
    }

    #[test]
    fn unmasked_classes_are_honoured_by_column_and_by_span() {
        let m = masker(&[]);
        let unmasked: BTreeSet<Classification> = [C::Email].into();
        let mut r = result(
            &[("email", "text"), ("contact", "text"), ("notes", "text")],
            vec![vec![
                text("ann@example.com"),
                text("ann@example.com"),
                text("ann@example.com, 123-45-6789"),
            ]],
        );
        let plans = [
            ColumnPlan {
                unmasked: unmasked.clone(),
                ..plan(&[C::Email])
            },
            // Email may be seen, the column's other class may not: masked whole.
            ColumnPlan {
                unmasked: unmasked.clone(),
                ..plan(&[C::Email, C::PersonName])
            },
            ColumnPlan {
                unmasked,
                ..plan(&[])
            },
        ];
        let report = m.mask_result(&mut r, &plans).unwrap();
        assert_eq!(
            r.rows[0],
            vec![
                text("ann@example.com"),
                text("[redacted:pii.person_name]"),
                text("ann@example.com, ***-**-6789"),
            ]
        );
        assert_eq!(
            report.columns,
            vec![
                masking(false, &[]),
                masking(true, &["pii.person_name"]),
                masking(true, &["pii.national_id"]),
            ]
        );
    }

    #[test]
    fn the_strictest_strategy_wins_on_a_column_of_several_classes() {
        let m = masker(&[
            ("pii.person_name", Strategy::Hmac),
            ("pii.phone", Strategy::Null),
        ]);
        let mut r = result(
            &[("a", "text"), ("b", "text")],
            vec![vec![text("Ann Lee 555-0104"), text("Ann Lee")]],
        );
        let plans = [
            plan(&[C::Email, C::PersonName, C::Phone]),
            plan(&[C::Email, C::PersonName]),
        ];
        let report = m.mask_result(&mut r, &plans).unwrap();
        assert_eq!(r.rows[0][0], Value::Null);
        let Value::Text(token) = &r.rows[0][1] else {
            panic!("hmac beats partial: {:?}", r.rows[0][1]);
        };
        assert!(token.starts_with("tok_"));
        assert_eq!(r.columns[0].type_name, "text");
        assert_eq!(
            report.columns[0],
            masking(true, &["pii.email", "pii.person_name", "pii.phone"])
        );
        assert_eq!(
            report.by_class,
            BTreeMap::from([(C::Phone, 1), (C::PersonName, 1)])
        );
    }

    #[test]
    fn unresolved_lineage_fails_closed_whatever_the_value() {
        let m = masker(&[]);
        let mut r = result(
            &[("x", "text"), ("n", "int8")],
            vec![
                vec![text("harmless"), Value::Int(42)],
                vec![Value::Null, Value::Null],
            ],
        );
        let closed = ColumnPlan {
            fail_closed: true,
            unmasked: Classification::ALL.into_iter().collect(),
            ..plan(&[])
        };
        let report = m.mask_result(&mut r, &[closed.clone(), closed]).unwrap();
        assert_eq!(r.rows[0], vec![text("[redacted:unresolved]"), Value::Null]);
        assert_eq!(r.rows[1], vec![Value::Null, Value::Null]);
        assert_eq!(report.masked_values, 2);
        assert!(report.by_class.is_empty());
        assert_eq!(report.columns, vec![masking(true, &["unresolved"]); 2]);
    }

    #[test]
    fn a_plan_that_does_not_fit_the_result_is_an_error() {
        let m = masker(&[]);
        let mut r = result(
            &[("a", "text"), ("b", "text")],
            vec![vec![text("ann@example.com")]],
        );
        assert_eq!(
            m.mask_result(&mut r, &[plan(&[])]),
            Err(MaskError::PlanMismatch {
                plans: 1,
                columns: 2
            })
        );
        let err = m.mask_result(&mut r, &[plan(&[]), plan(&[])]).unwrap_err();
        assert_eq!(
            err,
            MaskError::RowWidth {
                row: 0,
                width: 1,
                columns: 2
            }
        );
        // Nothing was masked half-way: the caller must not use the result at all, and it
        // is untouched.
        assert_eq!(r.rows[0][0], text("ann@example.com"));
        let mut empty = result(&[], Vec::new());
        assert_eq!(
            m.mask_result(&mut empty, &[]).unwrap(),
            MaskReport::default()
        );
    }

    #[test]
    fn scrub_redacts_every_entity_for_everyone() {
        let m = masker(&[("pii", Strategy::Partial)]);
        assert_eq!(
            m.scrub("duplicate key value (email)=(ann@example.com) violates \"uq\"; card 4111111111111111"),
            "duplicate key value (email)=([redacted:pii.email]) violates \"uq\"; card [redacted:pii.card]"
        );
        assert_eq!(
            m.scrub("relation \"orders\" does not exist"),
            "relation \"orders\" does not exist"
        );
    }
}
