//! A pane's feed (likes, comments) and settings: the user's intents, each with what is
//! happening to its key beside it.

use eframe::egui::{self, RichText};
use serde_json::{Value, json};
use sync_core::engine::DeviceView;
use sync_core::protocol::Key;

use super::state::badge;
use super::{POSTS, Pane, PaneAction};
use crate::gui::style;

impl Pane {
    /// What is happening to `key` beside its control: a request in flight, a follow-up,
    /// or the rollback that was the key's last change.
    fn key_badge(&self, ui: &mut egui::Ui, view: &DeviceView, key: &Key) {
        if let Some(kv) = view.key(key)
            && let Some((value, local_rev)) = &kv.in_flight
        {
            let shown = if key.kind() == sync_core::protocol::ValueKind::Comments {
                "comment".to_string()
            } else {
                value.to_string()
            };
            badge(
                ui,
                RichText::new(format!("sending {shown} (local rev {local_rev})"))
                    .small()
                    .color(style::AMBER),
                "A request is in flight with this value and local revision",
            );
            if kv.follow_up_pending {
                badge(
                    ui,
                    RichText::new("+ follow-up").small().color(style::PURPLE),
                    "The user acted after the request went out: the newest intent follows when the answer arrives",
                );
            }
        }
        if let Some(change) = self.rolled_back.get(key) {
            badge(
                ui,
                RichText::new(format!("rolled back {change}"))
                    .strong()
                    .color(style::RED),
                "The server refused the write, and this device still showed the value it had sent: it went back to the server's value",
            );
        }
    }

    pub(super) fn feed(
        &mut self,
        ui: &mut egui::Ui,
        view: &DeviceView,
        actions: &mut Vec<PaneAction>,
    ) {
        for (i, post) in POSTS.iter().enumerate() {
            let like = Key::Like((*post).into());
            let liked = view.shown(&like) == json!(true);
            // One line whatever the badges say (they truncate, in full on hover): a row
            // that grew a line would move every section below, in every pane, under the
            // user's pointer.
            ui.horizontal(|ui| {
                ui.label(RichText::new(*post).strong());
                let text = if liked { "Liked" } else { "Like" };
                let button = ui
                    .add(egui::Button::new(text).selected(liked))
                    .on_hover_text("Shown at once (optimistic); synced in the background");
                let label = format!("{} like {post}", self.name);
                button.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                if button.clicked() {
                    actions.push(PaneAction::Tap(like.clone()));
                }
                self.key_badge(ui, view, &like);
            });
            let comments = Key::Comments((*post).into());
            let shown = view.shown(&comments);
            let list = shown.as_array().map(Vec::as_slice).unwrap_or_default();
            // An edit whose comment is gone (deleted elsewhere) is over.
            if let Some(id) = &self.editing[i]
                && !list.iter().any(|c| c["id"] == id.as_str())
            {
                self.editing[i] = None;
            }
            for c in list.iter().rev().take(3).rev() {
                self.comment_row(ui, i, &comments, c, actions);
            }
            ui.horizontal(|ui| {
                let label = format!("{} comment on {post}", self.name);
                let hint = if self.editing[i].is_some() {
                    "edit the comment"
                } else {
                    "add a comment"
                };
                let edit = ui.add(
                    egui::TextEdit::singleline(&mut self.comment_drafts[i])
                        .hint_text(hint)
                        .desired_width(140.0),
                );
                edit.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &label));
                let (text, what) = match self.editing[i] {
                    Some(_) => ("Save", "save comment edit on"),
                    None => ("Send", "send comment on"),
                };
                let send = ui.button(text);
                let send_label = format!("{} {what} {post}", self.name);
                send.widget_info(|| {
                    egui::WidgetInfo::labeled(egui::Role::Button, true, &send_label)
                });
                if self.editing[i].is_some() {
                    let cancel = ui.small_button("cancel");
                    let label = format!("{} cancel comment edit on {post}", self.name);
                    cancel.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                    });
                    if cancel.clicked() {
                        self.editing[i] = None;
                        self.comment_drafts[i].clear();
                    }
                }
                let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if (send.clicked() || enter) && !self.comment_drafts[i].trim().is_empty() {
                    let text = std::mem::take(&mut self.comment_drafts[i]);
                    actions.push(match self.editing[i].take() {
                        Some(id) => PaneAction::EditComment(comments.clone(), id, text),
                        None => PaneAction::Comment(comments.clone(), text),
                    });
                }
            });
        }
    }

    pub(super) fn settings(
        &mut self,
        ui: &mut egui::Ui,
        view: &DeviceView,
        actions: &mut Vec<PaneAction>,
    ) {
        ui.horizontal_wrapped(|ui| {
            for (key, text) in [
                (Key::DarkMode, "dark mode"),
                (Key::Notifications, "notifications"),
            ] {
                let mut on = view.shown(&key) == json!(true);
                let r = ui.checkbox(&mut on, text);
                let label = format!("{} {text}", self.name);
                r.widget_info(|| {
                    egui::WidgetInfo::selected(egui::Role::CheckBox, true, on, &label)
                });
                if r.changed() {
                    actions.push(PaneAction::Tap(key.clone()));
                }
                self.key_badge(ui, view, &key);
            }
        });
        ui.horizontal(|ui| {
            // The device runs on another thread: until its view has taken the last intent
            // (its local revision caught up), show what the user set, so a fast drag does
            // not start its next step from a stale value.
            let local_rev = view.key(&Key::Volume).map_or(0, |k| k.slot.local_rev);
            if self
                .volume_pending
                .is_some_and(|(_, expected)| local_rev >= expected)
            {
                self.volume_pending = None;
            }
            let mut volume = self.volume_pending.map_or_else(
                || view.shown(&Key::Volume).as_i64().unwrap_or(50),
                |(v, _)| v,
            );
            ui.label("volume");
            let r = ui.add(egui::Slider::new(&mut volume, 0..=100));
            let label = format!("{} volume", self.name);
            r.widget_info(|| egui::WidgetInfo::slider(true, volume as f64, &label));
            if r.changed() {
                // Every step of a drag is an intent: watch them coalesce.
                let expected = self.volume_pending.map_or(local_rev, |(_, e)| e) + 1;
                self.volume_pending = Some((volume, expected));
                actions.push(PaneAction::Set(Key::Volume, json!(volume)));
            }
            self.key_badge(ui, view, &Key::Volume);
        });
        ui.horizontal(|ui| {
            ui.label("name");
            let edit = ui.add(
                egui::TextEdit::singleline(&mut self.name_draft)
                    .hint_text(
                        view.shown(&Key::DisplayName)
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    )
                    .desired_width(120.0),
            );
            let label = format!("{} display name", self.name);
            edit.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &label));
            let save = ui.button("Save");
            if save.clicked()
                || (edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)))
            {
                actions.push(PaneAction::Set(
                    Key::DisplayName,
                    json!(std::mem::take(&mut self.name_draft)),
                ));
            }
            ui.label(
                RichText::new(
                    view.shown(&Key::DisplayName)
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
                .strong(),
            );
            self.key_badge(ui, view, &Key::DisplayName);
        });
    }

    /// One comment: its author and text, and (once the server numbered it) "edit", which
    /// puts its text in the post's draft to change and save, and "delete". A pending one
    /// is shown in italics, without them.
    fn comment_row(
        &mut self,
        ui: &mut egui::Ui,
        post: usize,
        key: &Key,
        comment: &Value,
        actions: &mut Vec<PaneAction>,
    ) {
        let id = comment["id"].as_str().unwrap_or_default().to_string();
        let pending = id.starts_with("pending");
        let text = comment["text"].as_str().unwrap_or_default().to_string();
        ui.horizontal(|ui| {
            let mut rt = RichText::new(format!(
                "  {}: {text}",
                comment["device_id"].as_str().unwrap_or("?")
            ))
            .small();
            if pending {
                ui.label(rt.italics().weak());
                return;
            }
            if self.editing[post].as_deref() == Some(id.as_str()) {
                rt = rt.underline();
            }
            ui.add(egui::Label::new(rt).truncate());
            let post_name = POSTS[post];
            let edit = ui.small_button("edit");
            let label = format!("{} edit comment {id} on {post_name}", self.name);
            edit.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
            if edit.clicked() {
                self.editing[post] = Some(id.clone());
                self.comment_drafts[post] = text.clone();
            }
            let delete = ui
                .small_button("delete")
                .on_hover_text("Any device of the user may delete any comment");
            let label = format!("{} delete comment {id} on {post_name}", self.name);
            delete.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
            if delete.clicked() {
                if self.editing[post].as_deref() == Some(id.as_str()) {
                    self.editing[post] = None;
                }
                actions.push(PaneAction::DeleteComment(key.clone(), id.clone()));
            }
        });
    }
}
