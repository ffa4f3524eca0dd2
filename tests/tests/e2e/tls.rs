//! TLS and plaintext on one port: the first byte of each connection picks the protocol;
//! `required` closes plaintext, `off` (a plain listener) never speaks TLS, and the certificate
//! served is the one configured (or the self-signed one the server made).

use std::time::Duration;

use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_core::tls::server::{ServerTls, self_signed_names};
use orbitmq_core::tls::{self, ClientTls};
use orbitmq_tests::{Client, TestBroker, code, message, resource};
use tokio::io::AsyncWriteExt as _;
use tonic::transport::Endpoint;

use crate::route::endpoints;

fn self_signed() -> ServerTls {
    ServerTls::self_signed(&self_signed_names("127.0.0.1:0".parse().unwrap())).unwrap()
}

/// A TLS client of `host:port` trusting as `trust` says, or the connect error.
async fn tls_client(host: &str, port: u16, trust: &ClientTls) -> Result<Client, String> {
    let endpoint = Endpoint::from_shared(format!("https://{host}:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let config = trust.client_config().unwrap().unwrap();
    match tls::connect(&endpoint, config).await {
        Ok(channel) => Ok(Client::on_channel(channel, "tls-client")),
        Err(e) => Err(chain(&e)),
    }
}

/// A plaintext client that fails fast.
async fn plain_client(port: u16) -> Result<Client, String> {
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    match endpoint.connect().await {
        Ok(channel) => Ok(Client::on_channel(channel, "plain-client")),
        Err(e) => Err(chain(&e)),
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s = format!("{s}: {c}");
        cur = c.source();
    }
    s
}

/// A QueryRoute: `Ok(code)` if the RPC completed, `Err(status)` if the transport failed.
async fn route(c: &mut Client, port: u16) -> Result<Code, tonic::Status> {
    let r = c
        .raw
        .query_route(v2::QueryRouteRequest {
            topic: Some(resource("tls-topic")),
            endpoints: Some(endpoints(port)),
        })
        .await?
        .into_inner();
    Ok(code(r.status.as_ref()))
}

/// Connect and QueryRoute; `Err` if either failed.
async fn route_over(client: Result<Client, String>, port: u16) -> Result<Code, String> {
    let mut c = client?;
    route(&mut c, port).await.map_err(|s| format!("{s:?}"))
}

#[tokio::test]
async fn optional_serves_plaintext_and_tls_on_one_port() {
    let tls = self_signed();
    let b = TestBroker::start_tls(&tls, false).await;
    let port = b.addr.port();

    let mut plain = plain_client(port).await.unwrap();
    assert_eq!(route(&mut plain, port).await.unwrap(), Code::Ok);
    let r = plain.send(message("tls-topic", "m-plain", "over plaintext")).await;
    assert_eq!(code(r.status.as_ref()), Code::Ok);

    // Verifying the self-signed certificate the server made (it is its own CA; 127.0.0.1 is
    // one of its names).
    let trust = ClientTls::Trust(vec![tls.certificate().clone()]);
    let mut verified = tls_client("127.0.0.1", port, &trust).await.unwrap();
    assert_eq!(route(&mut verified, port).await.unwrap(), Code::Ok);
    let r = verified.send(message("tls-topic", "m-tls", "over TLS")).await;
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    // Also by the name `localhost` (sent as SNI).
    assert_eq!(route_over(tls_client("localhost", port, &trust).await, port).await, Ok(Code::Ok));

    // As the official clients do by default: any certificate.
    let any = tls_client("127.0.0.1", port, &ClientTls::AcceptAny).await;
    assert_eq!(route_over(any, port).await, Ok(Code::Ok));

    // Both messages are stored, in one topic, behind one port.
    b.wait_dispatched().await;
    let (st, msgs) = plain
        .receive(
            "g-tls",
            "tls-topic",
            "*",
            32,
            Some(Duration::from_secs(30)),
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(st, Code::Ok);
    let mut bodies: Vec<_> = msgs.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    assert_eq!(bodies, vec![&b"over TLS"[..], &b"over plaintext"[..]]);
    b.stop().await;
}

#[tokio::test]
async fn tls_negotiates_h2_by_alpn() {
    // grpc-java (netty) drops a TLS connection that did not agree on `h2`.
    let tls = self_signed();
    let b = TestBroker::start_tls(&tls, false).await;
    let config = ClientTls::AcceptAny.client_config().unwrap().unwrap();
    let tcp = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(stream.get_ref().1.peer_certificates().unwrap()[0], *tls.certificate());
    drop(stream);
    b.stop().await;
}

#[tokio::test]
async fn required_closes_plaintext_and_serves_tls() {
    let tls = self_signed();
    let b = TestBroker::start_tls(&tls, true).await;
    let port = b.addr.port();
    let plain = route_over(plain_client(port).await, port).await;
    assert!(plain.is_err(), "plaintext must be refused under required, got {plain:?}");
    let any = tls_client("127.0.0.1", port, &ClientTls::AcceptAny).await;
    assert_eq!(route_over(any, port).await, Ok(Code::Ok));
    // The refused connection gave its max_connections slot back.
    for _ in 0..200 {
        if b.broker.connections() <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(b.broker.connections() <= 1, "{} connections counted", b.broker.connections());
    b.stop().await;
}

#[tokio::test]
async fn off_never_speaks_tls() {
    // A plain TcpListener is `--tls off`: a ClientHello is read as (broken) HTTP/2.
    let b = TestBroker::start().await;
    let port = b.addr.port();
    let any = route_over(tls_client("127.0.0.1", port, &ClientTls::AcceptAny).await, port).await;
    assert!(any.is_err(), "TLS must fail under off, got {any:?}");
    assert_eq!(route_over(plain_client(port).await, port).await, Ok(Code::Ok));
    b.stop().await;
}

#[tokio::test]
async fn the_configured_certificate_is_served() {
    let dir = tempfile::tempdir().unwrap();
    // A CA, and a server certificate for `localhost` it signed.
    let (ca_pem, issuer) = ca("orbitmq test CA");
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let (cert_path, key_path, ca_path) =
        (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("ca.pem"));
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&ca_path, ca_pem).unwrap();

    let tls = ServerTls::from_pem_files(&cert_path, &key_path).unwrap();
    assert!(!tls.is_self_signed());
    let b = TestBroker::start_tls(&tls, false).await;
    let port = b.addr.port();
    let verified = tls_client("localhost", port, &ClientTls::Ca(ca_path)).await;
    assert_eq!(route_over(verified, port).await, Ok(Code::Ok));

    // Verification is real: another CA is not trusted, and the certificate is not for
    // 127.0.0.1.
    let (other_pem, _) = ca("another CA");
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, other_pem).unwrap();
    let other = route_over(tls_client("localhost", port, &ClientTls::Ca(other_path)).await, port);
    let other = other.await;
    assert!(other.is_err(), "a certificate from an untrusted CA was accepted: {other:?}");
    let trust = ClientTls::Ca(dir.path().join("ca.pem"));
    let by_ip = route_over(tls_client("127.0.0.1", port, &trust).await, port).await;
    assert!(by_ip.is_err(), "a certificate for localhost was accepted for 127.0.0.1: {by_ip:?}");
    b.stop().await;
}

/// A CA certificate (PEM) and its issuer.
fn ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), rcgen::Issuer::new(params, key))
}

#[tokio::test]
async fn silent_and_stalled_clients_do_not_hold_up_others() {
    let tls = self_signed();
    let b = TestBroker::start_tls(&tls, false).await;
    let port = b.addr.port();
    // One connection says nothing; another starts a TLS record and stops.
    let _silent = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let mut stalled = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let plain = tokio::time::timeout(Duration::from_secs(3), async {
        route_over(plain_client(port).await, port).await
    });
    assert_eq!(plain.await.expect("a plaintext client waited behind a silent one"), Ok(Code::Ok));
    let any = tokio::time::timeout(Duration::from_secs(3), async {
        route_over(tls_client("127.0.0.1", port, &ClientTls::AcceptAny).await, port).await
    });
    assert_eq!(any.await.expect("a TLS client waited behind a silent one"), Ok(Code::Ok));
    b.stop().await;
}

#[tokio::test]
async fn connections_count_against_max_connections_over_tls_too() {
    let tls = self_signed();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = orbitmq_core::broker::listener::Listener::with_tls(tcp, &tls, false);
    let config = orbitmq_core::broker::BrokerConfig { max_connections: 1, ..Default::default() };
    let b = TestBroker::start_on(listener, tempfile::tempdir().unwrap(), config);
    let port = b.addr.port();
    let mut first = tls_client("127.0.0.1", port, &ClientTls::AcceptAny).await.unwrap();
    assert_eq!(route(&mut first, port).await.unwrap(), Code::Ok);
    assert_eq!(b.broker.connections(), 1);
    let second = route_over(tls_client("127.0.0.1", port, &ClientTls::AcceptAny).await, port);
    assert!(second.await.is_err(), "a second connection beyond max_connections = 1 was served");
    drop(first);
    b.stop().await;
}
