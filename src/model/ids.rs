//! Ids that cross module boundaries, as their own types: a project id cannot be passed
//! where an issue id is expected, and a fingerprint is not just any string.
//!
//! Each is transparent to serde (a number or a string in JSON) and to sqlx (a `bigint` or
//! `text` column), so rows and API bodies keep their shapes; the type exists only in Rust.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The number as stored and as the API shows it.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> $name {
                $name(id)
            }
        }
    };
}

numeric_id!(
    /// A project: every event, issue, series and incident belongs to one.
    ProjectId
);
numeric_id!(
    /// An issue: the events that share a fingerprint (or were merged into it).
    IssueId
);
numeric_id!(
    /// An incident: something detection decided a person or a recovery action should see.
    IncidentId
);

/// What groups events into one issue: the hex digest grouping computes (or the one a
/// merge points at). Stored in `issues.fingerprint` and `fingerprint_aliases`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_numbers_and_strings_in_json() {
        assert_eq!(serde_json::to_string(&ProjectId(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<IssueId>("12").unwrap(), IssueId(12));
        let fingerprint = Fingerprint("ab12".into());
        assert_eq!(serde_json::to_string(&fingerprint).unwrap(), "\"ab12\"");
        assert_eq!(IncidentId(3).to_string(), "3");
    }
}
