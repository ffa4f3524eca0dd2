//! Namespaces (`x-mq-namespace`, or a resource's `resource_namespace`): they isolate topics and
//! groups by naming them as Apache RocketMQ stores them (its `NamespaceUtil`): `NS%topic`,
//! `NS%group`, `%RETRY%NS%group`, `%DLQ%NS%group`. The gRPC edge wraps every name it receives
//! and unwraps every name it sends back, so the broker below only sees stored names.

use crate::broker::error::Result;
use crate::protocol::v2::{MessageQueue, Resource};

pub use crate::protocol::namespace::{SEPARATOR, unwrap, wrap};

/// Checks a namespace: empty (none), or letters, digits, `_` and `-`.
pub fn validate(namespace: &str) -> Result<()> {
    Ok(crate::protocol::validate::namespace(namespace)?)
}

/// The stored name of a request's resource: its own namespace, else the request's header.
pub fn stored_name(resource: Option<&Resource>, header: &str) -> String {
    let Some(r) = resource else { return String::new() };
    let ns = if r.resource_namespace.is_empty() { header } else { &r.resource_namespace };
    wrap(ns, &r.name)
}

/// Rewrites a request's resource to its stored name (namespace folded in).
pub fn wrap_resource(resource: &mut Option<Resource>, header: &str) {
    if let Some(r) = resource.as_mut() {
        r.name = stored_name(Some(r), header);
        r.resource_namespace.clear();
    }
}

/// Rewrites a request's group and message queue topic to their stored names.
pub fn wrap_queue(group: &mut Option<Resource>, queue: Option<&mut MessageQueue>, header: &str) {
    wrap_resource(group, header);
    if let Some(q) = queue {
        wrap_resource(&mut q.topic, header);
    }
}

/// The resource a client sees for a stored name.
pub fn resource(stored: &str) -> Resource {
    let (ns, name) = unwrap(stored);
    Resource { resource_namespace: ns.to_owned(), name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v2::Code;

    #[test]
    fn wraps_as_apache_stores_names() {
        assert_eq!(wrap("", "t"), "t");
        assert_eq!(wrap("ns1", "t"), "ns1%t");
        assert_eq!(wrap("ns1", "ns1%t"), "ns1%t");
        assert_eq!(wrap("ns1", "%DLQ%g"), "%DLQ%ns1%g");
        assert_eq!(wrap("ns1", "%RETRY%g"), "%RETRY%ns1%g");
        assert_eq!(unwrap("ns1%t"), ("ns1", "t".to_owned()));
        assert_eq!(unwrap("%DLQ%ns1%g"), ("ns1", "%DLQ%g".to_owned()));
        assert_eq!(unwrap("%DLQ%g"), ("", "%DLQ%g".to_owned()));
        assert_eq!(unwrap("t"), ("", "t".to_owned()));
        let r = Resource { resource_namespace: String::new(), name: "t".into() };
        assert_eq!(stored_name(Some(&r), "hdr"), "hdr%t");
        let r = Resource { resource_namespace: "own".into(), name: "t".into() };
        assert_eq!(stored_name(Some(&r), "hdr"), "own%t");
        assert!(validate("a-b_1").is_ok() && validate("").is_ok());
        assert_eq!(validate("a%b").unwrap_err().code, Code::BadRequest);
    }
}
