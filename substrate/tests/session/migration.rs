//! Migration: a peer that changes address mid-stream keeps its session and loses nothing; a
//! replayed frame from an address that cannot answer the challenge does not move the session.

use substrate::id::StreamId;
use substrate::proto::session::{Event, SessionConfig};
use substrate::testing::{LinkConfig, Loss, test_locator};
use substrate::time::Duration;
use substrate::wire::{Data, DataFlags, Frame, HEADER_LEN};

use crate::common::{Pair, Transfer, endpoint, events, tap};

fn link() -> LinkConfig {
    LinkConfig::default()
        .latency(Duration::from_millis(5))
        .bandwidth(20_000_000)
        .loss(Loss::Uniform(0.01))
}

fn migrate_mid_stream(move_sender: bool) {
    let config = SessionConfig::default();
    let mut p = Pair::connect(21, link(), config.clone(), config.clone());
    let mut t = Transfer::new(
        20_000,
        |n| 200 + (n % 1_000) as usize,
        config.window_bytes,
        config.window_bytes,
    );
    let move_at = p.c.now() + Duration::from_millis(100);
    while p.c.now() < move_at {
        t.step(&mut p);
    }
    assert!(
        !t.finished(),
        "the move must fall mid-stream: {} delivered, {:?} lost, {:?}",
        t.delivered.len(),
        t.lost,
        p.c.now()
    );
    let (mover, watcher, watcher_session) = if move_sender {
        (p.a, p.b, p.sb)
    } else {
        (p.b, p.a, p.sa)
    };
    let old = p.c.locator(mover);
    let new = test_locator(1_000);
    p.c.net_mut().rebind(mover, new);
    t.run(&mut p, Duration::from_secs(120));
    t.assert_all_delivered_in_order();
    let ev = if move_sender {
        t.events_b.clone()
    } else {
        events(&mut p.c, watcher)
    };
    let expected = Event::PathMigrated {
        session: watcher_session,
        from: old,
        to: new,
    };
    assert!(ev.contains(&expected), "no migration event in {ev:?}");
    let info =
        p.c.node(watcher)
            .session_info(watcher_session)
            .expect("session alive");
    assert_eq!(info.path, new, "the session now sends to the new locator");
}

#[test]
fn session_survives_sender_locator_change_without_loss() {
    migrate_mid_stream(true);
}

#[test]
fn session_survives_receiver_locator_change_without_loss() {
    migrate_mid_stream(false);
}

/// A frame that looks new to the session: data on a stream the peer never used. Without
/// authentication (later work) anyone who knows the connection id can inject this.
fn forged_data() -> Frame<'static> {
    Frame::Data(Data {
        stream: StreamId(9),
        sequence: 0,
        flags: DataFlags::WHOLE,
        message: 0,
        payload: b"forged",
    })
}

/// The header of a captured datagram (so, a valid connection id) with [`forged_data`] behind it.
fn forge_from(captured: &[u8]) -> Vec<u8> {
    let mut forged = captured[..HEADER_LEN].to_vec();
    let mut frame = vec![0u8; 64];
    let n = forged_data().encode(&mut frame).expect("fits");
    forged.extend_from_slice(&frame[..n]);
    forged
}

/// A datagram that reuses a session's connection id from an address that cannot answer a path
/// challenge never moves the session. While the real path is alive, a pure replay carries
/// nothing new and is not even challenged; a forged datagram that advances a stream is
/// challenged, the challenge goes unanswered, and the session stays.
#[test]
fn session_ignores_replayed_frame_from_address_that_cannot_answer() {
    let config = SessionConfig::default();
    // Slow enough that data is still flowing (the path alive) when the replay arrives.
    let link = LinkConfig::default()
        .latency(Duration::from_millis(5))
        .bandwidth(2_000_000);
    let mut p = Pair::connect(22, link, config.clone(), config.clone());
    // An on-path observer records a's datagrams to b; an attacker sends from its own address. It
    // holds no session state, so it cannot answer b's path challenge.
    let (a, b) = (p.a, p.b);
    let seen = tap(&mut p.c, a);
    let attacker = p.c.add_node(endpoint(666, SessionConfig::default()));
    let mut t = Transfer::new(5_000, |_| 300, config.window_bytes, config.window_bytes);
    let replay_at = p.c.now() + Duration::from_millis(50);
    while p.c.now() < replay_at {
        t.step(&mut p);
    }
    let captured = seen.borrow().last().cloned().expect("a has sent datagrams");
    let to = p.c.locator(b);
    let now = p.c.now();
    p.c.net_mut().send(now, attacker, to, &captured);
    p.c.run_for(Duration::from_millis(20)).expect("harness ran");
    let info = p.c.node(b).session_info(p.sb).expect("session alive");
    assert_eq!(
        info.stats.path_challenges_sent, 0,
        "a replay carries nothing new"
    );

    // Forged: the captured header (a valid connection id) with data no one sent.
    let forged = forge_from(&captured);
    let now = p.c.now();
    p.c.net_mut().send(now, attacker, to, &forged);
    t.run(&mut p, Duration::from_secs(60));
    t.assert_all_delivered_in_order();
    p.c.run_for(Duration::from_secs(2)).expect("harness ran");

    let mut ev = t.events_b.clone();
    ev.extend(events(&mut p.c, b));
    assert!(
        !ev.iter().any(|e| matches!(e, Event::PathMigrated { .. })),
        "{ev:?}"
    );
    let info = p.c.node(b).session_info(p.sb).expect("session alive");
    assert_eq!(info.path, p.c.locator(a), "b still sends to the real peer");
    assert_eq!(
        info.stats.path_challenges_sent, 1,
        "the forged datagram's address was challenged"
    );
    assert_eq!(
        info.stats.path_validations_failed, 1,
        "and the challenge went unanswered"
    );
    assert!(
        p.c.node(attacker).stats().unknown_connection >= 1,
        "attacker could not answer"
    );
}

#[test]
fn session_migrates_despite_forged_frame_from_another_address() {
    let config = SessionConfig::default();
    let mut p = Pair::connect(23, link(), config.clone(), config.clone());
    let (a, b) = (p.a, p.b);
    let seen = tap(&mut p.c, a);
    let attacker = p.c.add_node(endpoint(666, SessionConfig::default()));
    let mut t = Transfer::new(
        20_000,
        |n| 200 + (n % 1_000) as usize,
        config.window_bytes,
        config.window_bytes,
    );
    let move_at = p.c.now() + Duration::from_millis(100);
    while p.c.now() < move_at {
        t.step(&mut p);
    }
    // Junk first: a forged datagram that advances a stream, from the attacker's address; b
    // starts validating that address, which will never answer.
    let captured = seen.borrow().last().cloned().expect("a has sent datagrams");
    let forged = forge_from(&captured);
    let (now, to) = (p.c.now(), p.c.locator(b));
    p.c.net_mut().send(now, attacker, to, &forged);
    // Then the real move, while that validation is still pending.
    let new = test_locator(2_000);
    p.c.net_mut().rebind(a, new);
    t.run(&mut p, Duration::from_secs(120));
    t.assert_all_delivered_in_order();
    let info = p.c.node(b).session_info(p.sb).expect("session alive");
    assert_eq!(
        info.path, new,
        "the genuine move was validated despite the pending junk"
    );
    assert!(
        t.events_b
            .iter()
            .any(|e| matches!(e, Event::PathMigrated { to, .. } if *to == new))
    );
    // The junk's validation was pending alongside the genuine one, and did not block it.
    assert!(
        info.stats.path_challenges_sent >= 2,
        "the junk address and the new one"
    );
}
