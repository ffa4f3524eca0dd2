//! Transactions: a half message is invisible until committed; rollback discards it; an open
//! transaction is checked with its producer over Telemetry; it survives a restart.

use std::time::Duration;

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::protocol::v2::TransactionResolution::{Commit, Rollback};
use orbitmq_core::protocol::v2::TransactionSource::{SourceClient, SourceServerCheck};
use orbitmq_core::protocol::v2::{self, Code, telemetry_command::Command};
use orbitmq_tests::{TestBroker, code, resource, sys, transaction_message};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(30));
const POLL: Duration = Duration::from_secs(5);

fn producer_settings(topic: &str) -> v2::Settings {
    v2::Settings {
        client_type: Some(v2::ClientType::Producer as i32),
        pub_sub: Some(v2::settings::PubSub::Publishing(v2::Publishing {
            topics: vec![resource(topic)],
            max_body_size: 0,
            validate_message_type: true,
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn commit_shows_the_message_and_rollback_discards_it() {
    let b = TestBroker::start().await;
    let mut c = b.client("p").await;
    for id in ["01TC", "01TR"] {
        let r = c.send(transaction_message("tt", id)).await;
        assert_eq!(code(r.status.as_ref()), Code::Ok);
        assert_eq!(r.entries[0].transaction_id, id);
    }
    // Nothing is visible while the transactions are open.
    let (st, got) = c.receive("g", "tt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::MessageNotFound, 0), "{got:?}");
    assert_eq!(c.end_transaction("tt", "01TC", Commit, SourceClient).await, Code::Ok);
    assert_eq!(c.end_transaction("tt", "01TR", Rollback, SourceClient).await, Code::Ok);
    // Ending again the same way is fine; the other way is refused.
    assert_eq!(c.end_transaction("tt", "01TC", Commit, SourceClient).await, Code::Ok);
    assert_eq!(
        c.end_transaction("tt", "01TR", Commit, SourceClient).await,
        Code::InvalidTransactionId
    );
    let (st, got) = c.receive("g", "tt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(st, Code::Ok);
    assert_eq!(got.iter().map(|m| sys(m).message_id.as_str()).collect::<Vec<_>>(), ["01TC"]);
    assert_eq!(sys(&got[0]).message_type, v2::MessageType::Transaction as i32);
    let (st, got) = c.receive("g", "tt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::MessageNotFound, 0), "rolled back: {got:?}");
    b.stop().await;
}

#[tokio::test]
async fn an_open_transaction_is_checked_with_its_producer() {
    let config = BrokerConfig {
        transaction_check_first_ms: 300,
        transaction_check_interval_ms: 500,
        ..BrokerConfig::default()
    };
    let b = TestBroker::start_with(config).await;
    let mut p = b.client("producer-1").await;
    let (_keep, mut commands) = p.telemetry(producer_settings("ct")).await;
    // The settings reply.
    let first = commands.message().await.unwrap().unwrap();
    assert!(matches!(first.command, Some(Command::Settings(_))));
    let r = p.send(transaction_message("ct", "01CK")).await;
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    let check = tokio::time::timeout(Duration::from_secs(5), commands.message())
        .await
        .expect("no check within 5 s")
        .unwrap()
        .unwrap();
    let Some(Command::RecoverOrphanedTransactionCommand(cmd)) = check.command else {
        panic!("expected a transaction check, got {check:?}");
    };
    assert_eq!(cmd.transaction_id, "01CK");
    let m = cmd.message.unwrap();
    assert_eq!(m.topic.as_ref().unwrap().name, "ct", "the check shows the real topic");
    assert_eq!(sys(&m).message_id, "01CK");
    assert_eq!(p.end_transaction("ct", "01CK", Commit, SourceServerCheck).await, Code::Ok);
    let (st, got) = p.receive("g", "ct", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::Ok, 1));
    b.stop().await;
}

#[tokio::test]
async fn a_transaction_checked_too_often_is_rolled_back() {
    let config = BrokerConfig {
        transaction_check_first_ms: 100,
        transaction_check_interval_ms: 100,
        transaction_check_max: 2,
        ..BrokerConfig::default()
    };
    let b = TestBroker::start_with(config).await;
    let mut p = b.client("p").await;
    p.send(transaction_message("xt", "01XX")).await;
    assert_eq!(b.broker.transactions().open_count(), 1);
    for _ in 0..100 {
        if b.broker.transactions().open_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.broker.transactions().open_count(), 0, "never rolled back");
    assert_eq!(
        p.end_transaction("xt", "01XX", Commit, SourceClient).await,
        Code::InvalidTransactionId
    );
    b.stop().await;
}

#[tokio::test]
async fn open_transactions_survive_a_restart() {
    let b = TestBroker::start().await;
    let mut p = b.client("p").await;
    p.send(transaction_message("rt", "01RS")).await;
    p.send(transaction_message("rt", "01RB")).await;
    assert_eq!(p.end_transaction("rt", "01RB", Rollback, SourceClient).await, Code::Ok);
    let dir = b.stop_keeping_data().await;
    let b = TestBroker::start_in(dir, BrokerConfig::default()).await;
    assert_eq!(b.broker.transactions().open_count(), 1);
    let mut p = b.client("p").await;
    assert_eq!(p.end_transaction("rt", "01RS", Commit, SourceClient).await, Code::Ok);
    let (st, got) = p.receive("g", "rt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(st, Code::Ok);
    assert_eq!(got.iter().map(|m| sys(m).message_id.as_str()).collect::<Vec<_>>(), ["01RS"]);
    b.stop().await;
}
