//! The binding fingerprint: SHA-256 over an unambiguous encoding of who asked to run what,
//! where. Two requests share a fingerprint only if every part is identical, including the
//! statement text byte for byte and each parameter's type.
//!
//! Encoding (version 1): the tag `gatehouse.approval.binding.v1`, then in this order the
//! requester's sub, kind and on-behalf-of, the datasource, the environment, the statement,
//! and the parameters. A string is its byte length as a big-endian u64 followed by its UTF-8
//! bytes; an optional string is a byte 0 (absent) or 1 followed by the string. Parameters
//! are their count as a u64, then per parameter a type byte (0 null, 1 bool, 2 int, 3 float,
//! 4 text, 5 json) and its value: bool one byte, int 8 bytes big-endian two's complement,
//! float its IEEE-754 bits big-endian (so `-0.0` differs from `0.0`), text a string, json
//! the compact JSON text as a string (what the database receives). Length prefixes make
//! every boundary explicit: no choice of values can make two different bindings encode
//! alike.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::datasource::Param;

use super::model::{Binding, Requester};

const TAG: &[u8] = b"gatehouse.approval.binding.v1";

/// The part of a binding that differs from what was approved; named in
/// [`super::ApprovalError::Mismatch`] without quoting any of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingPart {
    /// Someone other than the requester (sub, kind or on-behalf-of differ).
    Requester,
    Datasource,
    Environment,
    Statement,
    Params,
    /// Every part matches but the stored fingerprint does not: the stored approval was
    /// altered, so it is not honoured.
    Fingerprint,
}

impl BindingPart {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingPart::Requester => "requester",
            BindingPart::Datasource => "datasource",
            BindingPart::Environment => "environment",
            BindingPart::Statement => "statement",
            BindingPart::Params => "params",
            BindingPart::Fingerprint => "fingerprint",
        }
    }
}

impl fmt::Display for BindingPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hex SHA-256 of the binding of `requester` to `binding`.
pub(crate) fn fingerprint(requester: &Requester, binding: &Binding) -> String {
    let mut hash = Sha256::new();
    hash.update(TAG);
    string(&mut hash, &requester.sub);
    string(&mut hash, requester.kind.as_str());
    optional(&mut hash, requester.on_behalf_of.as_deref());
    string(&mut hash, &binding.datasource);
    string(&mut hash, &binding.environment);
    string(&mut hash, &binding.statement);
    params(&mut hash, &binding.params);
    hex::encode(hash.finalize())
}

/// The first part in which a claim differs from the approval it names, or `None` when
/// every part is identical. Parameters are compared by their encoding, so `NaN` equals
/// itself and `-0.0` differs from `0.0`, as in the fingerprint.
pub(crate) fn first_difference(
    approved: (&Requester, &Binding),
    claimed: (&Requester, &Binding),
) -> Option<BindingPart> {
    let ((req_a, bind_a), (req_b, bind_b)) = (approved, claimed);
    if (&req_a.sub, req_a.kind, &req_a.on_behalf_of)
        != (&req_b.sub, req_b.kind, &req_b.on_behalf_of)
    {
        Some(BindingPart::Requester)
    } else if bind_a.datasource != bind_b.datasource {
        Some(BindingPart::Datasource)
    } else if bind_a.environment != bind_b.environment {
        Some(BindingPart::Environment)
    } else if bind_a.statement != bind_b.statement {
        Some(BindingPart::Statement)
    } else if encoded_params(&bind_a.params) != encoded_params(&bind_b.params) {
        Some(BindingPart::Params)
    } else {
        None
    }
}

fn encoded_params(list: &[Param]) -> Vec<u8> {
    let mut out = Vec::new();
    params(&mut out, list);
    out
}

/// Where encoded bytes go: the hash, or a buffer for comparing parameters.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

fn length(out: &mut impl Sink, len: usize) {
    // usize is at most 64 bits on every supported target.
    out.put(&(len as u64).to_be_bytes());
}

fn string(out: &mut impl Sink, value: &str) {
    length(out, value.len());
    out.put(value.as_bytes());
}

fn optional(out: &mut impl Sink, value: Option<&str>) {
    match value {
        None => out.put(&[0]),
        Some(value) => {
            out.put(&[1]);
            string(out, value);
        }
    }
}

fn params(out: &mut impl Sink, list: &[Param]) {
    length(out, list.len());
    for param in list {
        match param {
            Param::Null => out.put(&[0]),
            Param::Bool(b) => out.put(&[1, u8::from(*b)]),
            Param::Int(i) => {
                out.put(&[2]);
                out.put(&i.to_be_bytes());
            }
            Param::Float(f) => {
                out.put(&[3]);
                out.put(&f.to_bits().to_be_bytes());
            }
            Param::Text(t) => {
                out.put(&[4]);
                string(out, t);
            }
            Param::Json(v) => {
                out.put(&[5]);
                string(out, &v.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::PrincipalKind;

    fn requester(sub: &str, on_behalf_of: Option<&str>) -> Requester {
        Requester {
            sub: sub.to_owned(),
            kind: PrincipalKind::Agent,
            groups: vec!["eng".to_owned()],
            on_behalf_of: on_behalf_of.map(str::to_owned),
        }
    }

    fn binding(statement: &str, params: Vec<Param>) -> Binding {
        Binding {
            datasource: "shop".to_owned(),
            environment: "prod".to_owned(),
            statement: statement.to_owned(),
            params,
        }
    }

    #[test]
    fn every_part_changes_the_fingerprint() {
        let base_req = requester("agent-7", Some("alice"));
        let base = binding("DELETE FROM t WHERE id = $1", vec![Param::Int(1)]);
        let reference = fingerprint(&base_req, &base);
        assert_eq!(reference.len(), 64);
        assert_eq!(reference, fingerprint(&base_req, &base.clone()));

        let mut kind = base_req.clone();
        kind.kind = PrincipalKind::Human;
        let mut groups = base_req.clone();
        groups.groups.push("ops".to_owned());
        let mut datasource = base.clone();
        datasource.datasource = "shop2".to_owned();
        let mut environment = base.clone();
        environment.environment = "dev".to_owned();

        let variants = [
            (requester("agent-8", Some("alice")), base.clone()),
            (requester("agent-7", None), base.clone()),
            (requester("agent-7", Some("bob")), base.clone()),
            (kind, base.clone()),
            (base_req.clone(), datasource),
            (base_req.clone(), environment),
            (
                base_req.clone(),
                binding("DELETE FROM t WHERE id = $1 ", vec![Param::Int(1)]),
            ),
            (
                base_req.clone(),
                binding("DELETE FROM t WHERE id = $1", vec![Param::Int(2)]),
            ),
            (
                base_req.clone(),
                binding(
                    "DELETE FROM t WHERE id = $1",
                    vec![Param::Text("1".to_owned())],
                ),
            ),
            (
                base_req.clone(),
                binding("DELETE FROM t WHERE id = $1", vec![Param::Float(1.0)]),
            ),
            (
                base_req.clone(),
                binding(
                    "DELETE FROM t WHERE id = $1",
                    vec![Param::Int(1), Param::Null],
                ),
            ),
        ];
        for (req, bind) in &variants {
            assert_ne!(fingerprint(req, bind), reference, "{req:?} {bind:?}");
            assert!(first_difference((&base_req, &base), (req, bind)).is_some());
        }
        // Groups are not part of the binding: policy is evaluated again at execution.
        assert_eq!(fingerprint(&groups, &base), reference);
        assert_eq!(first_difference((&base_req, &base), (&groups, &base)), None);
    }

    #[test]
    fn boundaries_are_unambiguous() {
        let req = requester("a", None);
        // Moving bytes between adjacent strings must change the encoding.
        let mut left = binding("x", vec![]);
        left.datasource = "ab".to_owned();
        left.environment = "c".to_owned();
        let mut right = left.clone();
        right.datasource = "a".to_owned();
        right.environment = "bc".to_owned();
        assert_ne!(fingerprint(&req, &left), fingerprint(&req, &right));
        let one = binding("s", vec![Param::Text("a,b".to_owned())]);
        let two = binding(
            "s",
            vec![Param::Text("a".to_owned()), Param::Text("b".to_owned())],
        );
        assert_ne!(fingerprint(&req, &one), fingerprint(&req, &two));
        let null = binding("s", vec![Param::Null]);
        let json_null = binding("s", vec![Param::Json(json!(null))]);
        let text_null = binding("s", vec![Param::Text("null".to_owned())]);
        assert_ne!(fingerprint(&req, &null), fingerprint(&req, &json_null));
        assert_ne!(fingerprint(&req, &json_null), fingerprint(&req, &text_null));
        let zero = binding("s", vec![Param::Float(0.0)]);
        let negative_zero = binding("s", vec![Param::Float(-0.0)]);
        assert_ne!(fingerprint(&req, &zero), fingerprint(&req, &negative_zero));
    }

    #[test]
    fn first_difference_names_the_part() {
        let req = requester("agent-7", None);
        let base = binding("SELECT 1", vec![Param::Float(f64::NAN)]);
        assert_eq!(first_difference((&req, &base), (&req, &base)), None);
        let mut other = base.clone();
        other.statement = "SELECT 2".to_owned();
        assert_eq!(
            first_difference((&req, &base), (&req, &other)),
            Some(BindingPart::Statement)
        );
        let mut other = base.clone();
        other.params = vec![Param::Float(1.0)];
        assert_eq!(
            first_difference((&req, &base), (&req, &other)),
            Some(BindingPart::Params)
        );
        assert_eq!(
            first_difference((&req, &base), (&requester("x", None), &base)),
            Some(BindingPart::Requester)
        );
    }
}
