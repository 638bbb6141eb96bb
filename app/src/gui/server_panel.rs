//! The server panel: the authoritative table (key, value, revision, writer, local
//! revision), the head revision, connected devices, accepted writes, and fault controls.

use eframe::egui::{self, RichText};
use mock_server::core::store::UserData;
use mock_server::net::Inspection;
use sync_core::protocol::Key;

use super::live::Live;

/// Draws the panel.
pub fn ui(ui: &mut egui::Ui, live: &Live, state: Option<&Inspection>, reject_key: &mut String) {
    ui.heading("Server");
    if !live.embedded() {
        ui.label("External server: its table is not shown here.");
        return;
    }
    let Some(state) = state else {
        ui.label("…");
        return;
    };
    ui.horizontal(|ui| {
        if ui
            .button("restart")
            .on_hover_text(
                "Restart the server as after a crash: every device loses its connection and \
                 reconnects; acknowledged writes come back from the store.",
            )
            .clicked()
        {
            live.restart_server();
        }
        ui.label(format!(
            "head revision {} · accepted writes {}",
            state.data.head, state.writes
        ));
    });
    ui.label(format!("connected: {}", state.devices.join(", ")));
    ui.separator();
    table(ui, &state.data);
    ui.separator();
    ui.label(RichText::new("fault injection").strong());
    ui.horizontal(|ui| {
        let label = ui.label("key");
        ui.add(egui::TextEdit::singleline(reject_key).desired_width(150.0))
            .labelled_by(label.id);
        let parsed = Key::parse(reject_key.trim());
        let button = ui.add_enabled(parsed.is_ok(), egui::Button::new("reject next write"));
        if button.clicked()
            && let Ok(key) = parsed
        {
            live.reject_next(key);
        }
    });
}

/// The authoritative table, newest write first: key, value, revision, writer (local rev).
pub fn table(ui: &mut egui::Ui, data: &UserData) {
    egui::Grid::new("server-table")
        .striped(true)
        .num_columns(4)
        .show(ui, |ui| {
            for h in ["key", "value", "rev", "writer (local rev)"] {
                ui.label(RichText::new(h).small().strong());
            }
            ui.end_row();
            let mut rows: Vec<_> = data.keys.iter().collect();
            rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.rev));
            for (key, s) in rows {
                ui.label(RichText::new(key.to_string()).font(egui::FontId::monospace(11.0)));
                let value = match &s.value {
                    serde_json::Value::Array(a) => format!("[{} comments]", a.len()),
                    v => v.to_string(),
                };
                ui.label(RichText::new(value).small());
                ui.label(RichText::new(s.rev.to_string()).small());
                ui.label(RichText::new(format!("{} ({})", s.device_id, s.local_rev)).small());
                ui.end_row();
            }
        });
}
