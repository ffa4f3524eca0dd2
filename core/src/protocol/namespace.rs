//! Stored names in a namespace, as Apache RocketMQ forms them (its `NamespaceUtil`):
//! `NS%topic`, `NS%group`, `%RETRY%NS%group`, `%DLQ%NS%group`. The broker's gRPC edge wraps the
//! names clients send; the admin client wraps the names it is given the same way, because the
//! admin service takes stored names.

/// Separates a namespace from a name.
pub const SEPARATOR: char = '%';
const RETRY_PREFIX: &str = "%RETRY%";
const DLQ_PREFIX: &str = "%DLQ%";

/// The stored name of `name` in `namespace`.
pub fn wrap(namespace: &str, name: &str) -> String {
    if namespace.is_empty() || name.is_empty() {
        return name.to_owned();
    }
    let (prefix, bare) = split_prefix(name);
    let wrapped_prefix = format!("{namespace}{SEPARATOR}");
    if bare.starts_with(&wrapped_prefix) {
        return name.to_owned();
    }
    format!("{prefix}{wrapped_prefix}{bare}")
}

/// The namespace and the name a client knows of a stored name (no namespace: empty).
pub fn unwrap(stored: &str) -> (&str, String) {
    let (prefix, bare) = split_prefix(stored);
    match bare.split_once(SEPARATOR) {
        Some((ns, rest)) if !ns.is_empty() && !rest.is_empty() => (ns, format!("{prefix}{rest}")),
        _ => ("", stored.to_owned()),
    }
}

fn split_prefix(name: &str) -> (&str, &str) {
    for p in [RETRY_PREFIX, DLQ_PREFIX] {
        if let Some(rest) = name.strip_prefix(p) {
            return (p, rest);
        }
    }
    ("", name)
}
