//! UI tests with egui_kittest: the real app (embedded server, live devices over WebSockets
//! on 127.0.0.1) driven through its widgets.
//! Long because each feature has its test here; the helpers they share are in `support`.

mod support;

use std::time::{Duration, Instant};

use app::gui::SyncLab;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use mock_server::scenario::Verdict;
use serde_json::json;
use sync_core::engine::Strategy;
use sync_core::engine::connection::ConnectionState;
use sync_core::protocol::Key;

use support::{app, click, data_dir, harness, live, live_on, step_until, until_connected};

#[test]
fn a_like_clicked_in_one_pane_appears_in_the_other() {
    let mut h = harness(app(2, "like"));
    until_connected(&mut h);
    click(&mut h, "phone like post-1");
    let like = Key::parse("like/post-1").unwrap();
    // The engine shows the intent in the step that handles it (optimistic); the UI sees
    // it once the device's thread has run.
    step_until(&mut h, "the phone to show its like", |a| {
        a.view(0).shown(&like) == json!(true)
    });
    step_until(&mut h, "the laptop to show the like", |a| {
        a.view(1).shown(&like) == json!(true)
    });
    step_until(&mut h, "the server panel to show the write", |a| {
        a.server().is_some_and(|s| s.writes == 1)
    });
    step_until(&mut h, "the convergence indicator to agree", |a| {
        a.agreement().is_ok()
    });
    // The wire view drew the request, its ack, and the push to the laptop.
    let labels: Vec<(String, String)> = h
        .state()
        .wire()
        .arrows()
        .map(|a| (a.device.clone(), a.label.clone()))
        .collect();
    let has = |device: &str, start: &str| {
        labels
            .iter()
            .any(|(d, l)| d == device && l.starts_with(start))
    };
    assert!(
        has("phone", "req 1 like/post-1 = true lr1 (first)"),
        "{labels:?}"
    );
    assert!(has("phone", "ack like/post-1 = true rev 1"), "{labels:?}");
    assert!(
        has("laptop", "push like/post-1 = true rev 1 from phone lr1"),
        "{labels:?}"
    );
    assert!(
        h.query_by_label_contains("all 2 devices agree with the server")
            .is_some()
    );
}

#[test]
fn a_held_frame_is_listed_and_delivering_it_changes_the_pane() {
    let mut h = harness(app(2, "hold"));
    until_connected(&mut h);
    click(&mut h, "laptop hold down");
    h.step();
    click(&mut h, "phone like post-2");
    let like = Key::parse("like/post-2").unwrap();
    step_until(&mut h, "the push to be listed in the laptop's queue", |a| {
        a.panes()[1]
            .queue
            .down
            .iter()
            .any(|f| f.starts_with("push like/post-2"))
    });
    assert_eq!(h.state().view(1).shown(&like), json!(false), "held");
    click(&mut h, "laptop deliver down 1");
    step_until(&mut h, "the laptop to show the like", |a| {
        a.view(1).shown(&like) == json!(true)
    });
}

#[test]
fn the_strategy_selector_restarts_the_device_with_its_state() {
    let mut h = harness(app(2, "strategy"));
    until_connected(&mut h);
    click(&mut h, "phone like post-3");
    let like = Key::parse("like/post-3").unwrap();
    step_until(&mut h, "the like to sync", |a| {
        a.agreement().is_ok() && a.server().is_some_and(|s| s.writes == 1)
    });
    click(&mut h, "phone strategy");
    h.run_steps(3); // the popup opens on a later frame
    click(&mut h, "naive");
    step_until(&mut h, "the phone to run naive, connected", |a| {
        let v = a.view(0);
        v.strategy == Strategy::Naive && v.connection == ConnectionState::Connected
    });
    let view = h.state().view(0);
    assert_eq!(
        view.shown(&like),
        json!(true),
        "the state survives the restart"
    );
    assert_eq!(view.counters.intents, 1, "so do the counters");
}

#[test]
fn a_slider_drag_of_30_steps_costs_at_most_two_requests() {
    let mut h = harness(app(2, "slider"));
    until_connected(&mut h);
    // Hold the phone's uplink so the whole drag happens while the first request is in
    // flight, however fast loopback is.
    click(&mut h, "phone hold up");
    h.step();
    // Link commands take effect in order: a queue listing that arrives after the click
    // means the hold is in place.
    let listed = h.state().panes()[0].queue_listings;
    step_until(&mut h, "the hold to take effect", |a| {
        a.panes()[0].queue_listings > listed
    });
    for _ in 0..30 {
        h.get_by_label("phone volume").increment_accesskit();
        h.step();
    }
    let volume = Key::Volume;
    step_until(&mut h, "the drag to be shown", |a| {
        a.view(0).shown(&volume) == json!(80)
    });
    let requests = |a: &SyncLab| {
        a.view(0)
            .counters
            .requests_by_key
            .get(&Key::Volume)
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(
        requests(h.state()),
        1,
        "one request in flight; 29 intents coalesced"
    );
    click(&mut h, "phone hold up");
    step_until(&mut h, "everyone to agree on 80", |a| {
        a.agreement().is_ok() && a.view(1).shown(&volume) == json!(80)
    });
    let n = requests(h.state());
    assert!(n <= 2, "30 steps cost {n} requests");
    assert_eq!(h.state().view(0).counters.intents, 30);
}

#[test]
fn the_server_restart_button_drops_the_devices_and_they_come_back() {
    let mut h = harness(app(2, "restart"));
    until_connected(&mut h);
    click(&mut h, "phone like post-1");
    step_until(&mut h, "the like to sync", |a| {
        a.agreement().is_ok() && a.server().is_some_and(|s| s.writes == 1)
    });
    click(&mut h, "restart");
    step_until(&mut h, "both devices to see the connection drop", |a| {
        a.panes().iter().all(|p| {
            p.log.iter().any(|e| {
                matches!(
                    e.kind,
                    sync_core::engine::events::EventKind::Connection {
                        state: ConnectionState::Reconnecting { .. }
                    }
                )
            })
        })
    });
    // Back, with the acknowledged write read from the store, and writing again.
    click(&mut h, "laptop like post-2");
    step_until(&mut h, "the second like to sync after the restart", |a| {
        a.agreement().is_ok()
            && a.server()
                .is_some_and(|s| s.writes == 2 && s.data.keys.len() == 2)
    });
}

#[test]
fn devices_are_renamed_moved_removed_and_their_layout_comes_back() {
    let mut h = harness(app(3, "layout"));
    until_connected(&mut h);
    // Rename: the label changes, the device id does not.
    click(&mut h, "laptop edit");
    h.run_steps(3); // the menu opens on a later frame
    h.get_by_label("laptop label").focus();
    h.run_steps(1);
    h.get_by_label("laptop label").type_text(" of Ana");
    h.run_steps(2);
    assert_eq!(h.state().panes()[1].title(), "laptop of Ana");
    assert!(h.query_by_label_contains("laptop of Ana").is_some());
    h.key_press(eframe::egui::Key::Escape);
    h.run_steps(2);
    // Move the tablet left of the laptop, and hold its downlink.
    click(&mut h, "tablet edit");
    h.run_steps(3);
    click(&mut h, "tablet move left");
    h.run_steps(2);
    click(&mut h, "tablet hold down");
    h.run_steps(2);
    // Remove the phone: its pane goes, and so does its snapshot.
    click(&mut h, "phone edit");
    h.run_steps(3);
    click(&mut h, "phone remove");
    h.run_steps(2);
    let ids: Vec<&str> = h.state().panes().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(ids, ["tablet", "laptop"]);
    let snapshot = data_dir("layout").join("devices").join("phone.json");
    step_until(&mut h, "the phone's snapshot to be deleted", |_| {
        !snapshot.exists()
    });

    let layout = h.state().layout();
    let summary: Vec<(&str, &str, [bool; 2])> = layout
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.label.as_str(), d.held.into()))
        .collect();
    assert_eq!(
        summary,
        [
            ("tablet", "tablet", [false, true]),
            ("laptop", "laptop of Ana", [false, false])
        ]
    );
    // Next run: the same panes in the same order, and the tablet's hold is back on the
    // server (its queue gets listed).
    let mut h = harness(SyncLab::with_layout(live("layout-again"), &layout));
    assert_eq!(h.state().layout(), layout);
    step_until(&mut h, "the tablet's held queue to be listed", |a| {
        a.panes()[0].holding() && a.panes()[0].queue_listings > 0
    });
}

/// The main window, rendered with wgpu on the CPU (lavapipe) and compared with
/// `tests/snapshots/main-window.png`; `UPDATE_SNAPSHOTS=1 cargo test` rewrites it after an
/// intended change. The state is chosen to render the same every run: three devices in
/// three different states, no intent (so no timings), the server on a fixed port.
/// The snapshots' app: three devices (one naive on Slow 4G and renamed, one offline with
/// its downlink held) in a window of this size, with the server on a fixed port (the top
/// bar shows it), stepped until its state no longer changes from run to run.
fn snapshot_app(port: u16, size: eframe::egui::Vec2) -> Harness<'static, SyncLab> {
    use app::gui::layout::Preset;
    use app::gui::layout::{DeviceLayout, Layout};
    let mut laptop = DeviceLayout::new("laptop");
    laptop.strategy = Strategy::Naive;
    laptop.links = [Preset::Slow4G.link(); 2].into();
    laptop.label = "Ana's laptop".into();
    let mut tablet = DeviceLayout::new("tablet");
    tablet.online = false;
    tablet.held = [false, true].into();
    let layout = Layout {
        devices: vec![DeviceLayout::new("phone"), laptop, tablet],
    };
    let app = SyncLab::with_layout(live_on(&format!("snapshot-{port}"), port), &layout);
    let mut h = Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut SyncLab| app.ui_root(ui), app);
    h.ctx.set_theme(eframe::egui::Theme::Light);
    step_until(&mut h, "phone and laptop connected, tablet offline", |a| {
        let states: Vec<ConnectionState> = a.views().iter().map(|v| v.connection.clone()).collect();
        states
            == [
                ConnectionState::Connected,
                ConnectionState::Connected,
                ConnectionState::Offline,
            ]
            && a.server().is_some_and(|s| s.devices == ["laptop", "phone"])
            // Every event so far is in the logs: connecting, handshaking, connected and
            // caught up; the offline tablet's two.
            && a.panes().iter().map(|p| p.log.len()).collect::<Vec<_>>() == [4, 4, 2]
    });
    // The wire's arrows carry their time since the app started, in order; the devices
    // connect after the app starts. Times, and so the order of the two welcomes, vary
    // from run to run: the snapshot is taken with the wire cleared (the scenario player's
    // snapshot shows arrows, deterministically).
    let times: Vec<Duration> = h.state().wire().arrows().map(|a| a.at).collect();
    assert_eq!(times.len(), 2, "the two welcomes, with times");
    assert!(times.is_sorted() && times[0] > Duration::ZERO, "{times:?}");
    click(&mut h, "clear");
    h.run_steps(2);
    assert_eq!(h.state().wire().arrows().count(), 0);
    h
}

#[test]
fn main_window_snapshot() {
    snapshot_app(47_911, eframe::egui::vec2(1400.0, 900.0)).snapshot("main-window");
}

/// A laptop's screen: nothing cut off without a scroll bar, nothing overlapping.
#[test]
fn main_window_snapshot_at_1280x720() {
    snapshot_app(47_914, eframe::egui::vec2(1280.0, 720.0)).snapshot("main-window-1280x720");
}

/// A projector's.
#[test]
fn main_window_snapshot_at_1600x1000() {
    snapshot_app(47_915, eframe::egui::vec2(1600.0, 1000.0)).snapshot("main-window-1600x1000");
}

/// Each section starts at the same height in every pane, however tall the others' are,
/// and folds in every pane at once.
#[test]
fn the_sections_line_up_across_four_panes_and_fold_together() {
    let mut h = harness(app(4, "sections"));
    until_connected(&mut h);
    click(&mut h, "phone hold down");
    click(&mut h, "laptop like post-1");
    step_until(&mut h, "the push to be listed in the phone's queue", |a| {
        !a.panes()[0].queue.down.is_empty()
    });
    // Clicks below are pressed in one frame and released in the next: nothing may still
    // be on its way that changes the panes in between.
    step_until(&mut h, "the laptop's like to be answered", |a| {
        !a.view(1).has_pending()
    });
    h.run_steps(2);
    let top = |h: &Harness<'_, SyncLab>, label: &str| h.get_by_label(label).rect().top();
    let phone = top(&h, "phone sync state");
    for device in ["laptop", "tablet", "watch"] {
        assert_eq!(top(&h, &format!("{device} sync state")), phone, "{device}");
    }
    assert!(h.query_by_label("watch hold up").is_some());
    click(&mut h, "watch network");
    h.run_steps(2);
    for device in ["phone", "laptop", "tablet", "watch"] {
        assert!(
            h.query_by_label(&format!("{device} hold up")).is_none(),
            "{device}'s network is folded too"
        );
    }
    assert_eq!(
        top(&h, "tablet sync state"),
        top(&h, "phone sync state"),
        "still aligned, folded"
    );
    let header = h.get_by_label("phone network").rect();
    click(&mut h, "phone network");
    h.run_steps(2);
    assert!(
        h.query_by_label("watch hold up").is_some(),
        "unfolded (the phone's network header was at {header:?}, now at {:?})",
        h.get_by_label("phone network").rect()
    );
}

/// The zoom control in the top bar zooms, and says how far.
#[test]
fn the_zoom_control_zooms_and_shows_the_size() {
    let mut h = harness(app(1, "zoom"));
    click(&mut h, "zoom in");
    h.run_steps(2);
    assert!(
        (h.ctx.zoom_factor() - 1.1).abs() < 1e-4,
        "{}",
        h.ctx.zoom_factor()
    );
    assert!(h.query_by_label("zoom 100 %").is_none());
    // Every text style reads at 13 px or more at 100 %.
    for (style, font) in &h.ctx.global_style().text_styles {
        assert!(font.size >= 13.0, "{style:?} is {} px", font.size);
    }
    click(&mut h, "zoom 110 %");
    h.run_steps(2);
    assert_eq!(h.ctx.zoom_factor(), 1.0);
    assert!(h.query_by_label("zoom 100 %").is_some());
}

#[test]
fn the_scenario_player_plays_a_lesson_and_shows_each_expectation() {
    // A fixed port and a connected device: the top bar renders the same every run.
    let mut h = harness(SyncLab::new(live_on("player", 47_913), 1));
    step_until(&mut h, "the live device to agree with the server", |a| {
        a.agreement().is_ok()
    });
    click(&mut h, "scenario player");
    h.run_steps(2);
    // The list shows titles; the buttons after it stay where they are whichever is chosen.
    let step_at = h.get_by_label("step").rect();
    click(&mut h, "lesson");
    h.run_steps(3);
    let stale_push = app::gui::player::lesson_title(4);
    assert!(stale_push.starts_with("05  A "), "{stale_push}");
    click(&mut h, &stale_push);
    h.run_steps(2);
    assert_eq!(
        h.get_by_label("step").rect(),
        step_at,
        "the buttons did not move"
    );
    // Play runs statements on its own (two a second by default); pause stops it.
    let next_line = |h: &Harness<'_, SyncLab>| h.state().player().next_line();
    let first = next_line(&h);
    click(&mut h, "play");
    let deadline = Instant::now() + Duration::from_secs(5);
    while next_line(&h) == first {
        assert!(Instant::now() < deadline, "play never ran a statement");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step(); // the button reads "pause" from the frame after the click
    // The button, not the script's `pause` line.
    h.get_all_by_label("pause")
        .find(|n| n.accesskit_node().role() == eframe::egui::accesskit::Role::Button)
        .expect("the pause button")
        .click();
    h.step();
    h.remove_cursor();
    h.run_steps(2);
    // One event at a time inside the `settle` on line 10: the statement stays running.
    while h.state().player().next_line() != Some(10) {
        click(&mut h, "step");
        h.run_steps(1);
    }
    click(&mut h, "step event");
    h.run_steps(2);
    assert!(h.query_by_label("running line 10").is_some());
    // Step to the end, one statement at a time.
    for _ in 0..100 {
        if h.query_by_label("PASS").is_some() {
            break;
        }
        click(&mut h, "step");
        h.run_steps(1);
    }
    assert!(h.query_by_label("PASS").is_some(), "the lesson passes");
    // Only the script's rows in view are laid out: the expectations among them show
    // what they checked.
    assert!(
        h.query_all_by_label_contains("held: ").count() >= 2,
        "each expectation in view shows what held"
    );
    // The simulator is deterministic: the finished lesson renders the same every run.
    h.snapshot("scenario-player");
    h.set_size(eframe::egui::vec2(1280.0, 720.0));
    h.run_steps(3);
    h.snapshot("scenario-player-1280x720");
    h.set_size(eframe::egui::vec2(1400.0, 900.0));
    h.run_steps(3);
    // Restart goes back to the beginning.
    click(&mut h, "restart");
    h.run_steps(2);
    assert!(h.query_by_label("PASS").is_none());
    // The timeline jumps into the run.
    assert_eq!(h.state().player().timeline().map(|t| t.0), Some(0));
    h.get_by_label("timeline position").increment_accesskit();
    h.run_steps(2);
    assert!(h.state().player().timeline().is_some_and(|(at, _)| at > 0));
}

#[test]
fn a_lossy_uplink_set_by_hand_costs_the_device_its_connection() {
    let mut h = harness(app(2, "loss"));
    until_connected(&mut h);
    click(&mut h, "phone link details");
    h.run_steps(2);
    // Every frame up from the phone is lost, and takes the connection with it.
    click(&mut h, "phone up loss");
    h.run_steps(1);
    h.get_by_label("phone up loss").type_text("100");
    h.key_press(eframe::egui::Key::Enter);
    h.run_steps(2);
    let links = &h.state().layout().devices[0].links;
    assert_eq!((links.up.loss, links.down.loss), (1.0, 0.0), "{links:?}");
    click(&mut h, "phone like post-1");
    step_until(&mut h, "the phone to lose its connection", |a| {
        a.panes()[0].log.iter().any(|e| {
            matches!(
                e.kind,
                sync_core::engine::events::EventKind::Connection {
                    state: ConnectionState::Reconnecting { .. }
                }
            )
        })
    });
}

/// The top bar counts every device: one offline with an unsent tap does not agree, and the
/// time is taken when the last device comes to agree.
#[test]
fn an_offline_device_with_an_unsent_tap_keeps_the_devices_from_agreeing() {
    let mut h = harness(app(2, "convergence"));
    until_connected(&mut h);
    step_until(&mut h, "both devices to agree", |a| a.agreement().is_ok());
    click(&mut h, "phone online");
    step_until(&mut h, "the phone to go offline", |a| {
        a.view(0).connection == ConnectionState::Offline
    });
    click(&mut h, "phone like post-1");
    step_until(&mut h, "the tap to show", |a| {
        a.view(0).shown(&Key::parse("like/post-1").unwrap()) == json!(true)
    });
    step_until(&mut h, "the bar to name the phone", |a| {
        a.agreement().err().as_deref() == Some("1 of 2 agree · phone offline, 1 key unconfirmed")
    });
    assert!(
        h.query_by_label("1 of 2 agree · phone offline, 1 key unconfirmed")
            .is_some(),
        "the top bar says so"
    );
    click(&mut h, "phone online");
    step_until(&mut h, "the phone to sync its tap and both to agree", |a| {
        a.agreement().is_ok() && a.server().is_some_and(|s| s.writes == 1)
    });
    assert!(
        h.query_by_label_contains("all 2 devices agree with the server,")
            .is_some(),
        "with the time after the last intent"
    );
    // The tap made offline went out after the welcome labelled for what it was: queued,
    // never sent before (not a "resend").
    let labels: Vec<String> = h.state().wire().arrows().map(|a| a.label.clone()).collect();
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("req 1 like/post-1") && l.ends_with("(queued)")),
        "{labels:?}"
    );
}

/// "reject next write" shows the rejection armed until a write fires it: the device that
/// wrote rolls back, and the armed line goes.
#[test]
fn a_rejection_is_shown_armed_until_a_write_fires_it() {
    let mut h = harness(app(2, "reject"));
    until_connected(&mut h);
    let armed = "armed: the next write to like/post-1 will be rejected";
    click(&mut h, "reject next write");
    step_until(&mut h, "the rejection to show armed", |a| {
        a.server().is_some_and(|s| !s.forced.is_empty())
    });
    assert!(h.query_by_label(armed).is_some());
    click(&mut h, "phone like post-1");
    step_until(
        &mut h,
        "the phone to roll back and the rejection to be spent",
        |a| a.view(0).counters.rollbacks == 1 && a.server().is_some_and(|s| s.forced.is_empty()),
    );
    assert!(h.query_by_label(armed).is_none());
    // The rollback shows beside the like button, though it came at once, and stays until
    // the next tap on that key.
    let like = Key::parse("like/post-1").unwrap();
    step_until(&mut h, "the pane to take the rollback", |a| {
        a.panes()[0].rolled_back(&like) == Some("true -> false")
    });
    assert!(h.query_by_label("rolled back true -> false").is_some());
    click(&mut h, "phone like post-1");
    step_until(&mut h, "the next tap to clear it", |a| {
        a.panes()[0].rolled_back(&like).is_none()
    });
    assert!(h.query_by_label("rolled back true -> false").is_none());
}

/// `naive` applies an answer to an older request over a newer intent: the pane counts the
/// regression, and the wire view marks the ack that caused it.
#[test]
fn a_naive_regression_is_counted_and_marked_on_the_wire() {
    let mut layout = app::gui::layout::Layout::first(2);
    layout.devices[0].strategy = Strategy::Naive;
    let mut h = harness(SyncLab::with_layout(live("regression"), &layout));
    until_connected(&mut h);
    click(&mut h, "phone hold down");
    let listed = h.state().panes()[0].queue_listings;
    step_until(&mut h, "the hold to take effect", |a| {
        a.panes()[0].queue_listings > listed
    });
    click(&mut h, "phone like post-1");
    click(&mut h, "phone like post-1");
    step_until(&mut h, "both answers and echoes to be held", |a| {
        let down = &a.panes()[0].queue.down;
        down.len() == 4 && down[0].starts_with("ack")
    });
    assert_eq!(h.query_all_by_label("regressions 0").count(), 2);
    click(&mut h, "phone deliver down 1");
    step_until(&mut h, "the old ack to take the screen back", |a| {
        a.view(0).counters.regressions == 1
    });
    assert!(
        h.query_by_label("regressions 1").is_some(),
        "the pane says so"
    );
    step_until(&mut h, "the wire view to mark the ack", |a| {
        a.wire().arrows().any(|w| {
            w.regressed && w.device == "phone" && w.label.starts_with("ack like/post-1 = true")
        })
    });
    click(&mut h, "phone hold down");
    step_until(&mut h, "everyone to agree on false", |a| {
        a.agreement().is_ok() && a.server().is_some_and(|s| s.writes == 2)
    });
    assert_eq!(h.state().view(0).counters.regressions, 1);
}

/// A device added with "+ device" starts on the default latency, and its link really has
/// it (the server delays its frames): a tap's answer comes a round trip later.
#[test]
fn a_new_device_starts_with_a_latency_that_shows_coalescing() {
    let mut h = harness(app(1, "add-device"));
    until_connected(&mut h);
    click(&mut h, "+ device");
    step_until(&mut h, "the laptop to connect", |a| {
        a.panes().len() == 2 && a.view(1).connection == ConnectionState::Connected
    });
    let links = h.state().layout().devices[1].links;
    assert_eq!(links, [app::gui::layout::Preset::DEFAULT.link(); 2].into());
    click(&mut h, "laptop like post-1");
    step_until(&mut h, "the laptop's like to be acknowledged", |a| {
        a.wire()
            .arrows()
            .any(|w| w.device == "laptop" && w.label.starts_with("ack like/post-1"))
    });
    let at = |start: &str| {
        h.state()
            .wire()
            .arrows()
            .find(|w| w.device == "laptop" && w.label.starts_with(start))
            .map(|w| w.at)
            .unwrap()
    };
    let round_trip = at("ack like/post-1") - at("req 1 like/post-1");
    assert!(
        round_trip >= Duration::from_millis(560),
        "the link delays each way: {round_trip:?}"
    );
}

/// Broadcast taps the same key on every ticked device; a burst repeats it; an unticked
/// device is left out.
#[test]
fn broadcast_taps_every_ticked_device_and_a_burst_repeats_it() {
    let mut h = harness(app(2, "broadcast"));
    until_connected(&mut h);
    let like = Key::parse("like/post-3").unwrap();
    let intents = |a: &SyncLab, i: usize| a.view(i).counters.intents;
    click(&mut h, "broadcast like post-3");
    step_until(&mut h, "both devices to tap", |a| {
        intents(a, 0) == 1 && intents(a, 1) == 1
    });
    click(&mut h, "3 taps");
    click(&mut h, "broadcast to laptop");
    click(&mut h, "broadcast like post-3");
    step_until(&mut h, "the phone's burst of three", |a| intents(a, 0) == 4);
    step_until(&mut h, "everyone to agree", |a| a.agreement().is_ok());
    assert_eq!(intents(h.state(), 1), 1, "the laptop was left out");
    assert!(
        h.state().view(0).counters.requests_by_key[&like] < 4,
        "a burst at human speed coalesces"
    );
}

/// Three quick taps make one burst on the device's chart: its time to agree, and its
/// requests per intent (fewer than one: they coalesced).
#[test]
fn a_burst_of_taps_becomes_a_point_on_the_device_chart() {
    let mut h = harness(app(2, "chart"));
    until_connected(&mut h);
    assert!(h.query_by_label("seconds to agree").is_none());
    for _ in 0..3 {
        click(&mut h, "phone like post-1");
    }
    step_until(&mut h, "the burst to end in agreement", |a| {
        a.panes()[0].chart.bursts().len() == 1
    });
    let [_, took, per_intent] = h.state().panes()[0].chart.bursts()[0];
    assert!(took >= 0.56, "at least a round trip: {took}");
    assert!(per_intent < 1.0, "coalesced: {per_intent}");
    assert!(
        h.state().panes()[1].chart.bursts().is_empty(),
        "the laptop made no intent"
    );
    h.run_steps(2);
    assert!(h.query_by_label("seconds to agree").is_some());
    assert!(h.query_by_label("requests per intent").is_some());
}

/// Runs the chosen recipe to its end, through the recipe bar.
fn run_recipe(h: &mut Harness<'_, SyncLab>, name: &str) {
    click(h, "recipe");
    h.run_steps(3);
    click(h, name);
    h.run_steps(2);
    click(h, "run recipe");
    let done = format!("{name}: done");
    let deadline = Instant::now() + Duration::from_secs(40);
    while h.query_by_label(&done).is_none() {
        assert!(
            h.query_by_label_contains("gave up").is_none(),
            "{name} gave up"
        );
        assert!(Instant::now() < deadline, "{name} did not finish");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Each recipe makes its edge case on the live devices, through the controls: the counters
/// show what the lesson teaches.
#[test]
fn the_recipes_make_their_edge_cases_on_the_live_devices() {
    let mut h = harness(app(2, "recipes"));
    until_connected(&mut h);
    let view = |h: &Harness<'_, SyncLab>, i: usize| h.state().view(i);
    let like = Key::parse("like/post-1").unwrap();

    run_recipe(&mut h, "make a stale push");
    assert_eq!(view(&h, 1).counters.stale, 1, "the older push was stale");
    assert_eq!(view(&h, 1).shown(&like), json!(false));

    run_recipe(&mut h, "own echo as ack");
    let taken_as_ack = h.state().panes()[0]
        .log
        .iter()
        .any(|e| matches!(e.kind, sync_core::engine::EventKind::PushTakenAsAck { .. }));
    assert!(taken_as_ack, "the echo was taken as an ack");
    assert_eq!(
        view(&h, 0).shown(&like),
        json!(false),
        "the newer intent stayed"
    );

    run_recipe(&mut h, "lose an ack");
    assert_eq!(
        view(&h, 0).counters.requests_by_key[&Key::Volume],
        2,
        "resent once after the lost ack"
    );
    step_until(&mut h, "the server to show one volume write", |a| {
        a.server().is_some_and(|s| {
            s.data
                .keys
                .get(&Key::Volume)
                .is_some_and(|k| k.value == json!(80))
        })
    });

    run_recipe(&mut h, "reject and roll back");
    assert_eq!(view(&h, 0).counters.rollbacks, 1);
    // The hold boxes are as the recipes left them: unticked.
    assert!(!h.state().panes().iter().any(|p| p.holding()));
    // Each recipe links to its lesson.
    click(&mut h, "lesson 09");
    h.run_steps(2);
    assert_eq!(h.state().mode, app::gui::Mode::Player);
    assert!(
        h.query_by_label("A rejected like rolls back").is_some(),
        "the player shows lesson 09's title"
    );
}

/// The player shows the simulated devices in the live demo's panes, and a learner can act
/// in them mid-lesson: a tap and a hold enter the simulator at the current virtual time
/// and show on the wire like any statement's.
#[test]
fn a_learner_taps_and_holds_a_simulated_device_mid_lesson() {
    let mut h = harness(app(1, "player-panes"));
    click(&mut h, "scenario player");
    h.run_steps(2);
    click(&mut h, "step");
    click(&mut h, "step");
    h.run_steps(1);
    // The same pane as live: the feed, the settings, the network controls.
    assert!(h.query_by_label("laptop like post-3").is_some());
    assert!(h.query_by_label("laptop volume").is_some());
    assert!(
        h.query_by_label("laptop strategy").is_none(),
        "the script's strategy"
    );
    click(&mut h, "laptop like post-3");
    h.run_steps(2);
    let arrows: Vec<String> = h
        .state()
        .player()
        .wire_labels()
        .into_iter()
        .filter(|(d, _)| d == "laptop")
        .map(|(_, l)| l)
        .collect();
    assert!(
        arrows
            .iter()
            .any(|l| l.starts_with("req 1 like/post-3 = true")),
        "{arrows:?}"
    );
    click(&mut h, "laptop hold down");
    h.run_steps(2);
    assert!(
        h.state().player().held("laptop"),
        "the world's link is held"
    );
    // The branch the learner took, saved: it replays to the same end.
    click(&mut h, "save .scn");
    let path = data_dir("player-panes")
        .join("branches")
        .join("branch-1.scn");
    let text = std::fs::read_to_string(&path).expect("the branch is saved");
    assert!(text.contains("laptop tap like/post-3\n"), "{text}");
    assert!(text.contains("hold laptop down\n"), "{text}");
    let scenario = mock_server::scenario::parse("branch-1.scn", &text).unwrap();
    let mut runner = mock_server::scenario::Runner::new(scenario, 0);
    assert_eq!(runner.run_to_end(), &Verdict::Pass, "{text}");
    assert!(
        h.query_by_label(&format!("saved {}", path.display()))
            .is_some()
    );
}

/// The wire view exports what it shows: SVG, Mermaid and JSON lines, from the player and
/// from the live view, and copies the Mermaid text.
#[test]
fn the_wire_view_exports_svg_mermaid_and_json_lines() {
    let dir = data_dir("wire-export-files");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("wire");
    let mut h = harness(app(2, "wire-export"));
    until_connected(&mut h);
    // Live: a like, then the Mermaid text.
    click(&mut h, "phone like post-1");
    step_until(&mut h, "the like to be acknowledged", |a| {
        a.wire()
            .arrows()
            .any(|f| f.label.starts_with("ack like/post-1"))
    });
    click(&mut h, "export");
    h.run_steps(2);
    let live_base = dir.join("live");
    type_into(&mut h, "export file", &live_base.display().to_string());
    h.run_steps(1);
    click(&mut h, "save Mermaid");
    h.run_steps(1);
    let live = std::fs::read_to_string(dir.join("live.mmd")).unwrap_or_default();
    assert!(
        live.contains("phone->>server") && live.contains("req 1 like/post-1"),
        "{live}"
    );
    h.key_press(eframe::egui::Key::Escape);
    h.run_steps(2);
    // The player: lesson 05 to its end, then SVG and JSON lines.
    click(&mut h, "scenario player");
    h.run_steps(2);
    click(&mut h, "lesson");
    h.run_steps(3);
    click(&mut h, &app::gui::player::lesson_title(4));
    h.run_steps(2);
    for _ in 0..60 {
        if h.query_by_label("PASS").is_some() {
            break;
        }
        click(&mut h, "step");
    }
    click(&mut h, "export");
    h.run_steps(2);
    type_into(&mut h, "export file", &base.display().to_string());
    h.run_steps(1);
    click(&mut h, "save SVG");
    click(&mut h, "save JSON lines");
    click(&mut h, "copy as Mermaid");
    h.run_steps(1);
    assert!(
        h.query_by_label("Mermaid copied to the clipboard")
            .is_some()
    );
    let svg = std::fs::read_to_string(base.with_extension("svg")).unwrap();
    assert_eq!(svg.matches(r#"data-kind="stale""#).count(), 1, "{svg}");
    let jsonl = std::fs::read_to_string(base.with_extension("jsonl")).unwrap();
    assert!(
        jsonl.lines().any(|l| l.contains(r#""kind":"push_stale""#)),
        "{jsonl}"
    );
}

/// Types into a text field as a person would: click into it, then type.
fn type_into(h: &mut Harness<'_, SyncLab>, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.run_steps(1);
    h.get_by_label(label).type_text(text);
    h.run_steps(1);
}

/// Narration and the presenter's keys: a `say` shows as the caption, a `pause` stops play,
/// the arrows step forward and back, space plays, `?` lists the keys.
#[test]
fn the_player_narrates_pauses_and_steps_back_with_the_presenters_keys() {
    let mut h = harness(app(1, "narrate"));
    click(&mut h, "scenario player");
    h.run_steps(2);
    let script = "devices a b\nsay \"a taps\"\na tap like/p\npause\nsay \"b sees it\"\nsettle\nexpect b like/p = true\n";
    let path = data_dir("narrate-file").with_extension("scn");
    std::fs::write(&path, script).unwrap();
    type_into(&mut h, "or a file", &path.display().to_string());
    click(&mut h, "open");
    h.run_steps(1);
    let next = |h: &Harness<'_, SyncLab>| h.state().player().next_line();
    assert_eq!(next(&h), Some(2));
    h.key_press(eframe::egui::Key::ArrowRight);
    h.run_steps(1);
    assert_eq!(h.state().player().caption().as_deref(), Some("a taps"));
    assert!(
        h.query_by_label("a taps").is_some(),
        "the caption band shows it"
    );
    // Space plays; play stops at the `pause`, before what follows it.
    h.key_press(eframe::egui::Key::Space);
    let deadline = Instant::now() + Duration::from_secs(10);
    while next(&h) != Some(5) {
        assert!(Instant::now() < deadline, "play did not reach the pause");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.run_steps(2);
    assert!(
        !h.state().player().is_playing(),
        "play stopped at the pause"
    );
    assert_eq!(next(&h), Some(5));
    // Back: the pause, the tap, the say; the caption goes with it.
    for line in [4, 3, 2] {
        h.key_press(eframe::egui::Key::ArrowLeft);
        h.run_steps(1);
        assert_eq!(next(&h), Some(line));
    }
    assert_eq!(h.state().player().caption(), None);
    h.key_press(eframe::egui::Key::Questionmark);
    h.run_steps(2);
    assert!(
        h.query_by_label("step back").is_some(),
        "the keys are listed"
    );
}

/// Record: a session with a hold, an out-of-order release and a dropped frame, saved from
/// the save window and replayed on the simulator, passes every expectation it wrote.
#[test]
fn a_recorded_session_with_a_hold_an_out_of_order_release_and_a_drop_replays_green() {
    let mut h = harness(app(2, "record"));
    until_connected(&mut h);
    step_until(&mut h, "the devices to agree", |a| a.agreement().is_ok());
    click(&mut h, "record");
    step_until(&mut h, "recording to start", |a| a.recording().is_on());
    h.step();
    click(&mut h, "laptop hold down");
    step_until(&mut h, "the hold to take effect", |a| {
        a.panes()[1].holding() && a.panes()[1].queue_listings > 0
    });
    let like = Key::parse("like/post-1").unwrap();
    for n in 1..=2 {
        click(&mut h, "phone like post-1");
        step_until(&mut h, "the phone's write to be answered", |a| {
            a.view(0).counters.intents == n && !a.view(0).has_pending()
        });
    }
    step_until(&mut h, "both pushes held for the laptop", |a| {
        a.panes()[1].queue.down.len() == 2
    });
    // The newer push first, then the older one is lost with the connection.
    click(&mut h, "laptop deliver down 2");
    step_until(&mut h, "one push left", |a| {
        a.panes()[1].queue.down.len() == 1
    });
    assert_eq!(
        h.state().view(1).shown(&like),
        json!(false),
        "two taps: back to false"
    );
    click(&mut h, "laptop drop down 1");
    step_until(&mut h, "the laptop to lose its connection", |a| {
        a.view(1).connection != ConnectionState::Connected
    });
    click(&mut h, "laptop hold down");
    step_until(&mut h, "the devices to agree again", |a| {
        a.agreement().is_ok() && !a.panes()[1].holding()
    });
    // Stopped once the world is quiet, the recording ends with a `settle`: a replay does
    // not depend on how fast the live laptop reconnected.
    step_until(&mut h, "the world to be quiet", SyncLab::quiet_for_a_settle);
    let stop = h.get_by_label_contains("stop recording");
    stop.click();
    h.step();
    h.remove_cursor();
    step_until(&mut h, "the save window", |a| a.recording().is_saving());
    // A window's first frames size it; it takes clicks after that.
    h.run_steps(3);
    click(&mut h, "save");
    let path = data_dir("record").join("recordings").join("session-1.scn");
    step_until(&mut h, "the file to be written", |_| path.exists());
    let text = std::fs::read_to_string(&path).unwrap();
    for line in [
        "hold laptop down\n",
        "expect laptop queued down = 2\nrelease laptop down 2\n",
        "expect laptop queued down = 1\ndrop laptop down 1\n",
        "unhold laptop down\n",
        "settle\nexpect phone like/post-1 = false\n",
        "expect laptop like/post-1 = false\n",
        "expect server like/post-1 = false\n",
        "expect converged\n",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    let scenario = mock_server::scenario::parse("session-1.scn", &text).unwrap();
    let mut runner = mock_server::scenario::Runner::new(scenario, 0);
    assert_eq!(runner.run_to_end(), &Verdict::Pass, "{text}");
    // And in the player, from the save window.
    click(&mut h, "open in the player");
    assert_eq!(h.state().mode, app::gui::Mode::Player);
    assert!(
        !h.state().recording().is_saving(),
        "saved: the window closed"
    );
    assert!(
        h.query_all_by_label_contains("Recorded live session")
            .next()
            .is_some()
    );
}

/// Bounded reconnect: a simulated device that stopped in `error` shows "retry now" in its
/// pane (the live demo's pane), and the click connects it at the current virtual time.
#[test]
fn a_device_stopped_in_error_retries_from_its_pane() {
    let mut h = harness(app(1, "retry"));
    click(&mut h, "scenario player");
    let lesson = app::gui::player::LESSONS
        .iter()
        .position(|(name, _)| name.starts_with("31-"))
        .expect("the bounded-reconnect lesson");
    h.state_mut().player_mut().open_lesson(lesson);
    h.run_steps(2);
    // Up to the script's own `phone retry`: the network is fine again, the phone in error.
    let text = app::gui::player::LESSONS[lesson].1;
    let retry_line = 1 + text
        .lines()
        .position(|l| l.starts_with("phone retry"))
        .expect("the lesson retries");
    while h.state().player().next_line() != Some(retry_line) {
        assert!(
            h.state_mut().player_mut().step(),
            "the retry line is reached"
        );
    }
    h.run_steps(1);
    assert!(
        h.query_by_label("error: 3 attempts failed in a row")
            .is_some(),
        "the pane says why it stopped"
    );
    click(&mut h, "phone retry now");
    h.run_steps(1);
    assert!(
        h.query_by_label("phone retry now").is_none(),
        "connecting: nothing to retry"
    );
    assert!(
        ["connecting", "handshaking"]
            .iter()
            .any(|s| h.query_by_label(s).is_some()),
        "the phone is connecting again"
    );
}

/// A live device's settings are set in its pane's menu ("advanced") and kept with the
/// layout; the device works by them: with a batch size of 2, three likes made offline go
/// out after the welcome as a batch of two and one write alone, drawn on the wire as such.
#[test]
fn the_advanced_settings_are_set_in_the_menu_kept_and_used() {
    let mut h = harness(app(1, "bound"));
    until_connected(&mut h);
    click(&mut h, "phone edit");
    h.run_steps(1);
    click(&mut h, "phone reconnect attempts 3");
    h.run_steps(1);
    // A choice closes the menu, as any menu button does.
    click(&mut h, "phone edit");
    h.run_steps(1);
    click(&mut h, "phone batch size 2");
    h.run_steps(1);
    let layout = &h.state().layout().devices[0];
    assert_eq!((layout.reconnect, layout.batch_size), (Some(3), 2));
    click(&mut h, "phone online");
    step_until(&mut h, "the phone to go offline", |a| {
        a.view(0).connection == ConnectionState::Offline
    });
    let frames = h.state().view(0).counters.frames_up;
    for post in ["post-1", "post-2", "post-3"] {
        click(&mut h, &format!("phone like {post}"));
    }
    click(&mut h, "phone online");
    step_until(&mut h, "the three likes to be stored", |a| {
        a.agreement().is_ok() && a.server().is_some_and(|s| s.writes == 3)
    });
    assert_eq!(
        h.state().view(0).counters.frames_up,
        frames + 3,
        "a hello, a batch of two, one write alone"
    );
    let labels: Vec<String> = h.state().wire().arrows().map(|a| a.label.clone()).collect();
    assert_eq!(
        labels.iter().filter(|l| l.starts_with("batch #")).count(),
        1,
        "{labels:?}"
    );
    assert!(
        labels.iter().any(|l| l.starts_with("batch_done #")),
        "{labels:?}"
    );
}

/// A comment is edited and deleted from another device's pane: "edit" puts its text in the
/// post's draft, "Save" sends the edit (same id and author), "delete" removes it
/// everywhere.
#[test]
fn a_comment_is_edited_and_deleted_from_another_pane() {
    let mut h = harness(app(2, "comment-edit"));
    until_connected(&mut h);
    type_into(&mut h, "phone comment on post-2", "Nice");
    click(&mut h, "phone send comment on post-2");
    let key = Key::parse("comments/post-2").unwrap();
    step_until(&mut h, "the laptop to see the comment with its id", |a| {
        a.view(1).shown(&key)[0]["id"] == "1"
    });
    click(&mut h, "laptop edit comment 1 on post-2");
    h.run_steps(1);
    type_into(&mut h, "laptop comment on post-2", "!");
    click(&mut h, "laptop save comment edit on post-2");
    step_until(&mut h, "the phone to see the edit", |a| {
        a.view(0).shown(&key)[0]["text"] == "Nice!"
    });
    assert_eq!(h.state().view(0).shown(&key)[0]["device_id"], "phone");
    click(&mut h, "phone delete comment 1 on post-2");
    step_until(&mut h, "both to show no comment", |a| {
        a.view(0).shown(&key) == json!([]) && a.view(1).shown(&key) == json!([])
    });
}

/// A counterexample the tests wrote, opened "at failure" from the player's file box, stops
/// where its invariant breaks and names the invariant on screen.
#[test]
fn a_counterexample_opens_where_its_invariant_breaks() {
    use sync_core::engine::mutant::{Mutant, during};
    during(Mutant::ApplyStalePushes, || {
        let mut h = harness(app(1, "counterexample"));
        click(&mut h, "scenario player");
        h.run_steps(2);
        // Eighty lines of comment first: the failing line is far below the script's view
        // until the player scrolls to it.
        let script = "# a long introduction\n".repeat(80)
            + "scenario \"Stale push\"\ndevices phone\n\nwait 0ms\n\
               server set settings/volume 8\nserver set settings/volume 70\n\
               release phone down 2\nwait 50ms\nexpect phone settings/volume = 70\n";
        let path = data_dir("counterexample-file").with_extension("scn");
        std::fs::write(&path, script).unwrap();
        type_into(&mut h, "or a file", &path.display().to_string());
        click(&mut h, "open at failure");
        h.run_steps(2);
        let verdict = h.state().player().verdict().cloned();
        assert!(
            matches!(verdict, Some(Verdict::Fail { line: 88, .. })),
            "{verdict:?}"
        );
        assert!(
            h.query_by_label_contains("FAILED: invariant 4").is_some(),
            "the script shows the failing line"
        );
        assert!(
            h.query_by_label("Invariant 4 broke: revisions never regress")
                .is_some(),
            "the invariant is named"
        );
        assert_eq!(
            h.state().player().lesson(),
            None,
            "the lesson list names no lesson while a file plays"
        );
        assert!(
            h.query_by_label_contains("It promises: a device's known server revision")
                .is_some(),
            "with what it promises"
        );
        h.snapshot("counterexample-at-failure");
    });
}

/// The server panel's "rotate token": each device hears `token_expired`, gets the new
/// token from the account after its auth delay, sends `auth` on the same connection and
/// goes on; a like made right after the rotation is stored, nothing rolls back, and the
/// account keeps the new token for devices started later.
#[test]
fn rotating_the_token_reauthenticates_every_device_and_loses_nothing() {
    let mut h = harness(app(2, "rotate"));
    until_connected(&mut h);
    click(&mut h, "rotate token");
    step_until(&mut h, "both devices to re-authenticate", |a| {
        let authed = a
            .wire()
            .arrows()
            .filter(|arrow| arrow.label.starts_with("authed #"))
            .count();
        authed == 2
    });
    click(&mut h, "phone like post-1");
    step_until(&mut h, "the like to be stored and seen by both", |a| {
        a.agreement().is_ok() && a.server().is_some_and(|s| s.writes == 1)
    });
    for d in 0..2 {
        let view = h.state().view(d);
        assert_eq!(view.connection, ConnectionState::Connected);
        assert_eq!(view.counters.rollbacks, 0);
    }
    let kept = std::fs::read_to_string(data_dir("rotate").join("account-token")).unwrap();
    assert!(kept.starts_with("demo-token-"), "{kept}");
}

/// The server panel's "block WebSockets": every device loses its WebSocket, is refused
/// three times and falls back to polling over HTTP — the pane says so, a like is stored by
/// `POST` and reaches the other device at its next poll — and once unticked, each goes
/// back to the WebSocket at its next attempt.
#[test]
fn blocking_websockets_makes_the_devices_poll_and_unblocking_brings_them_back() {
    let mut h = harness(app(2, "block"));
    until_connected(&mut h);
    click(&mut h, "block WebSockets");
    step_until(&mut h, "both devices polling", |a| {
        a.views()
            .iter()
            .all(|v| v.connection == ConnectionState::Polling)
    });
    // Each pane's badge says so (and its log).
    assert!(h.query_all_by_label_contains("polling over HTTP").count() >= 2);
    click(&mut h, "phone like post-1");
    step_until(
        &mut h,
        "the like stored over HTTP and polled by the laptop",
        |a| {
            a.agreement().is_ok()
                && a.server()
                    .is_some_and(|s| s.writes == 1 && s.websocket_blocked)
        },
    );
    assert!(
        h.state()
            .wire()
            .arrows()
            .any(|arrow| arrow.label.starts_with("GET changes since")),
        "the polls are on the wire"
    );
    click(&mut h, "block WebSockets");
    step_until(&mut h, "both devices back on the WebSocket", |a| {
        a.views()
            .iter()
            .all(|v| v.connection == ConnectionState::Connected)
            && a.server().is_some_and(|s| !s.websocket_blocked)
    });
}
