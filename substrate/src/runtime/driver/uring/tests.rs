//! Tests of the io_uring driver over real loopback sockets.

use std::net::SocketAddr;

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::send::{MemLockLimit, ZeroCopy};
use super::*;
use crate::runtime::buf::COPIES;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("INVARIANT: a literal address")
}

fn config(rx_slots: usize, rx_slot_bytes: usize, tx_slots: usize) -> DriverConfig {
    DriverConfig {
        rx_slots,
        rx_slot_bytes,
        tx_slots,
        tx_slot_bytes: 65_536,
        socket_buffer_bytes: 16 << 20,
        zero_copy_min_bytes: 16 * 1024,
        zero_copy_loopback: true,
        sqpoll: false,
        rx_copybreak_bytes: 0,
    }
}

/// The bytes of datagram `index` of `len` bytes: index and length up front when they fit, so
/// that the receiver can check any datagram without relying on order.
fn fill(index: u32, buf: &mut [u8]) {
    let len = buf.len();
    if len >= 8 {
        buf[..4].copy_from_slice(&index.to_le_bytes());
        buf[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        for (j, b) in buf[8..].iter_mut().enumerate() {
            *b = (index as usize * 7 + j) as u8;
        }
    } else {
        for (j, b) in buf.iter_mut().enumerate() {
            *b = (len * 31 + j) as u8;
        }
    }
}

/// The index a received datagram claims (`None` for the short ones, which carry none), after
/// checking every byte against [`fill`].
fn check(datagram: &[u8]) -> Result<Option<u32>, String> {
    let len = datagram.len();
    let mut expected = vec![0; len];
    let index = if len >= 8 {
        let index = u32::from_le_bytes(datagram[..4].try_into().expect("INVARIANT: 4 bytes"));
        fill(index, &mut expected);
        Some(index)
    } else {
        fill(0, &mut expected);
        None
    };
    if datagram == &expected[..] {
        Ok(index)
    } else {
        Err(format!(
            "datagram of {len} bytes (index {index:?}) corrupted"
        ))
    }
}

/// Sizes from 1 B to 65,000 B: every tenth is large (beyond the zero-copy threshold), every
/// tenth tiny, the rest spread below 4 KiB, plus the edges.
fn size_of_datagram(index: u32) -> usize {
    let mut x = u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d;
    x ^= x >> 29;
    let r = x as usize;
    match index {
        0 => 1,
        1 => 65_000,
        2 => 16 * 1024,
        3 => 16 * 1024 - 1,
        _ => match index % 10 {
            0 => 16 * 1024 + r % (65_000 - 16 * 1024 + 1),
            1 => 1 + r % 7,
            _ => 8 + r % 4096,
        },
    }
}

/// Polls until the pool and the arena are whole again (bounded by a count of polls, not time).
fn settle(d: &mut UringDriver) {
    for _ in 0..1000 {
        if d.rx_slots_available() == d.rx_slots() && d.tx_in_flight() == 0 {
            return;
        }
        d.poll(Wait::For(Duration::from_millis(10)), |_| {})
            .expect("poll");
    }
}

#[test]
fn probe_finds_every_feature_on_this_kernel() {
    assert!(probe().is_ok(), "{:?}", probe());
}

#[test]
fn uring_delivers_ten_thousand_datagrams_intact() {
    deliver_intact(10_000, false);
}

#[test]
fn uring_with_sqpoll_delivers_datagrams_intact() {
    deliver_intact(2_000, true);
}

#[test]
fn uring_driver_can_move_to_its_shard_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<UringDriver>();
}

/// Sends `count` datagrams of varied sizes between two sockets, checks each one received, then
/// checks that every receive and transmit slot came back.
fn deliver_intact(count: u32, sqpoll: bool) {
    // Datagrams sent but not yet received: at most 64 of up to 65,000 bytes (each costing about
    // 128 KiB of receive buffer on loopback) fit well within the 16 MiB socket buffer, so
    // nothing should be dropped; the loop still ends if something is.
    const WINDOW: u32 = 64;
    let mut d = UringDriver::new(&DriverConfig {
        sqpoll,
        ..config(256, 65_536, 128)
    })
    .expect("driver");
    assert!(matches!(d.zero_copy(), ZeroCopy::Fixed { .. }), "{d:?}");
    let a = d.bind(loopback()).expect("bind a");
    let b = d.bind(loopback()).expect("bind b");
    let a_addr = d.local_addr(a).expect("a bound");
    let b_addr = d.local_addr(b).expect("b bound");

    let mut seen = vec![false; count as usize];
    let mut short_expected = 0;
    let mut short_seen = 0;
    let mut received = 0u32;
    let mut sent = 0u32;
    let mut held: Vec<Bytes> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut idle_polls = 0;
    while received < count && idle_polls < 100 {
        while sent < count && sent - received < WINDOW {
            let Some((slot, buf)) = d.tx_acquire() else {
                break;
            };
            let len = size_of_datagram(sent);
            fill(sent, &mut buf[..len]);
            if len < 8 {
                short_expected += 1;
            }
            d.send(a, b_addr, slot, len);
            sent += 1;
        }
        let before = received;
        d.poll(Wait::For(Duration::from_millis(100)), |r| {
            received += 1;
            if r.socket != b || r.from != a_addr {
                errors.push(format!("from {:?} on {:?}", r.from, r.socket));
            }
            match check(&r.datagram) {
                Ok(Some(i)) if (i as usize) < seen.len() && !seen[i as usize] => {
                    seen[i as usize] = true;
                    if size_of_datagram(i) != r.datagram.len() {
                        errors.push(format!("datagram {i} has the wrong length"));
                    }
                }
                Ok(Some(i)) => errors.push(format!("datagram {i} twice or unknown")),
                Ok(None) => short_seen += 1,
                Err(e) => errors.push(e),
            }
            // Hold some views across polls, as an application would.
            if received % 97 == 0 {
                held.push(r.datagram);
            }
        })
        .expect("poll");
        idle_polls = if received == before {
            idle_polls + 1
        } else {
            0
        };
    }
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(10)]);
    assert_eq!(received, count, "lost datagrams: {:?}", d.stats());
    assert_eq!(short_seen, short_expected);
    let stats = d.stats();
    assert_eq!(stats.datagrams_received, u64::from(count));
    assert_eq!(stats.send_errors, 0);
    assert_eq!(stats.recv_errors, 0);
    assert_eq!(stats.truncated, 0);
    assert!(stats.syscalls > 0);

    assert!(!held.is_empty());
    drop(held);
    settle(&mut d);
    let stats = d.stats();
    assert_eq!(stats.datagrams_sent, u64::from(count));
    let large = (0..count)
        .filter(|&i| size_of_datagram(i) >= 16 * 1024)
        .count();
    assert_eq!(stats.zero_copy_sends, large as u64);
    assert_eq!(d.rx_slots_available(), d.rx_slots(), "every rx slot back");
    assert_eq!(d.tx_in_flight(), 0, "every tx slot free");
    println!(
        "{stats:?}; zero-copy sends copied by the kernel: {}",
        d.zero_copy_copied()
    );
}

#[test]
fn exhausted_pool_copies_then_recovers_once_views_drop() {
    let mut d = UringDriver::new(&config(4, 2048, 16)).expect("driver");
    let a = d.bind(loopback()).expect("bind a");
    let b = d.bind(loopback()).expect("bind b");
    let b_addr = d.local_addr(b).expect("b bound");
    let send = |d: &mut UringDriver, first: u32| {
        for i in first..first + 4 {
            let (slot, buf) = d.tx_acquire().expect("a free slot");
            fill(i, &mut buf[..100]);
            d.send(a, b_addr, slot, 100);
        }
    };
    let receive = |d: &mut UringDriver| {
        let mut got = Vec::new();
        for _ in 0..100 {
            if got.len() >= 4 {
                break;
            }
            d.poll(Wait::For(Duration::from_millis(100)), |r| {
                got.push(r.datagram)
            })
            .expect("poll");
        }
        let mut indices: Vec<u32> = got
            .iter()
            .map(|v| check(v).expect("intact").expect("indexed"))
            .collect();
        indices.sort_unstable();
        (got, indices)
    };

    send(&mut d, 0);
    let (held, indices) = receive(&mut d);
    assert_eq!(indices, [0, 1, 2, 3]);
    assert_eq!(d.rx_slots_available(), 0, "every slot lent out");

    // Every slot is lent out: the next datagrams arrive as copies instead of waiting.
    let copied = COPIES.rx_fallback_bytes.load(Ordering::Relaxed);
    send(&mut d, 4);
    let (late, indices) = receive(&mut d);
    assert_eq!(indices, [4, 5, 6, 7]);
    assert!(d.stats().rx_pool_exhausted > 0, "{:?}", d.stats());
    assert!(COPIES.rx_fallback_bytes.load(Ordering::Relaxed) >= copied + 400);
    assert_eq!(d.rx_slots_available(), 0, "the copies hold no slot");
    let starved = &d.sockets[(b.0 & SOCKET_INDEX_MASK) as usize];
    assert!(starved.recv_wanted && starved.readable_armed, "{starved:?}");

    // Once the views drop, datagrams land in pool slots again.
    drop(held);
    send(&mut d, 8);
    let (again, indices) = receive(&mut d);
    assert_eq!(indices, [8, 9, 10, 11]);
    assert_eq!(
        d.rx_slots_available(),
        0,
        "received into the pool, not copied"
    );
    drop((late, again));
    settle(&mut d);
    assert_eq!(d.rx_slots_available(), 4);
    assert_eq!(d.stats().recv_errors, 0);
    assert_eq!(d.stats().datagrams_received, 12);
}

#[test]
fn oversized_datagram_is_counted_truncated_and_dropped() {
    let mut d = UringDriver::new(&config(8, 1000, 8)).expect("driver");
    let a = d.bind(loopback()).expect("bind a");
    let b = d.bind(loopback()).expect("bind b");
    let b_addr = d.local_addr(b).expect("b bound");
    for len in [2000, 100] {
        let (slot, buf) = d.tx_acquire().expect("a free slot");
        fill(len as u32, &mut buf[..len]);
        d.send(a, b_addr, slot, len);
    }
    let mut got = Vec::new();
    for _ in 0..100 {
        if got.len() == 1 && d.stats().truncated == 1 {
            break;
        }
        d.poll(Wait::For(Duration::from_millis(100)), |r| {
            got.push(r.datagram)
        })
        .expect("poll");
    }
    assert_eq!(d.stats().truncated, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(check(&got[0]), Ok(Some(100)));
    drop(got);
    settle(&mut d);
    assert_eq!(d.rx_slots_available(), d.rx_slots());
}

#[test]
fn waker_ends_a_long_wait() {
    let mut d = UringDriver::new(&config(8, 2048, 8)).expect("driver");
    let waker = Waker::new().expect("waker");
    d.watch(&waker).expect("watch");
    d.poll(Wait::No, |_| {}).expect("arms the poll");
    for _ in 0..2 {
        let work = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                waker.wake();
            });
            d.poll(Wait::For(Duration::from_secs(10)), |_| {})
                .expect("poll")
        });
        // A timeout would return 0 work: the wake itself is what ended the wait.
        assert!(work > 0);
    }
}

#[test]
fn close_releases_the_socket_once_its_receive_ends() {
    let mut d = UringDriver::new(&config(8, 2048, 8)).expect("driver");
    let a = d.bind(loopback()).expect("bind a");
    let b = d.bind(loopback()).expect("bind b");
    let b_addr = d.local_addr(b).expect("b bound");
    d.poll(Wait::No, |_| {}).expect("arms the receives");
    d.close(b);
    assert_eq!(d.local_addr(b), None);
    for _ in 0..100 {
        if d.free_sockets.len() == 1 {
            break;
        }
        d.poll(Wait::For(Duration::from_millis(10)), |_| {})
            .expect("poll");
    }
    assert_eq!(
        d.free_sockets.len(),
        1,
        "the closed socket's slot is free again"
    );
    // A send on a closed socket is an error, and its slot comes back.
    let (slot, _) = d.tx_acquire().expect("a free slot");
    d.send(b, b_addr, slot, 10);
    assert_eq!(d.stats().send_errors, 1);
    assert_eq!(d.tx_in_flight(), 0);
    // The slot is reused under a new id; the old id names nothing.
    let c = d.bind(loopback()).expect("bind c");
    assert_ne!(c, b);
    assert_eq!(d.local_addr(b), None);
    assert!(d.local_addr(c).is_some() && d.local_addr(a).is_some());
}

#[test]
fn views_outlive_the_driver_and_drop_waits_for_the_kernel() {
    let mut d = UringDriver::new(&config(8, 2048, 8)).expect("driver");
    let a = d.bind(loopback()).expect("bind a");
    let b = d.bind(loopback()).expect("bind b");
    let b_addr = d.local_addr(b).expect("b bound");
    let (slot, buf) = d.tx_acquire().expect("a free slot");
    fill(1, &mut buf[..500]);
    d.send(a, b_addr, slot, 500);
    let mut got = None;
    for _ in 0..100 {
        if got.is_some() {
            break;
        }
        d.poll(Wait::For(Duration::from_millis(100)), |r| {
            got = Some(r.datagram)
        })
        .expect("poll");
    }
    // Leave sends queued and receives armed: drop must cancel and wait for them.
    for i in 0..4 {
        let (slot, buf) = d.tx_acquire().expect("a free slot");
        fill(i, &mut buf[..20_000]);
        d.send(a, b_addr, slot, 20_000);
    }
    assert!(d.shutdown(), "every operation completed: {d:?}");
    assert_eq!(d.outstanding(), 0);
    drop(d);
    let view = got.expect("one datagram");
    assert_eq!(check(&view), Ok(Some(1)));
}

#[test]
fn memlock_error_names_the_limit_and_the_need() {
    let e = MemLockLimit {
        have: 8 << 20,
        exempt: false,
    }
    .error(16 << 20);
    let text = e.to_string();
    assert!(text.contains("8388608 bytes"), "{text}");
    assert!(text.contains("16777216 bytes"), "{text}");
    assert!(text.contains("ulimit -l 16384"), "{text}");
    assert!(text.contains("CAP_IPC_LOCK"), "{text}");
}

#[test]
fn memlock_check_refuses_beyond_a_small_limit() {
    let small = MemLockLimit {
        have: 64 << 10,
        exempt: false,
    };
    assert!(small.check(64 << 10).is_ok());
    match small.check((1 << 20) + 1) {
        Err(DriverError::MemLock {
            have,
            need,
            need_kib,
        }) => assert_eq!((have, need, need_kib), (64 << 10, (1 << 20) + 1, 1025)),
        other => panic!("expected MemLock, got {other:?}"),
    }
    let exempt = MemLockLimit {
        exempt: true,
        ..small
    };
    assert!(exempt.check(1 << 40).is_ok());
}

/// The zero-copy crossover: datagrams/s over loopback, plain `SendMsg` against zero-copy, for
/// each size. Run with
/// `cargo test -p phyla-substrate --release --lib uring -- --ignored --nocapture crossover`.
#[test]
#[ignore = "a measurement, not a check: run by hand in release mode"]
fn crossover_zero_copy_against_copy() {
    const BYTES_PER_RUN: usize = 1 << 30;
    let sizes = [1024, 2048, 4096, 8192, 16_384, 32_768, 65_507];
    println!("size_bytes  copy_dgrams_per_s  zero_copy_dgrams_per_s  ratio  zc_copied_by_kernel");
    for size in sizes {
        let count = (BYTES_PER_RUN / size).clamp(20_000, 400_000);
        let copy = throughput(size, count, usize::MAX);
        let (zero_copy, copied) = throughput_with_copied(size, count, 0);
        println!(
            "{size:>10}  {copy:>17.0}  {zero_copy:>22.0}  {:>5.2}  {copied}",
            zero_copy / copy
        );
    }
}

fn throughput(size: usize, count: usize, zero_copy_min_bytes: usize) -> f64 {
    throughput_with_copied(size, count, zero_copy_min_bytes).0
}

/// Sends `count` datagrams of `size` bytes from one socket to another and returns datagrams/s
/// received and how many zero-copy sends the kernel copied anyway.
fn throughput_with_copied(size: usize, count: usize, zero_copy_min_bytes: usize) -> (f64, u64) {
    let mut d = UringDriver::new(&DriverConfig {
        zero_copy_min_bytes,
        ..config(1024, 65_536, 256)
    })
    .expect("driver");
    let a = d.bind(loopback()).expect("bind a");
    let b = d.bind(loopback()).expect("bind b");
    let b_addr = d.local_addr(b).expect("b bound");
    // Keep at most this many datagrams between send and receive, below the socket buffer.
    let window = ((8 << 20) / (2 * size.next_power_of_two())).clamp(16, 256);
    let (mut sent, mut received, mut idle) = (0, 0, 0);
    let start = std::time::Instant::now();
    while received < count && idle < 1000 {
        while sent < count && sent - received < window {
            let Some((slot, buf)) = d.tx_acquire() else {
                break;
            };
            buf[0] = 1;
            d.send(a, b_addr, slot, size);
            sent += 1;
        }
        let before = received;
        d.poll(Wait::No, |_| received += 1).expect("poll");
        idle = if received == before { idle + 1 } else { 0 };
    }
    let elapsed = start.elapsed().as_secs_f64();
    if received < count {
        println!(
            "  ({size} B: {} of {count} lost; the run stopped early)",
            sent - received
        );
    }
    settle(&mut d);
    (received as f64 / elapsed, d.zero_copy_copied())
}

/// The sender's side of the crossover, without a receiver that copies: datagrams/s of completed
/// sends to `PHYLA_CROSSOVER_SINK` (an address routed to an interface that discards, such as an
/// `ifb` device, on which zero-copy sends are not copied). Skipped when the variable is unset.
/// Run as root in a throwaway network namespace (the MTU decides whether the kernel fragments,
/// and so copies):
///
/// ```text
/// unshare -n sh -c 'ip link set lo up; ip link add i0 type ifb; ip link set i0 mtu 65535;
///   ip addr add 198.18.0.1/24 dev i0; ip link set i0 up; PHYLA_CROSSOVER_SINK=198.18.0.2:9 \
///   cargo test -p phyla-substrate --release --lib uring -- --ignored --nocapture crossover_sender'
/// ```
#[test]
#[ignore = "a measurement, not a check: run by hand in release mode, in a network namespace"]
fn crossover_sender_only() {
    let Ok(sink) = std::env::var("PHYLA_CROSSOVER_SINK") else {
        println!("PHYLA_CROSSOVER_SINK unset: skipped");
        return;
    };
    let sink: SocketAddr = sink.parse().expect("PHYLA_CROSSOVER_SINK is host:port");
    let sizes = [1024, 2048, 4096, 8192, 16_384, 32_768, 65_507];
    println!("size_bytes  copy_dgrams_per_s  zero_copy_dgrams_per_s  ratio  zc_copied_by_kernel");
    for size in sizes {
        let count = ((4usize << 30) / size).clamp(50_000, 1_000_000);
        let (copy, _) = send_only(sink, size, count, usize::MAX);
        let (zero_copy, copied) = send_only(sink, size, count, 0);
        println!(
            "{size:>10}  {copy:>17.0}  {zero_copy:>22.0}  {:>5.2}  {copied}",
            zero_copy / copy
        );
    }
}

fn send_only(
    sink: SocketAddr,
    size: usize,
    count: usize,
    zero_copy_min_bytes: usize,
) -> (f64, u64) {
    let mut d = UringDriver::new(&DriverConfig {
        zero_copy_min_bytes,
        ..config(16, 2048, 256)
    })
    .expect("driver");
    let any: SocketAddr = "0.0.0.0:0".parse().expect("INVARIANT: a literal address");
    let a = d.bind(any).expect("bind");
    let mut sent = 0;
    let start = std::time::Instant::now();
    while (d.stats().datagrams_sent + d.stats().send_errors) < count as u64 {
        while sent < count {
            let Some((slot, buf)) = d.tx_acquire() else {
                break;
            };
            buf[0] = 1;
            d.send(a, sink, slot, size);
            sent += 1;
        }
        d.poll(Wait::No, |_| {}).expect("poll");
    }
    let elapsed = start.elapsed().as_secs_f64();
    settle(&mut d);
    assert_eq!(d.stats().send_errors, 0, "{:?}", d.stats());
    (count as f64 / elapsed, d.zero_copy_copied())
}

#[test]
fn gathered_sends_arrive_whole_and_release_their_tails_after_completion() {
    use std::sync::atomic::Ordering as AtomicOrdering;
    // The configuration's zero-copy threshold is 16 KiB, loopback included: the small datagram
    // goes by `SendMsg` with two iovecs, the large one by `SendMsgZc`.
    let mut d = UringDriver::new(&config(64, 65_536, 16)).expect("driver");
    let a = d.bind(loopback()).expect("bind a");
    let b = d.bind(loopback()).expect("bind b");
    let b_addr = d.local_addr(b).expect("b bound");
    for (index, head, len, zero_copy) in [(1u32, 11, 3_000, false), (2, 40, 30_000, true)] {
        let mut whole = vec![0u8; len];
        fill(index, &mut whole);
        let (tail, released) = super::super::watched_bytes(whole[head..].to_vec());
        let zero_copy_before = d.stats().zero_copy_sends;
        // The same tail twice, as a tree node sends one payload to two children.
        for _ in 0..2 {
            let (slot, buf) = d.tx_acquire().expect("a free slot");
            buf[..head].copy_from_slice(&whole[..head]);
            d.send_gather(a, b_addr, slot, head, Gather::tail(head, tail.clone()));
        }
        drop(tail);
        assert!(
            !released.load(AtomicOrdering::SeqCst),
            "queued sends hold their tail"
        );
        let mut got = Vec::new();
        for _ in 0..200 {
            d.poll(Wait::For(Duration::from_millis(10)), |r| {
                got.push(r.datagram)
            })
            .expect("poll");
            if got.len() == 2 && d.tx_in_flight() == 0 {
                break;
            }
        }
        assert_eq!(got.len(), 2, "both gathered datagrams arrived");
        for g in &got {
            assert_eq!(
                &g[..],
                &whole[..],
                "a gathered datagram is the concatenation"
            );
            assert_eq!(check(g), Ok(Some(index)));
        }
        assert_eq!(d.tx_in_flight(), 0, "both slots are free again");
        assert!(
            released.load(AtomicOrdering::SeqCst),
            "the tail is dropped once the kernel is done with both sends"
        );
        let zero_copy_sends = d.stats().zero_copy_sends - zero_copy_before;
        assert_eq!(zero_copy_sends, if zero_copy { 2 } else { 0 });
    }
    assert_eq!(d.stats().send_errors, 0);
}

/// A datagram of the most parts a gather holds, each between written bytes: it arrives as the
/// pieces in wire order. Above the zero-copy threshold too: there it spans more pages than a
/// zero-copy send may pin (the kernel would refuse it), so it is copied.
#[test]
fn a_datagram_of_many_parts_arrives_in_wire_order() {
    let mut d = UringDriver::new(&config(64, 65_536, 16)).expect("driver");
    let a = d.bind(loopback()).expect("bind a");
    let b = d.bind(loopback()).expect("bind b");
    let b_addr = d.local_addr(b).expect("b bound");
    for (index, part_len) in [(3u32, 200usize), (4, 900)] {
        let parts = Gather::MAX_PARTS;
        let mut whole = vec![0u8; parts * (part_len + 7) + 5];
        fill(index, &mut whole);
        // Written: 7 bytes before each part and 5 after the last; the parts in between.
        let (slot, buf) = d.tx_acquire().expect("a free slot");
        let mut gather = Gather::new();
        let (mut written, mut at) = (0, 0);
        for k in 0..parts {
            let start = k * (part_len + 7);
            buf[written..written + 7].copy_from_slice(&whole[start..start + 7]);
            written += 7;
            at += 7;
            gather.push(
                at,
                Bytes::copy_from_slice(&whole[start + 7..start + 7 + part_len]),
            );
        }
        buf[written..written + 5].copy_from_slice(&whole[whole.len() - 5..]);
        written += 5;
        d.send_gather(a, b_addr, slot, written, gather);
        let mut got = Vec::new();
        for _ in 0..200 {
            d.poll(Wait::For(Duration::from_millis(10)), |r| {
                got.push(r.datagram)
            })
            .expect("poll");
            if got.len() == 1 && d.tx_in_flight() == 0 {
                break;
            }
        }
        assert_eq!(got.len(), 1, "{:?}", d.stats());
        assert!(
            got[0][..] == whole[..],
            "parts of {part_len} bytes out of order"
        );
        assert_eq!(check(&got[0]), Ok(Some(index)));
    }
    assert_eq!(d.stats().send_errors, 0);
    assert_eq!(d.stats().zero_copy_sends, 0);
}

#[test]
fn a_gathered_send_on_a_closed_socket_fails_and_releases_its_tail() {
    use std::sync::atomic::Ordering as AtomicOrdering;
    let mut d = UringDriver::new(&config(8, 2048, 8)).expect("driver");
    let a = d.bind(loopback()).expect("bind a");
    let a_addr = d.local_addr(a).expect("a bound");
    d.close(a);
    let (tail, released) = super::super::watched_bytes(vec![1; 100]);
    let (slot, _) = d.tx_acquire().expect("a free slot");
    d.send_gather(a, a_addr, slot, 1, Gather::tail(1, tail));
    assert_eq!(d.stats().send_errors, 1);
    assert_eq!(d.tx_in_flight(), 0);
    assert!(released.load(AtomicOrdering::SeqCst));
}
