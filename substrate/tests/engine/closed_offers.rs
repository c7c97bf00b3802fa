//! A publication whose session is gone says so (`OfferError::Closed`) instead of accepting
//! messages that can never be sent, or reporting backpressure forever.

use substrate::id::StreamId;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::{NodeEvent, OfferError};
use substrate::wire::CloseCode;

use crate::adversary::{build_pair_or_skip, one_at_a_time};
use crate::common::{connect, node, on_each_driver, run_until};

fn offers_fail_once_the_peer_aborts(driver: DriverKind) {
    let _serial = one_at_a_time();
    let Some((mut a, mut b)) = build_pair_or_skip(node(1, driver), node(2, driver), driver) else {
        return;
    };
    let (sa, sb) = connect(&mut a, &mut b);
    let mut publication = a.publication(sa, StreamId(1)).expect("publication");
    publication
        .offer(b"before")
        .expect("accepted while connected");
    b.abort(sb, CloseCode::Refused).expect("abort");
    let mut closed = false;
    run_until(&mut a, &mut b, |a, _| {
        while let Some(e) = a.poll_event() {
            closed |= matches!(e, NodeEvent::Closed { session, .. } if session == sa);
        }
        closed
    });
    // The shard marks the publication on its next attempt to move a message.
    let mut result = Ok(0);
    run_until(&mut a, &mut b, |_, _| {
        result = publication.offer(b"after");
        result == Err(OfferError::Closed)
    });
    assert_eq!(publication.offer(b"again"), Err(OfferError::Closed));
}

on_each_driver!(
    offers_fail_once_the_peer_aborts,
    offers_fail_once_the_peer_aborts_on_poll,
    offers_fail_once_the_peer_aborts_on_uring
);
