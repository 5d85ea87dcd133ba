//! Why an approval operation was refused. Each error has a stable [`ApprovalError::code`]
//! the transports return as the problem code.

use uuid::Uuid;

use super::fingerprint::BindingPart;
use super::model::Status;

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval {0} does not exist")]
    NotFound(Uuid),
    #[error("approval {0} has expired")]
    Expired(Uuid),
    #[error("approval {id} was already used (it is {status}); an approval runs once")]
    Used { id: Uuid, status: Status },
    #[error("approval {id} does not cover this request: {part} not as approved")]
    Mismatch { id: Uuid, part: BindingPart },
    #[error("only members of {} may decide approval {id}", groups.join(", "))]
    NotAnApprover { id: Uuid, groups: Vec<String> },
    #[error("approval {0} was requested by you or on your behalf; someone else must decide it")]
    SelfApproval(Uuid),
    #[error("approval {id} is {status}, no longer pending")]
    NotPending { id: Uuid, status: Status },
    #[error("you already voted on approval {0}; each approver votes once")]
    AlreadyVoted(Uuid),
    /// An execution result for an approval nobody claimed: a caller bug.
    #[error("approval {id} is {status}, not executing")]
    NotExecuting { id: Uuid, status: Status },
    #[error("invalid approval request: {0}")]
    Invalid(&'static str),
    #[error("approval store query failed: {0}")]
    Store(#[from] sqlx::Error),
    #[error("approval {id} is stored in a form this version cannot read: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("approval events: {0}")]
    Events(String),
}

impl ApprovalError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApprovalError::NotFound(_) => "approval_not_found",
            ApprovalError::Expired(_) => "approval_expired",
            ApprovalError::Used { .. } => "approval_used",
            ApprovalError::Mismatch { .. } => "approval_mismatch",
            ApprovalError::NotAnApprover { .. } => "not_an_approver",
            ApprovalError::SelfApproval(_) => "self_approval",
            ApprovalError::NotPending { .. } => "approval_not_pending",
            ApprovalError::AlreadyVoted(_) => "already_voted",
            ApprovalError::NotExecuting { .. } => "approval_not_executing",
            ApprovalError::Invalid(_) => "approval_invalid",
            ApprovalError::Store(_) | ApprovalError::Corrupt { .. } => "approval_store",
            ApprovalError::Events(_) => "approval_events",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_part_but_never_the_statement() {
        let id = Uuid::nil();
        let err = ApprovalError::Mismatch {
            id,
            part: BindingPart::Params,
        };
        assert_eq!(err.code(), "approval_mismatch");
        assert_eq!(
            err.to_string(),
            format!("approval {id} does not cover this request: params not as approved")
        );
        let err = ApprovalError::NotAnApprover {
            id,
            groups: vec!["dba".to_owned(), "sre".to_owned()],
        };
        assert!(err.to_string().starts_with("only members of dba, sre may"));
    }
}
