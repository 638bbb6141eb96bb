//! What the app remembers between runs: the panes in their order, and for each device its
//! label, strategy and network settings (and the latency presets those start from). Kept
//! in eframe's storage (a file in the app's data directory, so `--reset` forgets it too)
//! as JSON, so a damaged entry is reported with what was wrong instead of being dropped
//! silently.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_core::engine::{CursorMode, DeviceSettings, Strategy};

use mock_server::link::{LinkConfig, Pair};

use super::NAMES;

/// Network presets: Chrome DevTools' added round-trip latency, split half each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// No added delay.
    None,
    /// 165 ms round trip.
    Fast4G,
    /// 562.5 ms round trip.
    Slow4G,
    /// 2000 ms round trip.
    ThreeG,
}

impl Preset {
    /// New devices start here: at 562.5 ms round trip, taps at human speed (several a
    /// second) land while a request is in flight, so coalescing and follow-ups show. On
    /// loopback with no added latency every tap is answered before the next, and the
    /// rules that make the strategies differ never come into play.
    pub const DEFAULT: Preset = Preset::Slow4G;

    /// Every preset, in the box's order.
    pub const ALL: [Preset; 4] = [Preset::None, Preset::Fast4G, Preset::Slow4G, Preset::ThreeG];

    /// As the box lists it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::None => "no added latency",
            Preset::Fast4G => "Fast 4G (165 ms RTT)",
            Preset::Slow4G => "Slow 4G (562.5 ms RTT)",
            Preset::ThreeG => "3G (2000 ms RTT)",
        }
    }

    /// One direction's settings: half the round trip.
    pub fn link(self) -> LinkConfig {
        let rtt_us: u64 = match self {
            Preset::None => 0,
            Preset::Fast4G => 165_000,
            Preset::Slow4G => 562_500,
            Preset::ThreeG => 2_000_000,
        };
        LinkConfig {
            latency: Duration::from_micros(rtt_us / 2),
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

/// The key under which the layout is stored.
pub const STORAGE_KEY: &str = "sync-lab-layout";

/// The devices, in pane order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// One entry per pane, left to right.
    pub devices: Vec<DeviceLayout>,
}

/// One device as the user left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceLayout {
    /// The device id: fixed for the device's life (its revisions and the server's
    /// idempotency watermarks belong to it), one of [`NAMES`].
    pub id: String,
    /// The name shown on the pane and the wire view; the user may change it.
    pub label: String,
    /// How it syncs.
    pub strategy: Strategy,
    /// Latency, jitter and loss of each direction (up, down).
    pub links: Pair<LinkConfig>,
    /// Whether each direction (up, down) is held.
    pub held: Pair<bool>,
    /// `false` when the user took it offline.
    pub online: bool,
    /// After this many failed attempts in a row the device stops in `error` (`None`: it
    /// keeps trying). Missing in layouts saved before it existed.
    #[serde(default)]
    pub reconnect: Option<u32>,
    /// The most writes one `batch` frame carries. Missing in layouts saved before it
    /// existed: the default.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long the token source takes to hand over a rotated token, in ms (`None`:
    /// never). Missing in layouts saved before it existed: the default.
    #[serde(default = "default_auth_delay_ms")]
    pub auth_delay_ms: Option<u64>,
    /// Catches up by its clock (`since_time`) instead of its revision cursor.
    #[serde(default)]
    pub clock_cursor: bool,
    /// How far its clock runs ahead (or behind, negative), in ms.
    #[serde(default)]
    pub clock_skew_ms: i64,
    /// After this many refused upgrades in a row the device polls over HTTP. Missing in
    /// layouts saved before it existed: the default.
    #[serde(default = "default_fallback_after")]
    pub fallback_after: u32,
    /// How often a polling device fetches changes, in ms. Missing in layouts saved before
    /// it existed: the default.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

fn default_fallback_after() -> u32 {
    DeviceSettings::default().fallback_after
}

fn default_poll_interval_ms() -> u64 {
    DeviceSettings::default().poll_interval.as_millis() as u64
}

fn default_batch_size() -> usize {
    DeviceSettings::default().batch_size
}

fn default_auth_delay_ms() -> Option<u64> {
    DeviceSettings::default()
        .auth_delay
        .map(|d| d.as_millis() as u64)
}

impl DeviceLayout {
    /// A new device as it starts: labelled with its id, `sync-with-push`, on
    /// [`Preset::DEFAULT`]'s latency and no other fault.
    pub fn new(id: &str) -> DeviceLayout {
        DeviceLayout {
            id: id.to_string(),
            label: id.to_string(),
            strategy: Strategy::SyncWithPush,
            links: Pair::both(Preset::DEFAULT.link()),
            held: Pair::both(false),
            online: true,
            reconnect: None,
            batch_size: default_batch_size(),
            auth_delay_ms: default_auth_delay_ms(),
            clock_cursor: false,
            clock_skew_ms: 0,
            fallback_after: default_fallback_after(),
            poll_interval_ms: default_poll_interval_ms(),
        }
    }

    /// The device settings it keeps (the pane menu's "advanced" part).
    pub fn settings(&self) -> DeviceSettings {
        DeviceSettings {
            reconnect_bound: self.reconnect,
            batch_size: self.batch_size,
            auth_delay: self.auth_delay_ms.map(Duration::from_millis),
            cursor: if self.clock_cursor {
                CursorMode::Clock
            } else {
                CursorMode::Revision
            },
            clock_skew_ms: self.clock_skew_ms,
            fallback_after: self.fallback_after,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
        }
        .sanitized()
    }
}

impl Layout {
    /// The first `n` devices of [`NAMES`] (at least one, at most all).
    pub fn first(n: usize) -> Layout {
        Layout {
            devices: NAMES
                .iter()
                .take(n.clamp(1, NAMES.len()))
                .map(|id| DeviceLayout::new(id))
                .collect(),
        }
    }

    /// Reads a stored layout; the error says what is wrong with it.
    pub fn from_json(text: &str) -> Result<Layout, String> {
        let layout: Layout = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if layout.devices.is_empty() {
            return Err("no devices".into());
        }
        for (i, d) in layout.devices.iter().enumerate() {
            if !NAMES.contains(&d.id.as_str()) {
                return Err(format!("device {}: unknown id `{}`", i + 1, d.id));
            }
            if layout.devices[..i].iter().any(|e| e.id == d.id) {
                return Err(format!("device {}: `{}` appears twice", i + 1, d.id));
            }
            if let Some((_, bad)) = d.links.iter().find(|(_, l)| !(0.0..=1.0).contains(&l.loss)) {
                return Err(format!(
                    "device {}: loss {} is not a probability in 0..=1",
                    i + 1,
                    bad.loss
                ));
            }
        }
        Ok(layout)
    }

    /// The layout as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a layout always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_round_trips() {
        let mut layout = Layout::first(3);
        layout.devices[1].label = "Ana's laptop".into();
        layout.devices[1].strategy = Strategy::Naive;
        layout.devices[2].links = [Preset::Slow4G.link(), Preset::ThreeG.link()].into();
        layout.devices[2].held = [false, true].into();
        layout.devices.swap(0, 2);
        assert_eq!(Layout::from_json(&layout.to_json()), Ok(layout));
    }

    #[test]
    fn a_damaged_layout_says_what_is_wrong() {
        let err = |text: &str| Layout::from_json(text).unwrap_err();
        assert!(err("{").contains("EOF"), "{}", err("{"));
        assert_eq!(err(r#"{"devices":[]}"#), "no devices");
        let mut layout = Layout::first(2);
        layout.devices[1].id = "toaster".into();
        assert_eq!(err(&layout.to_json()), "device 2: unknown id `toaster`");
        layout.devices[1].id = "phone".into();
        assert_eq!(err(&layout.to_json()), "device 2: `phone` appears twice");
        layout.devices[1].id = "laptop".into();
        layout.devices[0].links.down.loss = 1.5;
        assert_eq!(
            err(&layout.to_json()),
            "device 1: loss 1.5 is not a probability in 0..=1"
        );
        let unknown = r#"{"devices":[],"colour":1}"#;
        assert!(
            err(unknown).contains("unknown field `colour`"),
            "{}",
            err(unknown)
        );
    }
}
