//! A device's session in two small charts: for each burst of intents, how long until the
//! device agreed with the server again, and how many requests each intent cost. Flicker,
//! coalescing and slow links show as shapes, which people read faster than counters.
//!
//! A burst starts with an intent made while the device had nothing unconfirmed, takes in
//! every intent and request after it, and ends when the device agrees with the server (as
//! the top bar judges it, [`super::convergence`]).

use std::time::Duration;

use eframe::egui;
use egui_plot::{Plot, Points};
use sync_core::engine::EventKind;

use super::style;

/// Bursts kept per device (the oldest go).
const KEEP: usize = 200;

/// One device's bursts. Times count from the session's time 0 (the app's start, or the
/// scenario's), as the wire view's do.
#[derive(Default)]
pub struct Chart {
    /// What ends a burst.
    pub basis: Basis,
    open: Option<Burst>,
    /// Finished bursts: start (s), seconds to agree, requests per intent.
    done: Vec<[f64; 3]>,
}

/// What ends a burst.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Basis {
    /// The device agrees with the server's state.
    #[default]
    Agreed,
    /// The device is connected with nothing in flight (the server's state cannot be
    /// read: an external server without its admin token).
    Settled,
}

struct Burst {
    started: Duration,
    intents: u64,
    requests: u64,
}

impl Chart {
    /// Takes one of the device's events, at the time it happened.
    pub fn event(&mut self, kind: &EventKind, at: Duration) {
        match kind {
            EventKind::OptimisticWrite { .. } => {
                self.open
                    .get_or_insert(Burst {
                        started: at,
                        intents: 0,
                        requests: 0,
                    })
                    .intents += 1;
            }
            EventKind::RequestSent { .. } => {
                if let Some(b) = &mut self.open {
                    b.requests += 1;
                }
            }
            _ => {}
        }
    }

    /// The device agrees with the server now: an open burst ends.
    pub fn agreed(&mut self, now: Duration) {
        let Some(b) = self.open.take() else {
            return;
        };
        let start = b.started.as_secs_f64();
        let took = now.saturating_sub(b.started).as_secs_f64();
        self.done
            .push([start, took, b.requests as f64 / b.intents.max(1) as f64]);
        if self.done.len() > KEEP {
            self.done.remove(0);
        }
    }

    /// The finished bursts: `[start s, seconds to agree, requests per intent]`.
    pub fn bursts(&self) -> &[[f64; 3]] {
        &self.done
    }

    /// The two charts side by side, or a line saying what will appear.
    pub fn ui(&self, ui: &mut egui::Ui, id: &str) {
        if self.done.is_empty() {
            ui.label(
                egui::RichText::new("tap something: each burst of taps becomes a point here")
                    .small()
                    .weak(),
            );
            return;
        }
        ui.columns(2, |cols| {
            let took = match self.basis {
                Basis::Agreed => "seconds to agree",
                Basis::Settled => "seconds to settle",
            };
            self.plot(&mut cols[0], id, took, 1, style::AMBER);
            self.plot(&mut cols[1], id, "requests per intent", 2, style::BLUE);
        });
    }

    fn plot(&self, ui: &mut egui::Ui, id: &str, what: &str, column: usize, color: egui::Color32) {
        ui.label(egui::RichText::new(what).small());
        let points: Vec<[f64; 2]> = self.done.iter().map(|b| [b[0], b[column]]).collect();
        Plot::new(format!("{id}-{what}"))
            .height(80.0)
            // Room above the highest point: a point on the frame's edge is hard to see.
            .set_margin_fraction(egui::vec2(0.05, 0.2))
            .include_y(0.0)
            .include_y(1.0)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .x_axis_formatter(|mark, _| format!("{} s", mark.value))
            .show(ui, |plot| {
                plot.points(Points::new(what, points).radius(3.5).color(color));
            });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sync_core::optimistic::SendKind;
    use sync_core::protocol::Key;

    use super::*;

    fn intent() -> EventKind {
        EventKind::OptimisticWrite {
            key: Key::DarkMode,
            value: json!(true),
            local_rev: 1,
        }
    }

    fn request() -> EventKind {
        EventKind::RequestSent {
            key: Key::DarkMode,
            id: 3,
            number: 1,
            value: json!(true),
            local_rev: 1,
            kind: SendKind::First,
            batch: None,
        }
    }

    #[test]
    fn a_burst_runs_from_its_first_intent_to_agreement() {
        let at = Duration::from_millis;
        let mut chart = Chart::default();
        chart.agreed(at(10));
        assert!(chart.bursts().is_empty(), "no intent, no burst");
        for ms in [1000, 1150, 1300] {
            chart.event(&intent(), at(ms));
        }
        chart.event(&request(), at(1000));
        chart.event(&request(), at(1600));
        chart.agreed(at(2500));
        chart.agreed(at(2600));
        assert_eq!(chart.bursts(), &[[1.0, 1.5, 2.0 / 3.0]]);
        chart.event(&request(), at(3000));
        chart.event(&intent(), at(4000));
        chart.agreed(at(4250));
        assert_eq!(
            chart.bursts()[1],
            [4.0, 0.25, 0.0],
            "a request outside a burst is not counted"
        );
    }
}
