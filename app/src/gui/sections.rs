//! The panes' sections — the header, the feed, settings, network, sync state, charts and
//! recent events. Each section folds in every pane at once, and starts at the same height in
//! every pane: a section is as tall as the tallest of its kind in the last frame. With
//! four devices side by side the rows line up, so a learner compares across, not up and
//! down.

use eframe::egui::{self, Sense, vec2};

/// A pane's sections, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The device's name, strategy, online switch and connection status (never folds).
    Header,
    /// Likes and comments.
    Feed,
    /// Switches, the volume slider, the display name.
    Settings,
    /// Latency presets, holds, the held frames.
    Network,
    /// The per-key table and the counters.
    SyncState,
    /// The device's bursts as charts.
    Charts,
    /// The device's latest events.
    Events,
}

const COUNT: usize = 7;

impl Section {
    /// What its fold header says; `None` for the header, which does not fold.
    fn title(self) -> Option<&'static str> {
        match self {
            Section::Header => None,
            Section::Feed => Some("feed"),
            Section::Settings => Some("settings"),
            Section::Network => Some("network"),
            Section::SyncState => Some("sync state"),
            Section::Charts => Some("charts"),
            Section::Events => Some("recent events"),
        }
    }
}

/// Which sections are open, and how tall each kind was.
pub struct Sections {
    open: [bool; COUNT],
    /// Each kind's height in the last frame (the tallest pane's).
    last: [f32; COUNT],
    /// The same, measured in this frame so far.
    this: [f32; COUNT],
}

impl Default for Sections {
    fn default() -> Self {
        Sections {
            open: [true; COUNT],
            last: [0.0; COUNT],
            this: [0.0; COUNT],
        }
    }
}

impl Sections {
    /// Draws one pane's section: its fold header (labelled "`pane` `title`" for tests and
    /// screen readers), then, when open, its contents; at least as tall as the tallest
    /// section of its kind was.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        pane: &str,
        section: Section,
        contents: impl FnOnce(&mut egui::Ui),
    ) {
        let i = section as usize;
        // Measured without the minimum, so a section that shrank in every pane shrinks.
        let natural = ui
            .scope(|ui| {
                ui.set_min_height(self.last[i]);
                ui.vertical(|ui| {
                    if let Some(title) = section.title() {
                        self.header(ui, pane, i, title);
                    }
                    if self.open[i] {
                        contents(ui);
                    }
                })
                .response
                .rect
                .height()
            })
            .inner;
        self.this[i] = self.this[i].max(natural);
        if section != Section::Events {
            ui.separator();
        }
    }

    fn header(&mut self, ui: &mut egui::Ui, pane: &str, i: usize, title: &str) {
        let height = ui.text_style_height(&egui::TextStyle::Small) + 4.0;
        let font = egui::TextStyle::Small.resolve(ui.style());
        let color = ui.visuals().strong_text_color();
        let galley = ui.painter().layout_no_wrap(title.to_string(), font, color);
        // As wide as the icon and the title: a header spanning the pane could reach past
        // a narrow pane's visible edge, where a click at its middle would land elsewhere.
        let width = height + 4.0 + galley.size().x;
        let (rect, response) = ui.allocate_exact_size(vec2(width, height), Sense::click());
        let icon = egui::Rect::from_min_size(rect.min, vec2(height, height));
        let icon_response = response.clone().with_new_rect(icon);
        egui::collapsing_header::paint_default_icon(
            ui,
            if self.open[i] { 1.0 } else { 0.0 },
            &icon_response,
        );
        let at = rect.left_center() + vec2(height + 2.0, -galley.size().y / 2.0);
        ui.painter().galley(at, galley, color);
        let label = format!("{pane} {title}");
        let open = self.open[i];
        response.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, open, &label));
        let response = response.on_hover_text(if open {
            "Fold this section in every pane"
        } else {
            "Unfold this section in every pane"
        });
        if response.clicked() {
            self.open[i] = !open;
        }
    }

    /// Ends the frame: this frame's heights are the next frame's minimums. A change asks
    /// for one more frame, so a section that shrank is drawn short at once.
    pub fn end_frame(&mut self, ctx: &egui::Context) {
        if self.this != self.last {
            ctx.request_repaint();
        }
        self.last = std::mem::take(&mut self.this);
    }
}
