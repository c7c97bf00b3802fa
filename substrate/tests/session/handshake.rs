//! Handshake: version negotiation, refusal, retransmission under loss, and timeout.

use std::cell::RefCell;
use std::rc::Rc;

use substrate::id::{ConnectionId, NodeId};
use substrate::proto::session::{CloseCause, Event, SessionConfig};
use substrate::testing::{Cluster, LinkConfig, Loss, test_locator};
use substrate::time::Duration;
use substrate::wire::{
    CloseCode, Frame, HEADER_LEN, Handshake, HandshakeStage, Header, VERSION_1, decode_datagram,
};

use crate::common::{Pair, endpoint, events};

fn hello(versions: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let header = Header {
        version: VERSION_1,
        flags: 0,
        destination: ConnectionId::NONE,
    };
    let mut n = header.encode(&mut buf).expect("fits");
    let h = Handshake {
        stage: HandshakeStage::Hello,
        node_id: NodeId::from_u64(9),
        source_cid: ConnectionId(0xABCD),
        versions,
        features: 0,
        window_bytes: Some(1 << 20),
        max_datagram_bytes: Some(1_472),
        idle_timeout_ms: Some(10_000),
    };
    n += Frame::Handshake(h).encode(&mut buf[n..]).expect("fits");
    buf.truncate(n);
    buf
}

/// Sends a crafted Hello from node 0 to node 1 and returns node 1's reply datagrams.
fn reply_to(versions: &[u8]) -> (Vec<Vec<u8>>, Cluster<substrate::proto::session::Endpoint>) {
    let mut c = Cluster::new(1, LinkConfig::default().latency(Duration::from_millis(1)));
    let client = c.add_node(endpoint(9, SessionConfig::default()));
    let server = c.add_node(endpoint(2, SessionConfig::default()));
    let replies: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let tap = replies.clone();
    c.set_on_transmit(move |t| {
        if t.node == server {
            tap.borrow_mut().push(t.bytes.to_vec());
        }
    });
    let (now, to) = (c.now(), c.locator(server));
    c.net_mut().send(now, client, to, &hello(versions));
    c.run_for(Duration::from_millis(20)).expect("harness ran");
    let r = replies.borrow().clone();
    (r, c)
}

#[test]
fn handshake_agrees_on_highest_common_version() {
    let (replies, _) = reply_to(&[9, VERSION_1, 7]);
    let (header, mut frames) = decode_datagram(&replies[0]).expect("valid reply");
    assert_eq!(
        header.destination,
        ConnectionId(0xABCD),
        "Accept goes to the initiator's cid"
    );
    match frames.next() {
        Some(Ok(Frame::Handshake(h))) => {
            assert_eq!(h.stage, HandshakeStage::Accept);
            assert_eq!(h.versions, &[VERSION_1], "the highest version both support");
        }
        other => panic!("expected Accept, got {other:?}"),
    }
}

#[test]
fn handshake_refuses_hello_without_common_version() {
    let (replies, c) = reply_to(&[7, 9]);
    assert_eq!(replies.len(), 1);
    let (_, mut frames) = decode_datagram(&replies[0]).expect("valid reply");
    match frames.next() {
        Some(Ok(Frame::Close(close))) => assert_eq!(close.code, CloseCode::VersionMismatch),
        other => panic!("expected Close, got {other:?}"),
    }
    let server = substrate::testing::NodeIdx(1);
    assert_eq!(c.node(server).stats().hellos_refused, 1);
    assert_eq!(
        c.node(server).sessions().count(),
        0,
        "no state for a refused Hello"
    );
    assert!(replies[0].len() > HEADER_LEN);
}

#[test]
fn handshake_completes_despite_heavy_loss() {
    let link = LinkConfig::default()
        .latency(Duration::from_millis(5))
        .loss(Loss::Uniform(0.5));
    let p = Pair::connect(8, link, SessionConfig::default(), SessionConfig::default());
    let info = p.c.node(p.a).session_info(p.sa).expect("session");
    assert!(info.established);
    assert_eq!(
        info.peer,
        Some(NodeId::from_u64(2)),
        "the peer is known by identity"
    );
    let info_b = p.c.node(p.b).session_info(p.sb).expect("session");
    assert_eq!(info_b.peer, Some(NodeId::from_u64(1)));
}

#[test]
fn handshake_to_nobody_times_out() {
    let mut c = Cluster::new(2, LinkConfig::default());
    let a = c.add_node(endpoint(1, SessionConfig::default()));
    let s = c
        .with_node(a, |e, now, rng| e.connect(now, test_locator(77), rng))
        .expect("room");
    let quiet = c
        .run_until_quiet(c.now() + Duration::from_secs(30))
        .expect("harness ran");
    assert!(quiet, "a failed handshake stops, it does not retry forever");
    let ev = events(&mut c, a);
    assert!(ev.contains(&Event::PeerTimedOut { session: s }), "{ev:?}");
    assert!(
        ev.contains(&Event::Closed {
            session: s,
            cause: CloseCause::TimedOut
        }),
        "{ev:?}"
    );
}
