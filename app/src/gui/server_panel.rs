//! The server panel: the authoritative table (key, value, revision, writer, local
//! revision), the head revision, connected devices, accepted writes, and fault controls.

use eframe::egui::{self, RichText};
use mock_server::core::store::UserData;
use mock_server::net::Inspection;
use sync_core::protocol::Key;

use super::live::Live;
use super::style;

/// A fault the panel asks the app to make (the app records it if recording, then does it).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerAction {
    /// Restart the server as after a crash.
    Restart,
    /// Reject the next write to the key.
    RejectNext(Key),
    /// Rotate the user's token: the old one expires now.
    RotateToken,
    /// Refuse WebSocket upgrades (`true`: devices fall back to polling) or stop refusing.
    BlockWebsocket(bool),
}

/// The block switch's label.
const BLOCK: &str = "block WebSockets";

/// Draws the panel; the fault the user asked for, if any.
pub fn ui(
    ui: &mut egui::Ui,
    live: &Live,
    state: Option<&Inspection>,
    reject_key: &mut Key,
) -> Option<ServerAction> {
    ui.heading("Server");
    if let Err(why) = live.controls() {
        // The controls stay in view, off, saying what would turn them on.
        ui.label(RichText::new("no admin token: table and faults off").color(style::AMBER))
            .on_hover_text(why);
        ui.add_enabled(false, egui::Button::new("restart"))
            .on_disabled_hover_text(why);
        ui.add_enabled(false, egui::Button::new("reject next write"))
            .on_disabled_hover_text(why);
        ui.add_enabled(false, egui::Button::new("rotate token"))
            .on_disabled_hover_text(why);
        ui.add_enabled(false, egui::Checkbox::new(&mut false, BLOCK))
            .on_disabled_hover_text(why);
        return None;
    }
    if let Some(e) = live.inspect_error() {
        ui.label(RichText::new(e).color(style::RED));
    }
    let Some(state) = state else {
        ui.label("waiting for the server's state");
        return None;
    };
    let mut action = None;
    ui.horizontal(|ui| {
        if ui
            .button("restart")
            .on_hover_text(
                "Restart the server as after a crash: every device loses its connection and \
                 reconnects; acknowledged writes come back from the store.",
            )
            .clicked()
        {
            action = Some(ServerAction::Restart);
        }
        if ui
            .button("rotate token")
            .on_hover_text(
                "Rotate the user's token: the new one is valid at once and the old one expires \
                 now. Connected devices are told token_expired, their writes are refused (kept, \
                 not rolled back), and each re-authenticates once its token source hands it the \
                 new token (its pane's auth delay); 30 s without that and the server closes it.",
            )
            .clicked()
        {
            action = Some(ServerAction::RotateToken);
        }
        let mut blocked = state.websocket_blocked;
        let toggled = ui
            .checkbox(&mut blocked, BLOCK)
            .on_hover_text(
                "Play a proxy that blocks WebSockets: every device connection closes (1001) and \
                 every new upgrade is refused 503, while plain HTTP on the same port keeps \
                 working. After its `fallback after` refused attempts in a row a device polls \
                 over HTTP; untick to let the WebSockets back in.",
            )
            .changed();
        if toggled {
            action = Some(ServerAction::BlockWebsocket(blocked));
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
        egui::ComboBox::from_id_salt("reject-key")
            .selected_text(RichText::new(reject_key.to_string()).monospace())
            .show_ui(ui, |ui| {
                for key in keys_in_use(&state.data) {
                    let text = key.to_string();
                    ui.selectable_value(reject_key, key, text);
                }
            })
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "reject key"));
        let button = ui.button("reject next write").on_hover_text(
            "The server refuses the next write to this key (code `forced`, step 6 of the \
             pipeline), whichever device makes it: that device rolls back to the server's value",
        );
        if button.clicked() {
            action = Some(ServerAction::RejectNext(reject_key.clone()));
        }
    });
    for key in &state.forced {
        ui.label(
            RichText::new(format!("armed: the next write to {key} will be rejected"))
                .color(style::AMBER),
        );
    }
    action
}

/// The keys a rejection can be aimed at: every key the panes write, and any other the
/// server stores.
fn keys_in_use(data: &UserData) -> Vec<Key> {
    let mut keys: Vec<Key> = super::pane::POSTS
        .iter()
        .flat_map(|post| [format!("like/{post}"), format!("comments/{post}")])
        .chain(
            ["dark_mode", "notifications", "volume", "display_name"]
                .map(|s| format!("settings/{s}")),
        )
        .filter_map(|k| Key::parse(&k).ok())
        .chain(data.keys.keys().cloned())
        .collect();
    keys.sort_by_key(Key::to_string);
    keys.dedup();
    keys
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
                ui.label(RichText::new(key.to_string()).font(style::mono()));
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
