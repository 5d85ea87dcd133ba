//! Who is calling: the [`Principal`] read from a verified token's claims.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::error::{AuthError, IdentityError};

/// What sort of caller a principal is. Policies treat agents differently from people, so
/// the claim is parsed strictly: only these three lowercase words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Human,
    Agent,
    Service,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Human => "human",
            PrincipalKind::Agent => "agent",
            PrincipalKind::Service => "service",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PrincipalKind {
    type Err = IdentityError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "human" => Ok(PrincipalKind::Human),
            "agent" => Ok(PrincipalKind::Agent),
            "service" => Ok(PrincipalKind::Service),
            other => Err(IdentityError::UnknownKind(other.to_owned())),
        }
    }
}

/// The verified caller. Fields are private and the only constructor that serves requests
/// is token verification: holding a `Principal` in the request path means a signature was
/// checked. [`Principal::assumed`] exists for offline questions (`gatehouse explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    sub: String,
    kind: PrincipalKind,
    groups: Vec<String>,
    on_behalf_of: Option<String>,
}

impl Principal {
    /// The token's `sub`: never empty.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The `sub` of the token's `act` claim: the person an agent acts for.
    pub fn on_behalf_of(&self) -> Option<&str> {
        self.on_behalf_of.as_deref()
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// A caller described on the command line by the operator, to ask what policy would
    /// decide for it (`gatehouse explain`, policy fixtures). Never used to serve a
    /// request: the REST and gRPC paths only get principals from verified tokens.
    pub fn assumed(sub: &str, kind: PrincipalKind, groups: &[String]) -> Principal {
        Principal {
            sub: sub.to_owned(),
            kind,
            groups: groups.to_vec(),
            on_behalf_of: None,
        }
    }

    /// For other modules' unit tests, which need a caller without minting a token.
    #[cfg(test)]
    pub(crate) fn for_tests(
        sub: &str,
        kind: PrincipalKind,
        groups: &[&str],
        on_behalf_of: Option<&str>,
    ) -> Principal {
        Principal {
            sub: sub.to_owned(),
            kind,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            on_behalf_of: on_behalf_of.map(str::to_owned),
        }
    }

    /// Reads the principal from claims whose signature and time window were already
    /// checked. Absent optional claims take their defaults; a present claim of the wrong
    /// shape refuses the token rather than being ignored, because a misread `kind` or
    /// `groups` would silently change what policy grants.
    pub(crate) fn from_claims(
        claims: &Map<String, Value>,
        kind_claim: &str,
        groups_claim: &str,
    ) -> Result<Principal, AuthError> {
        let sub = match claims.get("sub") {
            None => return Err(AuthError::MissingClaim("sub".to_owned())),
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            Some(_) => {
                return Err(AuthError::invalid_claim(
                    "sub",
                    "must be a non-empty string",
                ));
            }
        };
        let kind = match claims.get(kind_claim) {
            None => PrincipalKind::Human,
            Some(Value::String(kind)) => kind
                .parse()
                .map_err(|_| AuthError::invalid_claim(kind_claim, KIND_EXPECTED))?,
            Some(_) => return Err(AuthError::invalid_claim(kind_claim, KIND_EXPECTED)),
        };
        let groups = match claims.get(groups_claim) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(group) => Ok(group.clone()),
                    _ => Err(AuthError::invalid_claim(groups_claim, GROUPS_EXPECTED)),
                })
                .collect::<Result<_, _>>()?,
            // Some IdPs (OAuth `scope` style) emit one space-separated string.
            Some(Value::String(joined)) => joined.split_whitespace().map(str::to_owned).collect(),
            Some(_) => return Err(AuthError::invalid_claim(groups_claim, GROUPS_EXPECTED)),
        };
        // RFC 8693 `act`: an object whose `sub` names the other party of a delegation.
        // Nested `act` chains (`act.act`) are not followed: policy sees one hop.
        let on_behalf_of = match claims.get("act") {
            None => None,
            Some(Value::Object(act)) => match act.get("sub") {
                Some(Value::String(sub)) if !sub.is_empty() => Some(sub.clone()),
                _ => return Err(AuthError::invalid_claim("act", ACT_EXPECTED)),
            },
            Some(_) => return Err(AuthError::invalid_claim("act", ACT_EXPECTED)),
        };
        Ok(Principal {
            sub,
            kind,
            groups,
            on_behalf_of,
        })
    }
}

const KIND_EXPECTED: &str = "must be one of human, agent or service";
const GROUPS_EXPECTED: &str = "must be an array of strings or one space-separated string";
const ACT_EXPECTED: &str = "must be an object with a non-empty `sub`";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(claims: Value) -> Result<Principal, AuthError> {
        let Value::Object(map) = claims else {
            panic!("claims must be an object")
        };
        Principal::from_claims(&map, "kind", "groups")
    }

    #[test]
    fn kind_parses_only_the_three_lowercase_words() {
        for kind in [
            PrincipalKind::Human,
            PrincipalKind::Agent,
            PrincipalKind::Service,
        ] {
            assert_eq!(kind.as_str().parse::<PrincipalKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        for bad in ["Human", "AGENT", "admin", "", " human"] {
            let err = bad.parse::<PrincipalKind>().unwrap_err().to_string();
            assert!(err.contains("expected human, agent or service"), "{err}");
        }
    }

    #[test]
    fn defaults_when_optional_claims_are_absent() {
        let p = read(json!({"sub": "alice"})).unwrap();
        assert_eq!(p.sub(), "alice");
        assert_eq!(p.kind(), PrincipalKind::Human);
        assert!(p.groups().is_empty());
        assert_eq!(p.on_behalf_of(), None);
    }

    #[test]
    fn groups_in_both_shapes() {
        let array = read(json!({"sub": "a", "groups": ["eng", "ops"]})).unwrap();
        let joined = read(json!({"sub": "a", "groups": " eng  ops "})).unwrap();
        assert_eq!(array.groups(), ["eng", "ops"]);
        assert_eq!(array, joined);
        assert!(array.in_group("ops"));
        assert!(!array.in_group("op"));
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let cases = [
            (json!({}), AuthError::MissingClaim("sub".into())),
            (
                json!({"sub": ""}),
                AuthError::invalid_claim("sub", "must be a non-empty string"),
            ),
            (
                json!({"sub": 7}),
                AuthError::invalid_claim("sub", "must be a non-empty string"),
            ),
            (
                json!({"sub": "a", "kind": "admin"}),
                AuthError::invalid_claim("kind", KIND_EXPECTED),
            ),
            (
                json!({"sub": "a", "kind": null}),
                AuthError::invalid_claim("kind", KIND_EXPECTED),
            ),
            (
                json!({"sub": "a", "groups": 42}),
                AuthError::invalid_claim("groups", GROUPS_EXPECTED),
            ),
            (
                json!({"sub": "a", "groups": ["a", 1]}),
                AuthError::invalid_claim("groups", GROUPS_EXPECTED),
            ),
            (
                json!({"sub": "a", "groups": {"a": 1}}),
                AuthError::invalid_claim("groups", GROUPS_EXPECTED),
            ),
            (
                json!({"sub": "a", "act": "bob"}),
                AuthError::invalid_claim("act", ACT_EXPECTED),
            ),
            (
                json!({"sub": "a", "act": {"name": "bob"}}),
                AuthError::invalid_claim("act", ACT_EXPECTED),
            ),
            (
                json!({"sub": "a", "act": {"sub": ""}}),
                AuthError::invalid_claim("act", ACT_EXPECTED),
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(read(claims.clone()).unwrap_err(), expected, "{claims}");
        }
    }

    #[test]
    fn act_sub_is_on_behalf_of() {
        let p = read(json!({"sub": "agent-7", "kind": "agent", "act": {"sub": "alice", "act": {"sub": "x"}}}))
            .unwrap();
        assert_eq!(p.kind(), PrincipalKind::Agent);
        assert_eq!(p.on_behalf_of(), Some("alice"));
    }
}
