//! What the host did to this machine while `loadgen` measured: the two ways a virtual
//! machine's speed drifts under a benchmark, printed beside each phase so that a figure
//! can be read with them.
//!
//! - [`Ticks`]: *steal*, the time the host gave a core here to others while it had work.
//!   The kernel counts it (`/proc/stat`).
//! - [`Spells`]: *slow spells*, stretches in which the cores run, but slower. No counter
//!   shows them: on the machines this was written on, both cores ran about ten times
//!   slower for 60–80 ms every 1.3–3 s, with steal at 0 %. A single task that must finish
//!   each step before the next (the sync server's core, whose commit is a few hundred
//!   microseconds of CPU) falls behind in such a spell, where work spread over many tasks
//!   (the echo and relay servers) does not; so the spells show in the sync server's ack
//!   latency tail. A thread of its own ([`start_pace`]) times a small fixed piece of work
//!   every 10 ms, and calls a sample slow when it took several times the usual.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The whole machine's CPU time so far, in clock ticks, and the part of it that was steal:
/// time a virtual machine's host gave to others while a core here had work. Steal slows
/// everything measured while it lasts; `loadgen` prints it beside each phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ticks {
    pub steal: u64,
    pub all: u64,
}

impl Ticks {
    pub fn now() -> Option<Ticks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        Some(Ticks {
            steal: *fields.get(7)?,
            all: fields.iter().take(8).sum(),
        })
    }
}

impl std::iter::Sum for Ticks {
    fn sum<I: Iterator<Item = Ticks>>(iter: I) -> Ticks {
        iter.fold(Ticks::default(), |sum, t| Ticks {
            steal: sum.steal + t.steal,
            all: sum.all + t.all,
        })
    }
}

/// How often the pace sampler samples: a spell of 60 ms gets several samples, and the
/// samples cost about 0.2 % of one core.
const PERIOD: Duration = Duration::from_millis(10);

/// A sample is slow when its work took this many times the run's median: well above
/// the drift of a busy core (another thread on the same physical core, a cold cache),
/// well below the spells' tenfold.
const SLOW: u32 = 3;

/// Steps of the timed work: about 5–10 µs on the machines measured.
const STEPS: u64 = 4_000;

/// The pace sampler's samples, once [`start_pace`] ran: when each was taken and how long
/// its work took. One per process, as the machine is one; read like `/proc/stat`.
static SAMPLES: OnceLock<Mutex<Vec<(Instant, Duration)>>> = OnceLock::new();

/// Starts the pace sampler: a thread that times the same small piece of work every
/// [`PERIOD`], for as long as the process lives. A second call does nothing.
pub fn start_pace() {
    if SAMPLES.set(Mutex::new(Vec::new())).is_err() {
        return;
    }
    std::thread::spawn(|| {
        let Some(into) = SAMPLES.get() else { return };
        loop {
            // The least of three: a sample the scheduler interrupted (a full core, a time
            // slice given to another thread) is not a slow machine, and an interruption
            // rarely hits three runs in a row.
            let took = (0..3).map(|_| timed_work()).min().unwrap_or_default();
            if let Ok(mut samples) = into.lock() {
                samples.push((Instant::now(), took));
            }
            std::thread::sleep(PERIOD);
        }
    });
}

/// The slow spells within a measured stretch.
#[derive(Debug, Default)]
pub struct Spells {
    /// Each spell's begin and end, in order, not overlapping.
    slow: Vec<(Instant, Instant)>,
    /// How much of the stretch they cover.
    covered: Duration,
    /// The stretch's length.
    span: Duration,
}

impl Spells {
    /// The slow spells between `from` and `to`, judged against the median of every
    /// sample so far (none if the sampler was not started).
    pub fn between(from: Instant, to: Instant) -> Spells {
        SAMPLES
            .get()
            .and_then(|s| s.lock().ok())
            .map_or_else(Spells::default, |samples| Spells::of(&samples, from, to))
    }

    /// The slow spells between `from` and `to` among `samples` (each a time and how long
    /// the work took then, in order), judged against their median.
    fn of(samples: &[(Instant, Duration)], from: Instant, to: Instant) -> Spells {
        let mut sorted: Vec<Duration> = samples.iter().map(|(_, took)| *took).collect();
        sorted.sort_unstable();
        let Some(&median) = sorted.get(sorted.len() / 2) else {
            return Spells::default();
        };
        let mut slow: Vec<(Instant, Instant)> = Vec::new();
        for (i, &(at, took)) in samples.iter().enumerate() {
            if took <= median * SLOW {
                continue;
            }
            // The spell may have begun just after the sample before (for the first sample,
            // at its own time), and last until the sample after: the spell is known only to
            // that precision.
            let begin = i.checked_sub(1).map_or(at, |j| samples[j].0);
            let end = samples.get(i + 1).map_or(at + PERIOD, |s| s.0);
            match slow.last_mut() {
                Some(last) if begin <= last.1 => last.1 = last.1.max(end),
                _ => slow.push((begin, end)),
            }
        }
        slow.retain(|&(begin, end)| end > from && begin < to);
        let covered = slow
            .iter()
            .map(|&(begin, end)| end.min(to) - begin.max(from))
            .sum();
        Spells {
            slow,
            covered,
            span: to.saturating_duration_since(from),
        }
    }

    /// Whether something that ran from `from` to `to` overlapped a spell.
    pub fn touch(&self, from: Instant, to: Instant) -> bool {
        self.slow
            .iter()
            .any(|&(begin, end)| from < end && begin < to)
    }

    /// "N slow spells, X % of the time", for a report.
    pub fn summary(&self) -> String {
        let share = if self.span.is_zero() {
            0.0
        } else {
            100.0 * self.covered.as_secs_f64() / self.span.as_secs_f64()
        };
        format!(
            "{} slow spell{}, {share:.0} % of the time",
            self.slow.len(),
            if self.slow.len() == 1 { "" } else { "s" }
        )
    }
}

/// The fixed piece of work, timed: a chain of multiplications the compiler can neither
/// skip nor run in parallel.
fn timed_work() -> Duration {
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..STEPS {
        x = std::hint::black_box(x.rotate_left(5) ^ i).wrapping_mul(0x0100_0000_01b3);
    }
    std::hint::black_box(x);
    start.elapsed()
}

/// The spells of several stretches (slices taken at different times), together.
impl std::iter::Sum for Spells {
    fn sum<I: Iterator<Item = Spells>>(iter: I) -> Spells {
        iter.fold(Spells::default(), |mut sum, s| {
            sum.slow.extend(s.slow);
            sum.covered += s.covered;
            sum.span += s.span;
            sum
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USUAL: Duration = Duration::from_micros(7);

    /// Samples every [`PERIOD`] from `start`, slow (ten times the usual) where `slow` says.
    fn samples(start: Instant, slow: &[bool]) -> Vec<(Instant, Duration)> {
        (0..slow.len())
            .map(|i| {
                let took = if slow[i] { USUAL * 10 } else { USUAL };
                (start + PERIOD * i as u32, took)
            })
            .collect()
    }

    #[test]
    fn a_run_of_slow_samples_is_one_spell_from_the_sample_before_to_the_one_after() {
        let t0 = Instant::now();
        let mut slow = vec![false; 100];
        slow[10..16].fill(true);
        slow[50] = true;
        let all = samples(t0, &slow);
        let spells = Spells::of(&all, t0, t0 + PERIOD * 100);
        assert_eq!(
            spells.slow,
            vec![
                (t0 + PERIOD * 9, t0 + PERIOD * 16),
                (t0 + PERIOD * 49, t0 + PERIOD * 51)
            ]
        );
        assert_eq!(spells.covered, PERIOD * 9);
        assert_eq!(spells.summary(), "2 slow spells, 9 % of the time");
        assert!(spells.touch(t0 + PERIOD * 15, t0 + PERIOD * 30));
        assert!(!spells.touch(t0 + PERIOD * 16, t0 + PERIOD * 49));
    }

    #[test]
    fn only_the_spells_within_the_stretch_count_and_only_their_part_inside() {
        let t0 = Instant::now();
        let mut slow = vec![false; 100];
        slow[10..16].fill(true);
        slow[80..90].fill(true);
        let all = samples(t0, &slow);
        let spells = Spells::of(&all, t0 + PERIOD * 12, t0 + PERIOD * 60);
        assert_eq!(spells.slow.len(), 1);
        assert_eq!(spells.covered, PERIOD * 4);
        assert_eq!(spells.span, PERIOD * 48);
    }

    #[test]
    fn a_busy_core_is_not_a_slow_spell_and_no_samples_give_none() {
        let t0 = Instant::now();
        // Twice the usual now and then (a thread sharing the core): under the threshold.
        let all: Vec<_> = (0..100u32)
            .map(|i| (t0 + PERIOD * i, if i % 7 == 0 { USUAL * 2 } else { USUAL }))
            .collect();
        assert_eq!(
            Spells::of(&all, t0, t0 + PERIOD * 100).summary(),
            "0 slow spells, 0 % of the time"
        );
        assert!(Spells::of(&[], t0, t0 + PERIOD).slow.is_empty());
    }

    #[test]
    fn spells_of_slices_add_up() {
        let t0 = Instant::now();
        let mut slow = vec![false; 200];
        slow[10..20].fill(true);
        slow[150..160].fill(true);
        let all = samples(t0, &slow);
        let sum: Spells = [
            Spells::of(&all, t0, t0 + PERIOD * 100),
            Spells::of(&all, t0 + PERIOD * 100, t0 + PERIOD * 200),
        ]
        .into_iter()
        .sum();
        assert_eq!(sum.slow.len(), 2);
        assert_eq!(sum.covered, PERIOD * 22);
        assert_eq!(sum.span, PERIOD * 200);
    }
}
