//! Why a policy set could not be loaded. Each problem points into a file, so an operator
//! can go straight to the line; `serve` stops on these at start-up, a reload reports them
//! and keeps the set in force.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax errors, schema violations and annotation mistakes, all of them at once.
    #[error("{}", Problems(problems))]
    Invalid { problems: Vec<PolicyProblem> },
    #[error("the policy files ({files}) hold no policies; every statement would be denied")]
    Empty { files: String },
    /// The embedded schema does not parse: a defect of this build, caught by its tests.
    #[error("the built-in Cedar schema is invalid: {0}")]
    Schema(String),
}

/// One mistake in a policy file, located where Cedar (or Gatehouse's annotation checks)
/// found it. Lines and columns count from 1; columns count characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

struct Problems<'a>(&'a [PolicyProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "invalid policy: {one}"),
            many => {
                write!(f, "{} problems in the policies:", many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}
