//! Which of two releases is older, as Sentry decides it: by semantic version when both
//! are `package@version` of the same package with a version that parses, else by when
//! the project first saw them (the `releases` table). The writer uses it to tell a
//! regression ("seen again in a release at or after the one it was resolved in") from
//! an old deployment still running.
//!
//! A version is `MAJOR[.MINOR[.PATCH[.REVISION]]][-PRERELEASE][+BUILD]` (an optional
//! leading `v`), compared as semver 2.0 does: numbers numerically, a pre-release before
//! its release, pre-release identifiers numeric before alphanumeric and field by field,
//! and — as Sentry does — build metadata last, as a tie-breaker. [`order_key`] turns it
//! into bytes whose plain byte order is that order, so the database compares them.

/// The package and the sortable key of a release, or `None` when it is not
/// `package@version` with a version that parses (then first-seen order applies).
pub fn order_key(release: &str) -> Option<(String, Vec<u8>)> {
    let (package, version) = release.rsplit_once('@')?;
    if package.is_empty() {
        return None;
    }
    let version = version.strip_prefix('v').unwrap_or(version);
    let (version, build) = split_off(version, '+');
    let (numbers, pre) = split_off(version, '-');
    let mut key = Vec::with_capacity(48);
    let parts: Vec<&str> = numbers.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    for index in 0..4 {
        let number = match parts.get(index) {
            Some(part) => number(part)?,
            None => 0,
        };
        key.extend_from_slice(&number.to_be_bytes());
    }
    match pre {
        // A release sorts after every pre-release of it.
        None => key.push(2),
        Some(pre) => {
            key.push(1);
            identifiers(pre, &mut key)?;
        }
    }
    match build {
        None => key.push(0),
        Some(build) => {
            key.push(1);
            identifiers(build, &mut key)?;
        }
    }
    Some((package.to_owned(), key))
}

fn split_off(text: &str, at: char) -> (&str, Option<&str>) {
    match text.split_once(at) {
        Some((head, tail)) => (head, Some(tail)),
        None => (text, None),
    }
}

/// A version number: digits only, no leading zero (as semver).
fn number(part: &str) -> Option<u64> {
    let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = part.len() > 1 && part.starts_with('0');
    (digits && !leading_zero)
        .then(|| part.parse().ok())
        .flatten()
}

/// Dot-separated identifiers, each a number (`1` + 8 bytes) or alphanumerics (`2` + the
/// bytes + `0`), ended by `0`: a shorter list sorts before a longer one it begins.
fn identifiers(text: &str, key: &mut Vec<u8>) -> Option<()> {
    for identifier in text.split('.') {
        let valid = !identifier.is_empty()
            && identifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return None;
        }
        match identifier.bytes().all(|b| b.is_ascii_digit()) {
            true => {
                key.push(1);
                let value: u64 = identifier.parse().unwrap_or(u64::MAX);
                key.extend_from_slice(&value.to_be_bytes());
            }
            false => {
                key.push(2);
                key.extend_from_slice(identifier.as_bytes());
                key.push(0);
            }
        }
    }
    key.push(0);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(release: &str) -> Vec<u8> {
        order_key(release)
            .unwrap_or_else(|| panic!("{release} parses"))
            .1
    }

    #[test]
    fn releases_sort_by_semantic_version() {
        let ordered = [
            "app@1.0.0-alpha",
            "app@1.0.0-alpha.1",
            "app@1.0.0-alpha.beta",
            "app@1.0.0-beta",
            "app@1.0.0-beta.2",
            "app@1.0.0-beta.11",
            "app@1.0.0-rc.1",
            "app@1.0.0",
            "app@1.0.0+build.1",
            "app@1.0.9",
            "app@1.0.10",
            "app@1.1",
            "app@1.1.0.1",
            "app@v1.2.0",
            "app@2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(key(pair[0]) < key(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(key("app@1.1"), key("app@1.1.0"));
        assert_eq!(
            order_key("@scope/web@3.1.4").map(|k| k.0),
            Some("@scope/web".to_owned())
        );
    }

    #[test]
    fn what_does_not_parse_has_no_key() {
        for release in [
            "1.2.0",
            "@1.2.0",
            "app@",
            "app@latest",
            "app@1.2.3.4.5",
            "app@01.2.0",
            "app@1.2.0-",
            "app@1.2.0-beta..1",
            "app@1.2.0+",
            "app@abc123def",
        ] {
            assert_eq!(order_key(release), None, "{release}");
        }
    }

    proptest! {
        /// Where the semver crate parses a version, both orders agree (precedence, then
        /// build metadata).
        #[test]
        fn the_order_is_semvers(a in version(), b in version()) {
            let (x, y) = (semver::Version::parse(&a).unwrap(), semver::Version::parse(&b).unwrap());
            let ours = key(&format!("app@{a}")).cmp(&key(&format!("app@{b}")));
            prop_assert_eq!(ours, x.cmp(&y), "{} vs {}", a, b);
        }
    }

    fn version() -> impl Strategy<Value = String> {
        let identifier = prop_oneof!["(0|[1-9][0-9]{0,2})", "[a-z][a-z0-9-]{0,3}"];
        let list = prop::collection::vec(identifier, 1..3).prop_map(|ids| ids.join("."));
        (
            0u64..3,
            0u64..3,
            0u64..12,
            prop::option::of(list.clone()),
            prop::option::of(list),
        )
            .prop_map(|(major, minor, patch, pre, build)| {
                let mut text = format!("{major}.{minor}.{patch}");
                if let Some(pre) = pre {
                    text = format!("{text}-{pre}");
                }
                if let Some(build) = build {
                    text = format!("{text}+{build}");
                }
                text
            })
    }
}
