//! Who polls the doorbell: a leader/follower scheme.
//!
//! Exactly one thread, the leader, polls the doorbell, and it serves the
//! request it finds itself, so the common case (one LWK thread calling at a
//! time) has no hand-over between host threads: on a host with few cores a
//! futex wake-up per call costs several times the call, and a second spinning
//! thread far more. Extra requests found in the same pass go to workers.
//!
//! A call may block in Linux (a read on a pipe or terminal, accept), and
//! another LWK thread's call (the write to that pipe) must still be served.
//! So a standby thread naps and looks at the leader's `Role`: when the leader
//! has been in the same call for a whole nap, the standby takes the role
//! (bumps the epoch), appoints a new standby and polls. The old leader, when
//! its call returns, sees the new epoch and becomes an idle worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The standby's nap while the leader is in a call (how long a call may block
/// before another thread polls), and while it is not.
const BUSY_NAP: Duration = Duration::from_micros(100);
const IDLE_NAP: Duration = Duration::from_millis(1);

/// The leader's state in one word: epoch (32 bits), calls entered (31 bits),
/// and whether it is in a call now (bit 0). Only the leader writes it while it
/// is not in a call; only a standby moves it to the next epoch, and only from
/// a value it saw twice with the in-call bit set.
#[derive(Debug, Default)]
pub struct Role(AtomicU64);

const IN_CALL: u64 = 1;
const COUNT_MASK: u64 = (1 << 32) - 2;

fn epoch_of(v: u64) -> u32 {
    (v >> 32) as u32
}

impl Role {
    /// The leader of `epoch` starts serving a call; returns the token for `leave`.
    pub fn enter(&self, epoch: u32) -> u64 {
        let v = self.0.load(Ordering::Relaxed);
        let count = (v & COUNT_MASK).wrapping_add(2) & COUNT_MASK;
        let token = (u64::from(epoch) << 32) | count | IN_CALL;
        self.0.store(token, Ordering::Release);
        token
    }

    /// The call of `token` is done; returns whether its thread is still the leader.
    pub fn leave(&self, token: u64) -> bool {
        self.0
            .compare_exchange(token, token & !IN_CALL, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// A standby's view of the leader across its naps.
#[derive(Debug, Default)]
pub struct Watch {
    prev: Option<u64>,
}

impl Watch {
    /// Look at the leader: returns the epoch to lead if the standby just took
    /// over, and how long to nap before looking again.
    pub fn check(&mut self, role: &Role) -> (Option<u32>, Duration) {
        let v = role.0.load(Ordering::Acquire);
        if v & IN_CALL != 0 && self.prev == Some(v) {
            let epoch = epoch_of(v).wrapping_add(1);
            let next = u64::from(epoch) << 32;
            if role
                .0
                .compare_exchange(v, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.prev = None;
                return (Some(epoch), BUSY_NAP);
            }
        }
        self.prev = Some(v);
        let nap = if v & IN_CALL != 0 { BUSY_NAP } else { IDLE_NAP };
        (None, nap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_takes_over_only_a_call_seen_twice() {
        let role = Role::default();
        let mut w = Watch::default();
        // Leader idle: nothing to take, long naps.
        assert_eq!(w.check(&role), (None, IDLE_NAP));
        assert_eq!(w.check(&role), (None, IDLE_NAP));
        // Short calls between looks: never taken over.
        for _ in 0..3 {
            let t = role.enter(0);
            assert_eq!(w.check(&role), (None, BUSY_NAP));
            assert!(role.leave(t));
            let t = role.enter(0);
            assert_eq!(w.check(&role), (None, BUSY_NAP));
            assert!(role.leave(t));
        }
        // A call still running at the next look is taken over.
        let t = role.enter(0);
        assert_eq!(w.check(&role).0, None);
        assert_eq!(w.check(&role).0, Some(1));
        // The old leader learns it when the call returns.
        assert!(!role.leave(t));
        // The new leader works in epoch 1, watched by a new standby.
        let mut w2 = Watch::default();
        let t = role.enter(1);
        assert_eq!(w2.check(&role).0, None);
        assert!(role.leave(t));
        let t = role.enter(1);
        assert_eq!(w2.check(&role).0, None);
        assert_eq!(w2.check(&role).0, Some(2));
        assert!(!role.leave(t));
    }

    #[test]
    fn counts_and_epochs_wrap() {
        let role = Role::default();
        role.0
            .store((u64::from(u32::MAX) << 32) | COUNT_MASK, Ordering::Relaxed);
        let t = role.enter(u32::MAX);
        assert_eq!(t & COUNT_MASK, 0);
        let mut w = Watch::default();
        w.check(&role);
        assert_eq!(w.check(&role).0, Some(0));
        assert!(!role.leave(t));
    }
}
