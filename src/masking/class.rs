//! The classes of sensitive data Gatehouse knows. Every layer speaks this vocabulary:
//! configuration names columns with it, the catalog classifier and the value detectors
//! produce it, strategies are chosen by it, and Cedar sees it as the `classification`
//! attribute of a `Column` (`pii.email`, `secret.token`, …).

use serde::Serialize;

/// One class of sensitive data. `pii.*` classes are personal data: a policy may let some
/// people see them. `secret.*` classes are credentials: nobody sees them unless a policy
/// file says so explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Classification {
    Email,
    Phone,
    /// National identifiers: US SSN and the like.
    NationalId,
    /// Payment card numbers (PAN).
    Card,
    /// Bank accounts: IBAN and account numbers.
    Account,
    BirthDate,
    Address,
    PersonName,
    IpAddress,
    Password,
    /// Bearer tokens, session tokens, JWTs.
    Token,
    /// API keys and cloud access keys.
    ApiKey,
    /// Private-key blocks (PEM).
    PrivateKey,
}

impl Classification {
    pub const ALL: [Classification; 13] = [
        Classification::Email,
        Classification::Phone,
        Classification::NationalId,
        Classification::Card,
        Classification::Account,
        Classification::BirthDate,
        Classification::Address,
        Classification::PersonName,
        Classification::IpAddress,
        Classification::Password,
        Classification::Token,
        Classification::ApiKey,
        Classification::PrivateKey,
    ];

    /// The name configuration, APIs and Cedar use.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Email => "pii.email",
            Classification::Phone => "pii.phone",
            Classification::NationalId => "pii.national_id",
            Classification::Card => "pii.card",
            Classification::Account => "pii.account",
            Classification::BirthDate => "pii.birth_date",
            Classification::Address => "pii.address",
            Classification::PersonName => "pii.person_name",
            Classification::IpAddress => "pii.ip_address",
            Classification::Password => "secret.password",
            Classification::Token => "secret.token",
            Classification::ApiKey => "secret.api_key",
            Classification::PrivateKey => "secret.private_key",
        }
    }

    /// Parses the name [`as_str`](Classification::as_str) gives.
    pub fn parse(name: &str) -> Option<Classification> {
        Classification::ALL
            .into_iter()
            .find(|class| class.as_str() == name)
    }

    /// Credentials rather than personal data.
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            Classification::Password
                | Classification::Token
                | Classification::ApiKey
                | Classification::PrivateKey
        )
    }
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Classification {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_split_into_pii_and_secrets() {
        for class in Classification::ALL {
            assert_eq!(Classification::parse(class.as_str()), Some(class));
            assert_eq!(class.is_secret(), class.as_str().starts_with("secret."));
            assert!(class.is_secret() || class.as_str().starts_with("pii."));
        }
        assert_eq!(Classification::parse("pii.nope"), None);
    }
}
