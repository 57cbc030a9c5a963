//! The core's clock: what `now` means, and how a suspend of the host is noticed.
//!
//! **Time counts while the host sleeps.** Session ages, handshake ages and Warren's own timers are
//! measured on [`Instant`], a clock that keeps running while the machine is suspended: on Linux
//! `CLOCK_BOOTTIME`, on macOS `CLOCK_MONOTONIC` (which, unlike std's `Instant` there, includes
//! sleep). boringtun's `Tunn` reads the same clocks inside (its "sleepy instant"), so a session
//! the peer has long expired is not taken for a fresh one, and `wg show` or the daemon's status
//! report a handshake's true age after a resume. Elsewhere (Windows) it is std's `Instant`, and
//! whether that counts sleep is the OS's business: a documented limitation, with no resume
//! detection there.
//!
//! **Resume.** A clock that counts sleep only says that time passed, not that the host slept; the
//! tunnel must still act at once, before a packet goes out on keys the peer has expired. So the
//! driver also reads a clock that *stops* during suspend ([`monotonic`]: `CLOCK_MONOTONIC` on
//! Linux, `CLOCK_UPTIME_RAW` on macOS) and gives both readings to a [`ResumeDetector`]. When
//! [`Instant`] advanced more than the monotonic clock, by over [`RESUME_THRESHOLD`], the host
//! slept, and the driver calls [`crate::Device::handle_resume`], which starts a new handshake
//! with every peer that has a session or traffic.
//!
//! The driver is the only reader of these clocks; the core only compares the readings it is
//! given. Under the `mock-clock` feature [`Instant`] is `mock_instant`'s (the same clock boringtun
//! then reads), and tests pass the monotonic readings themselves.

use crate::TIMER_TICK;
use std::time::Duration;

/// A sleep shorter than this is not a resume: two timer ticks (jitter between the two clock
/// readings is nanoseconds; a real suspend is seconds at least).
pub const RESUME_THRESHOLD: Duration = Duration::from_millis(2 * TIMER_TICK.as_millis() as u64);

/// The clock the core's `now` arguments are measured on (see the module docs).
#[cfg(feature = "mock-clock")]
pub use mock_instant::Instant;

/// The clock the core's `now` arguments are measured on: time since boot, suspended time
/// included (see the module docs). Opaque, like std's `Instant`.
#[cfg(not(feature = "mock-clock"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

#[cfg(not(feature = "mock-clock"))]
impl Instant {
    /// Now, on the clock that counts suspended time.
    pub fn now() -> Self {
        Self(imp::boottime())
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later (as std's `Instant`).
    pub fn duration_since(&self, earlier: Self) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Time from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_duration_since(&self, earlier: Self) -> Option<Duration> {
        self.0.checked_sub(earlier.0)
    }

    /// Time since `self`.
    pub fn elapsed(&self) -> Duration {
        Self::now().duration_since(*self)
    }

    /// `self + d`, or `None` on overflow.
    pub fn checked_add(&self, d: Duration) -> Option<Self> {
        self.0.checked_add(d).map(Self)
    }

    /// `self - d`, or `None` before the clock's origin.
    pub fn checked_sub(&self, d: Duration) -> Option<Self> {
        self.0.checked_sub(d).map(Self)
    }
}

#[cfg(not(feature = "mock-clock"))]
impl std::ops::Add<Duration> for Instant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        Self(self.0 + d)
    }
}

/// Now, on a clock that stops while the host is suspended, as time since an arbitrary origin.
/// Only its differences mean anything. Where the OS has no such pair of clocks it is the same
/// clock as [`Instant`], so no resume is ever seen.
pub fn monotonic() -> Duration {
    imp::monotonic()
}

/// Notices that the host slept between two readings: the clock that counts suspend advanced
/// more than the one that does not.
#[derive(Debug, Default)]
pub struct ResumeDetector {
    last: Option<(Instant, Duration)>,
}

impl ResumeDetector {
    /// A detector with no reading yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a reading (`now` and [`monotonic`], read together) and returns how long the host
    /// slept since the previous one, when that is more than [`RESUME_THRESHOLD`].
    pub fn observe(&mut self, now: Instant, monotonic: Duration) -> Option<Duration> {
        let (then, monotonic_then) = self.last.replace((now, monotonic))?;
        let awake = monotonic.saturating_sub(monotonic_then);
        let slept = now.duration_since(then).saturating_sub(awake);
        (slept > RESUME_THRESHOLD).then_some(slept)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(feature = "mock-clock", allow(dead_code))]
mod imp {
    use std::time::Duration;

    pub(super) fn boottime() -> Duration {
        read(libc::CLOCK_BOOTTIME)
    }

    pub(super) fn monotonic() -> Duration {
        read(libc::CLOCK_MONOTONIC)
    }

    fn read(clock: libc::clockid_t) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock ids are ones this OS defines.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        // Cannot fail for these clocks (std's `Instant` makes the same assumption).
        debug_assert_eq!(rc, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
#[cfg_attr(feature = "mock-clock", allow(dead_code))]
mod imp {
    use std::time::Duration;

    /// Apple's `CLOCK_MONOTONIC` keeps counting during sleep.
    pub(super) fn boottime() -> Duration {
        read(libc::CLOCK_MONOTONIC)
    }

    /// `CLOCK_UPTIME_RAW` stops during sleep (it is what std's `Instant` reads there).
    pub(super) fn monotonic() -> Duration {
        read(libc::CLOCK_UPTIME_RAW)
    }

    fn read(clock: libc::clockid_t) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock ids are ones this OS defines.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        debug_assert_eq!(rc, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
)))]
#[cfg_attr(feature = "mock-clock", allow(dead_code))]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    fn origin() -> Instant {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        *ORIGIN.get_or_init(Instant::now)
    }

    /// std's clock: no pair of clocks to tell a suspend by (see the module docs).
    pub(super) fn boottime() -> Duration {
        origin().elapsed()
    }

    pub(super) fn monotonic() -> Duration {
        origin().elapsed()
    }
}

#[cfg(all(test, not(feature = "mock-clock")))]
mod tests {
    use super::*;

    #[test]
    fn readings_advance_together_while_awake() {
        let (a, m) = (Instant::now(), monotonic());
        std::thread::sleep(Duration::from_millis(20));
        let (b, n) = (Instant::now(), monotonic());
        assert!(b.duration_since(a) >= Duration::from_millis(20));
        assert!(n - m >= Duration::from_millis(20));
        let mut detector = ResumeDetector::new();
        assert_eq!(
            detector.observe(a, m),
            None,
            "the first reading is a baseline"
        );
        assert_eq!(detector.observe(b, n), None, "no sleep while awake");
        assert_eq!(a.duration_since(b), Duration::ZERO, "saturates like std's");
    }

    #[test]
    fn a_jump_of_the_boottime_clock_alone_is_a_resume() {
        let mut detector = ResumeDetector::new();
        let t0 = Instant::now();
        let m0 = Duration::from_secs(100);
        assert_eq!(detector.observe(t0, m0), None);
        // Awake for a tick: both advance.
        let t1 = t0 + TIMER_TICK;
        assert_eq!(detector.observe(t1, m0 + TIMER_TICK), None);
        // Just under the threshold of extra time: jitter, not a resume.
        let t2 = t1 + TIMER_TICK + RESUME_THRESHOLD;
        assert_eq!(detector.observe(t2, m0 + 2 * TIMER_TICK), None);
        // Ten minutes asleep: boottime moved, monotonic barely.
        let t3 = t2 + Duration::from_secs(600);
        let slept = detector.observe(t3, m0 + 2 * TIMER_TICK + Duration::from_millis(1));
        assert_eq!(slept, Some(Duration::from_millis(599_999)));
        // The next reading starts from there.
        assert_eq!(detector.observe(t3 + TIMER_TICK, m0 + 3 * TIMER_TICK), None);
    }
}
