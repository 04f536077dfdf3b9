//! Who waits, who is served next, and who is turned away: four queue
//! disciplines under overload.
//!
//! Each is a plain data structure, time passed in, so the same code runs
//! in the simulator here and in front of a real worker pool. Every one is
//! bounded except the broken twin, whose whole point is that it is not.

use std::collections::VecDeque;
use std::time::Duration;

/// A waiting line: `push` on arrival, `pop` when a server frees up.
pub trait QueueDiscipline<T> {
    /// Offers `item`, arriving at `now`. Returns the item turned away, if
    /// any: usually the newcomer (the queue is full), but a discipline may
    /// evict an older item instead.
    fn push(&mut self, item: T, now: Duration) -> Option<T>;
    /// The next item to serve, or `None` when empty. Items the discipline
    /// decides to drop instead of serving are appended to `dropped`.
    fn pop(&mut self, now: Duration, dropped: &mut Vec<T>) -> Option<T>;
    /// Items waiting.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The broken twin: first come, first served, no limit. Below saturation
/// it is the best there is. Past it the line grows for as long as the
/// overload lasts, every request waits behind all the others, and once
/// the wait passes the clients' deadline the server — still 100% busy —
/// only ever serves requests whose callers have already given up.
/// Goodput falls to zero. Its memory grows without bound too.
#[derive(Debug, Default)]
pub struct NaiveUnboundedFifo<T> {
    waiting: VecDeque<T>,
}

impl<T> NaiveUnboundedFifo<T> {
    pub fn new() -> Self {
        Self {
            waiting: VecDeque::new(),
        }
    }
}

impl<T> QueueDiscipline<T> for NaiveUnboundedFifo<T> {
    fn push(&mut self, item: T, _now: Duration) -> Option<T> {
        self.waiting.push_back(item);
        None
    }
    fn pop(&mut self, _now: Duration, _dropped: &mut Vec<T>) -> Option<T> {
        self.waiting.pop_front()
    }
    fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// First come, first served, at most `capacity` waiting; a newcomer to a
/// full queue is refused at once. The bound caps the wait at about
/// capacity × service time / servers — size it below the clients'
/// deadline and whatever is served is still wanted.
#[derive(Debug)]
pub struct BoundedFifo<T> {
    waiting: VecDeque<T>,
    capacity: usize,
}

impl<T> BoundedFifo<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            waiting: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }
}

impl<T> QueueDiscipline<T> for BoundedFifo<T> {
    fn push(&mut self, item: T, _now: Duration) -> Option<T> {
        if self.waiting.len() >= self.capacity {
            return Some(item);
        }
        self.waiting.push_back(item);
        None
    }
    fn pop(&mut self, _now: Duration, _dropped: &mut Vec<T>) -> Option<T> {
        self.waiting.pop_front()
    }
    fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// CoDel, "Controlling Queue Delay" (Nichols & Jacobson, 2012; RFC 8289),
/// applied to requests instead of packets.
///
/// CoDel watches each item's *sojourn time* — how long it waited — not
/// the queue's length, because length means nothing without the service
/// rate, while delay is what the client feels. A burst that drains is
/// fine: it is a *standing* queue that hurts. So CoDel does nothing until
/// the sojourn time has stayed above `target` for a whole `interval`; then
/// it drops the item at the head, and keeps dropping at shrinking gaps,
/// interval / √count, until the sojourn falls below target again. A
/// dropped request fails fast, which is better than a late success.
///
/// Pitfall: the control law was tuned for TCP, whose senders halve their
/// rate after a single drop. Open-loop clients never slow down, so under
/// heavy overload the drop rate ramps up too slowly and the standing queue
/// stays (the demo's 150% column shows it). Facebook's RPC adaptation
/// keeps CoDel's detection but, once congested, drops every request that
/// waited longer than a short timeout.
///
/// Simplified: the RFC's "don't drop the last packet" test (queue bytes ≤
/// one MTU) becomes "don't drop when nothing else waits".
#[derive(Debug)]
pub struct Codel<T> {
    waiting: VecDeque<(Duration, T)>,
    capacity: usize,
    target: Duration,
    interval: Duration,
    /// When the sojourn time will have been above target for an interval.
    first_above_time: Option<Duration>,
    dropping: bool,
    drop_next: Duration,
    count: u32,
    last_count: u32,
}

impl<T> Codel<T> {
    /// CoDel with a hard `capacity` as well (the RFC pairs it with one;
    /// it only ever matters for bursts far beyond the control loop).
    /// Facebook runs request queues with target 5 ms, interval 100 ms.
    pub fn new(target: Duration, interval: Duration, capacity: usize) -> Self {
        Self {
            waiting: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            target,
            interval,
            first_above_time: None,
            dropping: false,
            drop_next: Duration::ZERO,
            count: 0,
            last_count: 0,
        }
    }

    /// The control law: drop gaps shrink as 1/√count, so the drop rate
    /// rises until the queue is back under control — a gentle ramp that
    /// a TCP sender, or a client, can follow.
    fn control_law(&self, from: Duration) -> Duration {
        from + self.interval.div_f64(f64::from(self.count.max(1)).sqrt())
    }

    /// Takes the head and says whether CoDel may drop it.
    fn take_head(&mut self, now: Duration) -> Option<(T, bool)> {
        let Some((enqueued, item)) = self.waiting.pop_front() else {
            self.first_above_time = None;
            return None;
        };
        let sojourn = now.saturating_sub(enqueued);
        let mut ok_to_drop = false;
        if sojourn < self.target || self.waiting.is_empty() {
            self.first_above_time = None;
        } else {
            match self.first_above_time {
                None => self.first_above_time = Some(now + self.interval),
                Some(at) => ok_to_drop = now >= at,
            }
        }
        Some((item, ok_to_drop))
    }
}

impl<T> QueueDiscipline<T> for Codel<T> {
    fn push(&mut self, item: T, now: Duration) -> Option<T> {
        if self.waiting.len() >= self.capacity {
            return Some(item);
        }
        self.waiting.push_back((now, item));
        None
    }

    fn pop(&mut self, now: Duration, dropped: &mut Vec<T>) -> Option<T> {
        let Some((mut item, mut ok_to_drop)) = self.take_head(now) else {
            self.dropping = false;
            return None;
        };
        if self.dropping {
            if !ok_to_drop {
                // Sojourn is back under target: leave the dropping state.
                self.dropping = false;
            }
            while self.dropping && now >= self.drop_next {
                dropped.push(item);
                self.count += 1;
                match self.take_head(now) {
                    None => {
                        self.dropping = false;
                        return None;
                    }
                    Some((next, ok)) => {
                        item = next;
                        ok_to_drop = ok;
                    }
                }
                if ok_to_drop {
                    self.drop_next = self.control_law(self.drop_next);
                } else {
                    self.dropping = false;
                }
            }
        } else if ok_to_drop {
            dropped.push(item);
            let next = self.take_head(now);
            self.dropping = true;
            // Pitfall: restarting the count at 1 on every episode would
            // let a persistent overload back in at full rate each time;
            // if the last episode was recent, resume near its rate.
            let delta = self.count.saturating_sub(self.last_count);
            self.count = if delta > 1 && now.saturating_sub(self.drop_next) < self.interval * 16 {
                delta
            } else {
                1
            };
            self.drop_next = self.control_law(now);
            self.last_count = self.count;
            return next.map(|(item, _)| item);
        }
        Some(item)
    }

    fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// Adaptive LIFO, as Facebook runs its request queues ("Fail at Scale",
/// Maurer, 2015): first in, first out while the queue is healthy; last in,
/// first out once it is congested — the oldest waiting request has waited
/// longer than `congested_after`.
///
/// Under overload someone must wait too long. FIFO makes it everyone;
/// LIFO makes it the requests that are already late (and whose clients
/// have probably given up), while fresh requests are served fresh. When
/// the queue is full the *oldest* request is evicted to make room, since
/// it is the least likely still to be wanted.
///
/// Simplified: Facebook pairs this with CoDel-style timeouts on queued
/// requests; here the bound and the eviction of the oldest play that role.
#[derive(Debug)]
pub struct AdaptiveLifo<T> {
    waiting: VecDeque<(Duration, T)>,
    capacity: usize,
    congested_after: Duration,
}

impl<T> AdaptiveLifo<T> {
    pub fn new(congested_after: Duration, capacity: usize) -> Self {
        Self {
            waiting: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            congested_after,
        }
    }

    /// Whether the queue is in LIFO mode at `now`.
    pub fn congested(&self, now: Duration) -> bool {
        self.waiting
            .front()
            .is_some_and(|(enqueued, _)| now.saturating_sub(*enqueued) > self.congested_after)
    }
}

impl<T> QueueDiscipline<T> for AdaptiveLifo<T> {
    fn push(&mut self, item: T, now: Duration) -> Option<T> {
        if self.capacity == 0 {
            return Some(item);
        }
        let evicted = if self.waiting.len() >= self.capacity {
            self.waiting.pop_front().map(|(_, oldest)| oldest)
        } else {
            None
        };
        self.waiting.push_back((now, item));
        evicted
    }

    fn pop(&mut self, now: Duration, _dropped: &mut Vec<T>) -> Option<T> {
        let next = if self.congested(now) {
            self.waiting.pop_back()
        } else {
            self.waiting.pop_front()
        };
        next.map(|(_, item)| item)
    }

    fn len(&self) -> usize {
        self.waiting.len()
    }
}
