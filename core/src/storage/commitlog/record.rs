//! The CommitLog record format: encode, `check()` (length, magic, CRC32C), then `decode()`.
//!
//! ```text
//! off  size  field
//!   0     4  total length of the record, bytes (header + variable part)
//!   4     4  CRC32C of the fixed header after this field, bytes [8, 108)
//!   8     4  magic: MESSAGE_MAGIC (format version 1) or BLANK_MAGIC (end-of-segment filler)
//!  12     4  flags
//!  16     4  queue id
//!  20     8  queue offset
//!  28     8  commitlog offset (the record's own position; checked on read)
//!  36     8  born timestamp, ms
//!  44     8  store timestamp, ms
//!  52    18  born host: 16-byte IPv6 (IPv4 mapped) + 2-byte port
//!  70    18  store host
//!  88     4  reconsume times
//!  92     8  prepared (transaction half) message offset
//! 100     4  CRC32C of everything after the fixed header, bytes [108, length)
//! 104     4  body length, then the body
//!   …     2  topic length, then the topic (UTF-8)
//!   …     4  properties length, then properties: repeated (u16 key len, key, u16 value len, value)
//! ```
//! The checksum is split in two so that the producer's side computes the CRC of the bulk (body,
//! topic, properties) while the single append thread checksums only the 100 header bytes it
//! fills in (offsets, store time). Both must match for a record to pass `check()`.
//! All integers little-endian. A blank record is just `length | 0 | BLANK_MAGIC` and fills the
//! rest of a segment; every record leaves room for one after it.
#![warn(clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

use crate::storage::error::{Result, StorageError};
use crate::storage::message::{PutMessage, StoredMessage};

/// Magic of a message record, format version 1.
pub const MESSAGE_MAGIC: u32 = 0x4F52_4201; // "ORB" + version 1
/// Magic of the blank record that fills the end of a segment.
pub const BLANK_MAGIC: u32 = 0x4F52_42FF;
/// Size of a blank record's header; every record leaves at least this much room after it.
pub const BLANK_LEN: usize = 12;
/// Fixed header size of a message record.
pub const HEADER_LEN: usize = 108;
/// Longest topic name, bytes.
pub const MAX_TOPIC_LEN: usize = 255;

const OFF_QUEUE_OFFSET: usize = 20;
const OFF_COMMITLOG_OFFSET: usize = 28;
const OFF_STORE_TS: usize = 44;
const OFF_TAIL_CRC: usize = 100;
const OFF_BODY_LEN: usize = 104;

/// What `check()` found at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A valid message record of this many bytes.
    Message(usize),
    /// A blank filler of this many bytes (the rest of the segment).
    Blank(usize),
    /// Zeros: nothing was ever written here.
    End,
}

/// Appends the record of `msg` to `buf`, tail CRC included. The queue offset, commitlog offset,
/// store timestamp and header CRC are left zero: the CommitLog writer fills them in with
/// [`seal`] when it places the record.
pub fn encode_into(msg: &PutMessage, store_host: SocketAddr, buf: &mut Vec<u8>) -> Result<()> {
    let topic = msg.topic.as_bytes();
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(StorageError::InvalidMessage(format!(
            "topic must be 1..={MAX_TOPIC_LEN} bytes, got {}",
            topic.len()
        )));
    }
    if !topic.iter().all(|b| b.is_ascii_alphanumeric() || b"%|_-".contains(b)) {
        return Err(StorageError::InvalidMessage(format!(
            "topic {:?} may only hold letters, digits, '%', '|', '_' and '-'",
            msg.topic
        )));
    }
    let mut props_len = 0usize;
    for (k, v) in &msg.properties {
        if k.len() > usize::from(u16::MAX) || v.len() > usize::from(u16::MAX) {
            return Err(StorageError::InvalidMessage(format!(
                "property {k:?} is longer than {} bytes",
                u16::MAX
            )));
        }
        props_len += 4 + k.len() + v.len();
    }
    let body_len = u32::try_from(msg.body.len()).map_err(|_| StorageError::MessageTooLarge {
        size: msg.body.len(),
        limit: u32::MAX as usize,
    })?;
    let total = HEADER_LEN + msg.body.len() + 2 + topic.len() + 4 + props_len;
    let total_u32 = u32::try_from(total)
        .map_err(|_| StorageError::MessageTooLarge { size: total, limit: u32::MAX as usize })?;

    let start = buf.len();
    buf.reserve(total);
    buf.extend_from_slice(&total_u32.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes()); // crc, sealed later
    buf.extend_from_slice(&MESSAGE_MAGIC.to_le_bytes());
    buf.extend_from_slice(&msg.flags.to_le_bytes());
    buf.extend_from_slice(&msg.queue_id.to_le_bytes());
    buf.extend_from_slice(&0u64.to_le_bytes()); // queue offset
    buf.extend_from_slice(&0u64.to_le_bytes()); // commitlog offset
    buf.extend_from_slice(&msg.born_timestamp.to_le_bytes());
    buf.extend_from_slice(&0i64.to_le_bytes()); // store timestamp
    put_host(buf, msg.born_host);
    put_host(buf, store_host);
    buf.extend_from_slice(&msg.reconsume_times.to_le_bytes());
    buf.extend_from_slice(&msg.prepared_offset.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes()); // tail crc, below
    buf.extend_from_slice(&body_len.to_le_bytes());
    buf.extend_from_slice(&msg.body);
    buf.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    buf.extend_from_slice(topic);
    buf.extend_from_slice(&(props_len as u32).to_le_bytes());
    for (k, v) in &msg.properties {
        buf.extend_from_slice(&(k.len() as u16).to_le_bytes());
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(&(v.len() as u16).to_le_bytes());
        buf.extend_from_slice(v.as_bytes());
    }
    debug_assert_eq!(buf.len() - start, total);
    let tail_crc = crc32c::crc32c(buf.get(start + HEADER_LEN..).unwrap_or_default());
    if let Some(b) = buf.get_mut(start + OFF_TAIL_CRC..start + OFF_TAIL_CRC + 4) {
        b.copy_from_slice(&tail_crc.to_le_bytes());
    }
    Ok(())
}

/// Encodes `msg` into a buffer of its own; see [`encode_into`].
pub fn encode(msg: &PutMessage, store_host: SocketAddr) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    encode_into(msg, store_host, &mut buf)?;
    Ok(buf)
}

/// Fills in the fields known only at placement time and the header CRC. `rec` is a whole
/// record as produced by [`encode_into`].
pub fn seal(rec: &mut [u8], queue_offset: u64, commitlog_offset: u64, store_timestamp: i64) {
    if rec.len() < HEADER_LEN {
        return;
    }
    if let Some(b) = rec.get_mut(OFF_QUEUE_OFFSET..OFF_QUEUE_OFFSET + 8) {
        b.copy_from_slice(&queue_offset.to_le_bytes());
    }
    if let Some(b) = rec.get_mut(OFF_COMMITLOG_OFFSET..OFF_COMMITLOG_OFFSET + 8) {
        b.copy_from_slice(&commitlog_offset.to_le_bytes());
    }
    if let Some(b) = rec.get_mut(OFF_STORE_TS..OFF_STORE_TS + 8) {
        b.copy_from_slice(&store_timestamp.to_le_bytes());
    }
    let crc = crc32c::crc32c(rec.get(8..HEADER_LEN).unwrap_or_default());
    if let Some(b) = rec.get_mut(4..8) {
        b.copy_from_slice(&crc.to_le_bytes());
    }
}

/// Writes a blank record header of `len` bytes into `out` (which must hold `BLANK_LEN` bytes).
pub fn blank(len: usize) -> [u8; BLANK_LEN] {
    let mut b = [0u8; BLANK_LEN];
    b[..4].copy_from_slice(&(len as u32).to_le_bytes());
    b[8..12].copy_from_slice(&BLANK_MAGIC.to_le_bytes());
    b
}

/// Checks the record at the start of `buf` (the rest of its segment): its length fits, its magic
/// is known and its CRC matches. `Err` carries the reason; it never panics.
pub fn check(buf: &[u8]) -> std::result::Result<Check, String> {
    let (Some(len), Some(crc), Some(magic)) = (u32_at(buf, 0), u32_at(buf, 4), u32_at(buf, 8))
    else {
        // Shorter than a blank header: only a file cut short can do that.
        return if buf.iter().all(|b| *b == 0) {
            Ok(Check::End)
        } else {
            Err(format!("{} stray bytes at the end of the segment", buf.len()))
        };
    };
    let len = len as usize;
    match magic {
        0 if len == 0 && crc == 0 => Ok(Check::End),
        BLANK_MAGIC => {
            if len == buf.len() {
                Ok(Check::Blank(len))
            } else {
                Err(format!("blank record of {len} bytes where {} remain", buf.len()))
            }
        }
        MESSAGE_MAGIC => {
            if len.checked_add(BLANK_LEN).is_none_or(|end| end > buf.len()) {
                return Err(format!("record length {len} out of bounds ({} remain)", buf.len()));
            }
            verify(buf.get(..len).ok_or("record length out of bounds")?)?;
            Ok(Check::Message(len))
        }
        other => Err(format!("unknown magic {other:#010x}")),
    }
}

/// The CommitLog offset a record says it is stored at (its header field).
pub fn commitlog_offset_of(rec: &[u8]) -> Option<u64> {
    u64_at(rec, OFF_COMMITLOG_OFFSET)
}

/// Verifies one whole message record: its length field says `rec.len()`, its magic is
/// `MESSAGE_MAGIC` and its CRC matches.
pub fn verify(rec: &[u8]) -> std::result::Result<(), String> {
    let (Some(len), Some(crc), Some(magic)) = (u32_at(rec, 0), u32_at(rec, 4), u32_at(rec, 8))
    else {
        return Err("record cut short".to_owned());
    };
    if magic != MESSAGE_MAGIC {
        return Err(format!("unknown magic {magic:#010x}"));
    }
    if len as usize != rec.len() || rec.len() < HEADER_LEN + 6 {
        return Err(format!("record length {len} out of bounds ({} bytes)", rec.len()));
    }
    let actual = crc32c::crc32c(rec.get(8..HEADER_LEN).unwrap_or_default());
    if actual != crc {
        return Err(format!("header crc mismatch: stored {crc:#010x}, computed {actual:#010x}"));
    }
    let tail = u32_at(rec, OFF_TAIL_CRC).unwrap_or(0);
    let actual = crc32c::crc32c(rec.get(HEADER_LEN..).unwrap_or_default());
    if actual != tail {
        return Err(format!("body crc mismatch: stored {tail:#010x}, computed {actual:#010x}"));
    }
    Ok(())
}

/// Decodes a record that passed [`check`]. `rec` holds exactly the record. Malformed inner
/// lengths are reported, never trusted.
pub fn decode(rec: &Bytes) -> std::result::Result<StoredMessage, String> {
    let r = rec.as_ref();
    let field = |off: usize| u64_at(r, off).ok_or_else(|| "header cut short".to_owned());
    let size = u32_at(r, 0).ok_or("header cut short")?;
    let flags = u32_at(r, 12).ok_or("header cut short")?;
    let queue_id = u32_at(r, 16).ok_or("header cut short")?;
    let queue_offset = field(OFF_QUEUE_OFFSET)?;
    let commitlog_offset = field(OFF_COMMITLOG_OFFSET)?;
    let born_timestamp = field(36)? as i64;
    let store_timestamp = field(OFF_STORE_TS)? as i64;
    let born_host = host_at(r, 52).ok_or("header cut short")?;
    let store_host = host_at(r, 70).ok_or("header cut short")?;
    let reconsume_times = u32_at(r, 88).ok_or("header cut short")?;
    let prepared_offset = field(92)?;

    let mut pos = OFF_BODY_LEN;
    let body_len = u32_at(r, pos).ok_or("header cut short")? as usize;
    pos += 4;
    let body_end = pos.checked_add(body_len).filter(|e| *e <= r.len()).ok_or("body overruns")?;
    let body = rec.slice(pos..body_end);
    pos = body_end;
    let topic_len = u16_at(r, pos).ok_or("topic length overruns")? as usize;
    pos += 2;
    let topic = str_at(r, pos, topic_len).ok_or("topic overruns or is not UTF-8")?;
    pos += topic_len;
    let props_len = u32_at(r, pos).ok_or("properties length overruns")? as usize;
    pos += 4;
    let props_end = pos.checked_add(props_len).filter(|e| *e == r.len()).ok_or_else(|| {
        format!("properties of {props_len} bytes do not end the {}-byte record", r.len())
    })?;
    let mut properties = BTreeMap::new();
    while pos < props_end {
        let kl = u16_at(r, pos).ok_or("property key length overruns")? as usize;
        let k = str_at(r, pos + 2, kl).ok_or("property key overruns or is not UTF-8")?;
        pos += 2 + kl;
        let vl = u16_at(r, pos).ok_or("property value length overruns")? as usize;
        let v = str_at(r, pos + 2, vl).ok_or("property value overruns or is not UTF-8")?;
        pos += 2 + vl;
        properties.insert(k.to_owned(), v.to_owned());
    }
    if pos != props_end {
        return Err("properties overrun their length".to_owned());
    }
    Ok(StoredMessage {
        topic: topic.to_owned(),
        queue_id,
        queue_offset,
        commitlog_offset,
        size,
        flags,
        body,
        properties,
        born_timestamp,
        store_timestamp,
        born_host,
        store_host,
        reconsume_times,
        prepared_offset,
    })
}

/// What dispatch needs from a record, borrowed from it without allocating.
#[derive(Debug, Clone, Copy)]
pub struct DispatchView<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Queue id.
    pub queue_id: u32,
    /// Queue offset.
    pub queue_offset: u64,
    /// Store timestamp, ms.
    pub store_timestamp: i64,
    /// The `TAGS` property.
    pub tag: Option<&'a str>,
    /// The `KEYS` property.
    pub keys: Option<&'a str>,
    /// The `UNIQ_KEY` property.
    pub message_id: Option<&'a str>,
}

/// Parses what dispatch needs from a whole record; `None` if it is malformed.
pub fn dispatch_view(r: &[u8]) -> Option<DispatchView<'_>> {
    use crate::storage::message::{PROPERTY_KEYS, PROPERTY_TAGS, PROPERTY_UNIQ_KEY};
    let body_len = u32_at(r, OFF_BODY_LEN)? as usize;
    let mut pos = HEADER_LEN.checked_add(body_len)?;
    let topic_len = u16_at(r, pos)? as usize;
    let topic = str_at(r, pos + 2, topic_len)?;
    pos += 2 + topic_len;
    let props_len = u32_at(r, pos)? as usize;
    pos += 4;
    let end = pos.checked_add(props_len)?;
    let mut view = DispatchView {
        topic,
        queue_id: u32_at(r, 16)?,
        queue_offset: u64_at(r, OFF_QUEUE_OFFSET)?,
        store_timestamp: u64_at(r, OFF_STORE_TS)? as i64,
        tag: None,
        keys: None,
        message_id: None,
    };
    while pos < end {
        let kl = u16_at(r, pos)? as usize;
        let k = r.get(pos + 2..pos + 2 + kl)?;
        pos += 2 + kl;
        let vl = u16_at(r, pos)? as usize;
        let v = str_at(r, pos + 2, vl)?;
        pos += 2 + vl;
        match k {
            k if k == PROPERTY_TAGS.as_bytes() => view.tag = Some(v),
            k if k == PROPERTY_KEYS.as_bytes() => view.keys = Some(v),
            k if k == PROPERTY_UNIQ_KEY.as_bytes() => view.message_id = Some(v),
            _ => {}
        }
    }
    Some(view)
}

/// Reads the store timestamp from a record header.
pub fn store_timestamp(rec: &[u8]) -> Option<i64> {
    u64_at(rec, OFF_STORE_TS).map(|v| v as i64)
}

fn put_host(buf: &mut Vec<u8>, addr: SocketAddr) {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    buf.extend_from_slice(&ip.octets());
    buf.extend_from_slice(&addr.port().to_le_bytes());
}

fn host_at(b: &[u8], off: usize) -> Option<SocketAddr> {
    let octets: [u8; 16] = b.get(off..off + 16)?.try_into().ok()?;
    let port = u16_at(b, off + 16)?;
    let v6 = Ipv6Addr::from(octets);
    let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
    Some(SocketAddr::new(ip, port))
}

fn str_at(b: &[u8], off: usize, len: usize) -> Option<&str> {
    std::str::from_utf8(b.get(off..off.checked_add(len)?)?).ok()
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use std::fmt::Write;

    use super::*;
    use crate::storage::message::PutMessage;

    fn sample() -> PutMessage {
        let mut m = PutMessage::new("orders", 3, Bytes::from_static(b"hello"))
            .with_tag("TagA")
            .with_keys(["k1", "k2"])
            .with_message_id("01ABC")
            .with_property("color", "blue");
        m.flags = 7;
        m.born_timestamp = 1_700_000_000_000;
        m.born_host = "10.0.0.1:5555".parse().unwrap();
        m.reconsume_times = 2;
        m.prepared_offset = 99;
        m
    }

    fn placed(m: &PutMessage) -> Vec<u8> {
        let mut rec = encode(m, "192.168.1.2:8081".parse().unwrap()).unwrap();
        seal(&mut rec, 41, 4096, 1_700_000_000_123);
        rec
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let m = sample();
        let rec = placed(&m);
        let mut seg = rec.clone();
        seg.extend_from_slice(&[0; BLANK_LEN]);
        assert_eq!(check(&seg), Ok(Check::Message(rec.len())));
        let d = decode(&Bytes::from(rec.clone())).unwrap();
        assert_eq!(d.topic, "orders");
        assert_eq!(d.queue_id, 3);
        assert_eq!(d.queue_offset, 41);
        assert_eq!(d.commitlog_offset, 4096);
        assert_eq!(d.size as usize, rec.len());
        assert_eq!(d.flags, 7);
        assert_eq!(&d.body[..], b"hello");
        assert_eq!(d.properties, m.properties);
        assert_eq!(d.tag(), Some("TagA"));
        assert_eq!(d.keys().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(d.message_id(), Some("01ABC"));
        assert_eq!(d.born_timestamp, 1_700_000_000_000);
        assert_eq!(d.store_timestamp, 1_700_000_000_123);
        assert_eq!(d.born_host, m.born_host);
        assert_eq!(d.store_host, "192.168.1.2:8081".parse().unwrap());
        assert_eq!(d.reconsume_times, 2);
        assert_eq!(d.prepared_offset, 99);
    }

    #[test]
    fn ipv6_hosts_round_trip() {
        let mut m = sample();
        m.born_host = "[2001:db8::1]:9876".parse().unwrap();
        let mut rec = encode(&m, "[::1]:8081".parse().unwrap()).unwrap();
        seal(&mut rec, 0, 0, 0);
        let d = decode(&Bytes::from(rec)).unwrap();
        assert_eq!(d.born_host, m.born_host);
        assert_eq!(d.store_host, "[::1]:8081".parse().unwrap());
    }

    /// Golden bytes: the on-disk format must not change by accident.
    #[test]
    fn golden_header_bytes() {
        let mut m = PutMessage::new("t", 1, Bytes::from_static(b"x"));
        m.born_timestamp = 2;
        m.born_host = "1.2.3.4:5".parse().unwrap();
        let mut rec = encode(&m, "6.7.8.9:10".parse().unwrap()).unwrap();
        seal(&mut rec, 3, 4, 5);
        let hex = rec.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        assert_eq!(
            hex,
            concat!(
                "74000000",
                "a662163d",
                "0142524f",
                "00000000",
                "01000000",
                "0300000000000000",
                "0400000000000000",
                "0200000000000000",
                "0500000000000000",
                "00000000000000000000ffff01020304",
                "0500",
                "00000000000000000000ffff06070809",
                "0a00",
                "00000000",
                "0000000000000000",
                "1d3df876",
                "01000000",
                "78",
                "0100",
                "74",
                "00000000"
            )
        );
    }

    #[test]
    fn check_rejects_bad_crc_magic_and_length() {
        let rec = placed(&sample());
        let mut seg = rec.clone();
        seg.extend_from_slice(&[0; 64]);
        let mut flipped = seg.clone();
        flipped[HEADER_LEN + 2] ^= 0x10;
        assert!(check(&flipped).unwrap_err().contains("body crc"));
        let mut flipped = seg.clone();
        flipped[OFF_QUEUE_OFFSET] ^= 0x01;
        assert!(check(&flipped).unwrap_err().contains("header crc"));
        let mut magic = seg.clone();
        magic[9] ^= 1;
        assert!(check(&magic).unwrap_err().contains("magic"));
        let mut long = seg.clone();
        long[..4].copy_from_slice(&10_000u32.to_le_bytes());
        assert!(check(&long).unwrap_err().contains("out of bounds"));
        assert_eq!(check(&[0u8; 64]), Ok(Check::End));
        assert_eq!(check(&[0u8; 5]), Ok(Check::End));
        let b = blank(40);
        let mut bl = b.to_vec();
        bl.resize(40, 0);
        assert_eq!(check(&bl), Ok(Check::Blank(40)));
    }

    #[test]
    fn decode_never_panics_on_garbage() {
        let rec = placed(&sample());
        for cut in 0..rec.len() {
            let _ = decode(&Bytes::copy_from_slice(&rec[..cut]));
        }
        let mut x = rec.clone();
        for i in 0..x.len() {
            x[i] = x[i].wrapping_add(97);
            let _ = decode(&Bytes::copy_from_slice(&x));
        }
    }

    #[test]
    fn rejects_bad_topics_and_properties() {
        let m = PutMessage::new("", 0, Bytes::new());
        assert!(encode(&m, "0.0.0.0:0".parse().unwrap()).is_err());
        let m = PutMessage::new("t", 0, Bytes::new()).with_property("k", "v".repeat(70_000));
        assert!(encode(&m, "0.0.0.0:0".parse().unwrap()).is_err());
    }
}
