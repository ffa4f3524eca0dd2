//! `offset_msg_id`: the broker-assigned id that locates a message with no index: store ip
//! (4 or 16 bytes) + port (4 bytes) + CommitLog offset (8 bytes), big-endian, upper-case hex
//! (32 characters for IPv4), as RocketMQ's `MessageDecoder.createMessageId`.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::storage::error::{Result, StorageError};

/// Encodes the id of the message at `offset` stored by `host`.
pub fn encode(host: SocketAddr, offset: u64) -> String {
    let mut bytes = Vec::with_capacity(28);
    match host.ip() {
        IpAddr::V4(ip) => bytes.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => bytes.extend_from_slice(&ip.octets()),
    }
    bytes.extend_from_slice(&u32::from(host.port()).to_be_bytes());
    bytes.extend_from_slice(&offset.to_be_bytes());
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// Decodes an id into the storing broker's address and the CommitLog offset.
pub fn decode(id: &str) -> Result<(SocketAddr, u64)> {
    let invalid = |reason| StorageError::InvalidId { id: id.to_owned(), reason };
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("not hexadecimal"));
    }
    let bytes: Vec<u8> = (0..id.len() / 2)
        .filter_map(|i| id.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    let (ip, rest): (IpAddr, &[u8]) = match (id.len(), bytes.as_slice()) {
        (32, [a, b, c, d, rest @ ..]) => (IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)), rest),
        (56, b) => {
            let (ip, rest) = b.split_at(16);
            let octets: [u8; 16] = ip.try_into().map_err(|_| invalid("bad length"))?;
            (IpAddr::V6(Ipv6Addr::from(octets)), rest)
        }
        _ => return Err(invalid("expected 32 (IPv4) or 56 (IPv6) hex characters")),
    };
    let port: [u8; 4] =
        rest.get(..4).and_then(|p| p.try_into().ok()).ok_or(invalid("bad length"))?;
    let offset: [u8; 8] =
        rest.get(4..12).and_then(|p| p.try_into().ok()).ok_or(invalid("bad length"))?;
    let port = u16::try_from(u32::from_be_bytes(port)).map_err(|_| invalid("port out of range"))?;
    Ok((SocketAddr::new(ip, port), u64::from_be_bytes(offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_matches_rocketmq_layout() {
        let id = encode("192.168.0.1:10911".parse().unwrap(), 0x1234);
        assert_eq!(id, "C0A8000100002A9F0000000000001234");
        assert_eq!(decode(&id).unwrap(), ("192.168.0.1:10911".parse().unwrap(), 0x1234));
    }

    #[test]
    fn ipv6_round_trips() {
        let host: SocketAddr = "[2001:db8::7]:8081".parse().unwrap();
        let id = encode(host, u64::MAX - 1);
        assert_eq!(id.len(), 56);
        assert_eq!(decode(&id).unwrap(), (host, u64::MAX - 1));
        assert_eq!(decode(&id.to_lowercase()).unwrap(), (host, u64::MAX - 1));
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode("").is_err());
        assert!(decode("XYZ").is_err());
        assert!(decode(&"A".repeat(31)).is_err());
        assert!(decode("C0A8000100FF2A9F0000000000001234").is_err()); // port > u16
        assert!(decode("é".repeat(16).as_str()).is_err());
    }
}
