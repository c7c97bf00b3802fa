//! Joining through a contact known only by its locator: the session's handshake names the
//! node there, and the join goes to that node. A contact that does not answer yet (it may be
//! starting too) is retried until the group has a neighbour.

use substrate::id::{Locator, NodeId, SessionHandle};
use substrate::proto::session::CloseCause;
use substrate::rand::Rng;
use substrate::time::{Duration, Instant};

use super::{Core, GroupStack, Link};
use crate::GroupId;
use crate::node::GroupError;
use crate::wire::NodeRef;

/// How long after a failed attempt a contact is dialled again.
const CONTACT_RETRY: Duration = Duration::from_secs(1);

/// A join waiting for its contact's identity.
#[derive(Clone, Debug)]
pub(super) struct PendingContact {
    group: GroupId,
    locator: Locator,
    /// The session opened to learn who is there.
    session: Option<SessionHandle>,
    /// When to dial again after a failed attempt.
    retry_at: Option<Instant>,
}

impl GroupStack {
    /// Joins `group` through whoever listens at each of `contacts` (no contact: this node
    /// starts the group). A contact is dialled, named by its session's handshake, then sent the
    /// join; one that does not answer is dialled again every second until the group has a
    /// neighbour.
    ///
    /// # Errors
    /// As [`GroupNode::join`](crate::GroupNode::join).
    pub fn join_via(
        &mut self,
        now: Instant,
        group: GroupId,
        contacts: &[Locator],
        rng: &mut Rng,
    ) -> Result<(), GroupError> {
        self.core.group.join(now, group, None, rng)?;
        for &locator in contacts {
            self.core.contacts.push(PendingContact {
                group,
                locator,
                session: None,
                retry_at: Some(now),
            });
        }
        self.core.dial_contacts(now, rng);
        self.core.pump(now, rng);
        Ok(())
    }

    /// The most frames queued for any one peer: how far the links are behind the group. A
    /// publisher that waits while this is high never overflows a link's queue.
    pub fn backlog(&self) -> usize {
        self.core
            .peers
            .values()
            .map(|p| p.queue.len())
            .max()
            .unwrap_or(0)
    }

    /// The peers with a session or queued frames, and the session frames to each go out on.
    pub fn peers(&self) -> impl Iterator<Item = (NodeId, Option<SessionHandle>)> + '_ {
        self.core.peers.iter().map(|(id, p)| (*id, p.send))
    }
}

impl Core {
    /// Dials every contact that is due; drops those whose group has a neighbour or is gone.
    pub(super) fn dial_contacts(&mut self, now: Instant, rng: &mut Rng) {
        if self.contacts.is_empty() {
            return;
        }
        let group = &self.group;
        self.contacts.retain(|c| {
            group
                .view(c.group)
                .is_some_and(|v| v.active.is_empty() || c.session.is_some())
        });
        for i in 0..self.contacts.len() {
            let c = &self.contacts[i];
            if c.session.is_some() || c.retry_at.is_none_or(|t| now < t) {
                continue;
            }
            let locator = c.locator;
            // Already linked to whoever is there: join through it at once.
            let known = self
                .peers
                .iter()
                .find(|(_, p)| p.locator == Some(locator) && p.send.is_some())
                .map(|(id, _)| *id);
            if let Some(id) = known {
                let group = self.contacts[i].group;
                self.contacts[i].retry_at = None;
                let _ = self.group.join(
                    now,
                    group,
                    Some(NodeRef {
                        id,
                        locator: Some(locator),
                    }),
                    rng,
                );
                continue;
            }
            match self.endpoint.connect(now, locator, rng) {
                Ok(h) => {
                    self.stats.sessions_opened += 1;
                    self.links.insert(
                        h,
                        Link {
                            peer: None,
                            intended: None,
                            path: locator,
                            established: false,
                            closing: false,
                            last_offer: None,
                        },
                    );
                    self.contacts[i].session = Some(h);
                    self.contacts[i].retry_at = None;
                }
                Err(_) => {
                    self.stats.connect_failures += 1;
                    self.contacts[i].retry_at = Some(now + CONTACT_RETRY);
                }
            }
        }
        self.contacts
            .retain(|c| c.session.is_some() || c.retry_at.is_some());
    }

    /// A session opened to a contact is established: join through the node it reached.
    pub(super) fn contact_connected(
        &mut self,
        now: Instant,
        session: SessionHandle,
        id: NodeId,
        rng: &mut Rng,
    ) {
        let mut joins = Vec::new();
        self.contacts.retain(|c| {
            if c.session == Some(session) {
                joins.push((c.group, c.locator));
                false
            } else {
                true
            }
        });
        for (group, locator) in joins {
            let _ = self.group.join(
                now,
                group,
                Some(NodeRef {
                    id,
                    locator: Some(locator),
                }),
                rng,
            );
        }
    }

    /// A session opened to a contact ended before or after its handshake: dial again later.
    pub(super) fn contact_closed(&mut self, now: Instant, session: SessionHandle, _: &CloseCause) {
        for c in &mut self.contacts {
            if c.session == Some(session) {
                c.session = None;
                c.retry_at = Some(now + CONTACT_RETRY);
            }
        }
    }

    /// When a contact is next due to be dialled.
    pub(super) fn next_contact_retry(&self) -> Option<Instant> {
        self.contacts.iter().filter_map(|c| c.retry_at).min()
    }
}
