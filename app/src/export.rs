//! Exports of a run or a live session (SCENARIOS.md, "Recording a live session, exporting
//! a run"): the wire diagram as SVG and as a Mermaid `sequenceDiagram`, and the trace as
//! JSON lines. The diagrams draw the same arrows as the wire view — one per frame the
//! devices handled, labelled and coloured by [`crate::present`] — so a bug report shows
//! what the screen showed.

use std::fmt::Write as _;
use std::time::Duration;

use mock_server::sim::{Trace, TraceKind};
use serde_json::{Value, json};
use sync_core::engine::EventKind;
use sync_core::protocol::HttpCall;

use crate::gui::style;
use crate::present::{LEGEND, REGRESSED_LEGEND, Tone, Way, present, regressed_label};

/// One frame of the diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// When, since the session's time 0.
    pub at: Duration,
    /// The device at one end (its id).
    pub device: String,
    /// Which way.
    pub way: Way,
    /// What it says.
    pub label: String,
    /// Its kind (SCENARIOS.md: the device's judgement, else the frame's type).
    pub kind: &'static str,
    /// Its colour's meaning.
    pub tone: Tone,
    /// Applying it took the device's screen back (a regression): drawn thick.
    pub regressed: bool,
}

/// What a device event adds to a diagram.
pub enum Drawn {
    /// A frame.
    Frame(Frame),
    /// The device's last frame took its screen back: mark it (the event comes right
    /// after the frame that caused it).
    Regression,
}

/// What `kind`, an event of `device` at `at`, adds to a diagram (the wire view and the
/// exports draw the same).
pub fn draw(device: &str, kind: &EventKind, at: Duration) -> Option<Drawn> {
    if let EventKind::Regressed { .. } = kind {
        return Some(Drawn::Regression);
    }
    let p = present(kind);
    p.arrow.map(|a| {
        Drawn::Frame(Frame {
            at,
            device: device.to_string(),
            way: a.way,
            label: a.label,
            kind: a.kind,
            tone: p.tone,
            regressed: false,
        })
    })
}

/// The frames of a simulator run, from its trace (times since `t0`).
pub fn frames_of_trace(trace: &[Trace], t0: Duration) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for t in trace {
        let (TraceKind::Device(kind), Some(device)) = (&t.kind, &t.device) else {
            continue;
        };
        match draw(device, kind, t.at.saturating_sub(t0)) {
            Some(Drawn::Frame(f)) => frames.push(f),
            Some(Drawn::Regression) => {
                if let Some(f) = frames.iter_mut().rev().find(|f| f.device == *device) {
                    f.regressed = true;
                }
            }
            None => {}
        }
    }
    frames
}

/// Lane width, row height and margins of the SVG, in pixels.
const LANE: f64 = 300.0;
const ROW: f64 = 30.0;
const LEFT: f64 = 90.0;
const TOP: f64 = 100.0;

/// The diagram as a standalone SVG: a title, a lane per device and one for the server,
/// each frame a `<g class="frame" data-kind=…>` with its arrow, label and time.
pub fn svg(title: &str, devices: &[String], frames: &[Frame]) -> String {
    let lanes: Vec<&str> = std::iter::once("server")
        .chain(devices.iter().map(String::as_str))
        .collect();
    let x = |lane: &str| {
        let i = lanes.iter().position(|l| *l == lane).unwrap_or(0);
        LEFT + LANE * (i as f64 + 0.5)
    };
    let width = LEFT + LANE * lanes.len() as f64 + 20.0;
    let height = TOP + ROW * frames.len() as f64 + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="16" y="30" font-size="20" font-weight="bold">{}</text>"##,
        escape(title)
    );
    // The legend: what each colour means, as in the app.
    let mut lx = 16.0;
    for (tone, what) in LEGEND.into_iter().chain([REGRESSED_LEGEND]) {
        let _ = write!(
            out,
            r#"<text x="{lx}" y="52" font-size="12" fill="{}">{what}</text>"#,
            hex(tone)
        );
        lx += 6.8 * what.len() as f64 + 18.0;
    }
    out.push('\n');
    for lane in &lanes {
        let lx = x(lane);
        let _ = writeln!(
            out,
            r##"<g class="lane"><text x="{lx}" y="{}" font-size="15" font-weight="bold" text-anchor="middle">{}</text><line x1="{lx}" y1="{}" x2="{lx}" y2="{}" stroke="#aaaaaa" stroke-width="1"/></g>"##,
            TOP - 16.0,
            escape(lane),
            TOP - 8.0,
            height - 20.0
        );
    }
    for (row, f) in frames.iter().enumerate() {
        let y = TOP + ROW * (row as f64 + 0.75);
        let (from, to) = match f.way {
            Way::ToServer => (x(&f.device), x("server")),
            Way::ToDevice => (x("server"), x(&f.device)),
        };
        let color = hex(f.tone);
        let back = if to > from { -8.0 } else { 8.0 };
        let (stroke, label) = if f.regressed {
            (3.5, regressed_label(&f.label))
        } else {
            (1.6, f.label.clone())
        };
        let _ = writeln!(
            out,
            r##"<g class="frame" data-kind="{kind}" data-device="{device}" data-t-ms="{ms}"><text x="8" y="{y}" font-size="12" fill="#777777" font-family="DejaVu Sans Mono, monospace">{secs:.3} s</text><line x1="{from}" y1="{y}" x2="{to}" y2="{y}" stroke="{color}" stroke-width="{stroke}"/><polygon points="{to},{y} {hx},{y1} {hx},{y2}" fill="{color}"/><text x="{mid}" y="{ty}" font-size="12" fill="{color}" text-anchor="middle" font-family="DejaVu Sans Mono, monospace" paint-order="stroke" stroke="#ffffff" stroke-width="4">{label}</text></g>"##,
            kind = f.kind,
            device = escape(&f.device),
            ms = f.at.as_millis(),
            secs = f.at.as_secs_f64(),
            hx = to + back,
            y1 = y - 4.0,
            y2 = y + 4.0,
            mid = (from + to) / 2.0,
            ty = y - 5.0,
            label = escape(&label),
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The diagram as a Mermaid `sequenceDiagram` (frames in order; times in the messages).
pub fn mermaid(devices: &[String], frames: &[Frame]) -> String {
    let mut out = String::from("sequenceDiagram\n    participant server\n");
    for d in devices {
        let _ = writeln!(out, "    participant {}", mermaid_id(d));
    }
    for f in frames {
        let (from, to, arrow) = match f.way {
            Way::ToServer => (mermaid_id(&f.device), "server".to_string(), "->>"),
            Way::ToDevice => ("server".to_string(), mermaid_id(&f.device), "-->>"),
        };
        let _ = writeln!(
            out,
            "    {from}{arrow}{to}: {:.3}s {} [{}]",
            f.at.as_secs_f64(),
            mermaid_text(&f.label),
            f.kind
        );
    }
    out
}

/// The trace as JSON lines: one object per entry with `t_ms`, `device` (or `server`),
/// `kind` and the entry's fields.
pub fn trace_jsonl(trace: &[Trace], t0: Duration) -> String {
    let mut out = String::new();
    for t in trace {
        let at = t.at.saturating_sub(t0);
        let device = t.device.as_deref().unwrap_or("server");
        let mut line = json!({
            "t_ms": at.as_secs_f64() * 1000.0,
            "device": device,
        });
        let fields = match &t.kind {
            TraceKind::Device(e) => {
                out.push_str(&event_line(at, device, e));
                out.push('\n');
                continue;
            }
            TraceKind::Up(f) => {
                line["kind"] = json!("sent");
                json!({ "frame": f })
            }
            TraceKind::Down(f) => {
                line["kind"] = json!("received");
                json!({ "frame": f })
            }
            TraceKind::HttpUp(call) => {
                line["kind"] = json!("sent");
                let request = format!("{} {}", call.method(), call.path_and_query());
                match call {
                    HttpCall::Write(f) => json!({ "http": request, "frame": f }),
                    HttpCall::Changes(_) => json!({ "http": request }),
                }
            }
            TraceKind::HttpDown(answer) => {
                line["kind"] = json!("received");
                json!({ "status": answer.status, "body": answer.body })
            }
            TraceKind::Lost(what) => {
                line["kind"] = json!("lost");
                json!({ "what": what })
            }
            TraceKind::ServerRestart => {
                line["kind"] = json!("server_restart");
                json!({})
            }
            TraceKind::DeviceRestart => {
                line["kind"] = json!("device_restart");
                json!({})
            }
            TraceKind::Say(text) => {
                line["kind"] = json!("say");
                json!({ "text": text })
            }
        };
        if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
            for (k, v) in fields {
                line.entry(k).or_insert(v);
            }
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// An event as a JSON line's `kind` (its name) and its other fields.
fn event_fields(event: &EventKind) -> (Value, Value) {
    let mut v = serde_json::to_value(event).unwrap_or(Value::Null);
    let name = v
        .as_object_mut()
        .and_then(|o| o.remove("event"))
        .unwrap_or(Value::Null);
    (name, v)
}

/// One device event as a JSON line: `t_ms`, `device`, `kind` (its name) and its fields.
pub fn event_line(at: Duration, device: &str, event: &EventKind) -> String {
    let (name, fields) = event_fields(event);
    let mut line = json!({
        "t_ms": at.as_secs_f64() * 1000.0,
        "device": device,
        "kind": name,
    });
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
        for (k, v) in fields {
            line.entry(k).or_insert(v);
        }
    }
    line.to_string()
}

/// A tone's colour as `#rrggbb` (the palette the app draws with).
fn hex(tone: Tone) -> String {
    let c = style::color(tone);
    format!("#{:02x}{:02x}{:02x}", c.r(), c.g(), c.b())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A participant name Mermaid takes as is (letters, digits, `_`).
fn mermaid_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Message text without what Mermaid would read as syntax (`;` ends a statement, `#`
/// starts an entity).
fn mermaid_text(text: &str) -> String {
    text.replace(';', ",").replace('#', "no. ")
}
