//! The app against the standalone `mock-server` binary (`--server`): the devices sign in as
//! the given user, and every fault control reaches the server through its admin socket
//! when the app has the admin token; without it they are off, saying why.

mod support;

use app::gui::SyncLab;
use app::gui::live::{External, Live, LiveConfig};
use egui_kittest::kittest::{NodeT, Queryable};
use serde_json::json;
use sync_core::engine::connection::ConnectionState;
use sync_core::protocol::Key;

use support::{StandaloneServer, click, data_dir, harness, step_until, until_connected};

/// The app with two devices on an external server, as user `ana`.
fn app_on(server: &StandaloneServer, name: &str, admin_token: Option<&str>) -> SyncLab {
    let data = data_dir(name);
    let _ = std::fs::remove_dir_all(&data);
    let config = LiveConfig {
        data,
        server: Some(External {
            url: server.url.clone(),
            user: "ana".into(),
            token: "secret".into(),
            admin_token: admin_token.map(String::from),
        }),
        port: 0,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let live = Live::start(rt, &config, std::sync::Arc::new(|| {})).unwrap();
    SyncLab::new(live, 2)
}

#[test]
fn every_control_works_against_the_standalone_server_through_its_admin_socket() {
    let server = StandaloneServer::start(
        "external-admin",
        &["--token", "ana=secret", "--admin-token", "adm-7"],
    );
    let mut h = harness(app_on(&server, "external-admin-app", Some("adm-7")));
    until_connected(&mut h);
    // The server's table, through `inspect`.
    step_until(&mut h, "the server's state", |a| {
        a.server().is_some_and(|s| s.devices == ["laptop", "phone"])
    });
    // A hold, a listed frame, and delivering it.
    click(&mut h, "laptop hold down");
    let listed = h.state().panes()[1].queue_listings;
    step_until(&mut h, "the hold to take effect", |a| {
        a.panes()[1].queue_listings > listed
    });
    click(&mut h, "phone like post-2");
    let like = Key::parse("like/post-2").unwrap();
    step_until(&mut h, "the push to wait for the laptop", |a| {
        a.panes()[1]
            .queue
            .down
            .iter()
            .any(|f| f.starts_with("push like/post-2"))
    });
    assert_eq!(h.state().view(1).shown(&like), json!(false));
    click(&mut h, "laptop deliver down 1");
    step_until(&mut h, "the laptop to take the push", |a| {
        a.view(1).shown(&like) == json!(true)
    });
    click(&mut h, "laptop hold down");
    // Reject next write: armed, then spent by the phone's tap, which rolls back.
    click(&mut h, "reject next write");
    step_until(&mut h, "the rejection armed", |a| {
        a.server().is_some_and(|s| !s.forced.is_empty())
    });
    click(&mut h, "phone like post-1");
    step_until(&mut h, "the phone to roll back", |a| {
        a.view(0).counters.rollbacks == 1
    });
    // Restart: both devices lose the connection and come back; the write is still there.
    click(&mut h, "restart");
    step_until(&mut h, "both devices to see the restart", |a| {
        a.panes().iter().all(|p| {
            p.log.iter().any(|e| {
                matches!(
                    e.kind,
                    sync_core::engine::EventKind::Connection {
                        state: ConnectionState::Reconnecting { .. }
                    }
                )
            })
        })
    });
    until_connected(&mut h);
    step_until(&mut h, "everyone to agree after the restart", |a| {
        a.agreement().is_ok() && a.server().is_some_and(|s| s.writes == 1)
    });
}

#[test]
fn without_the_admin_token_the_controls_are_off_and_say_why() {
    let server = StandaloneServer::start("external-plain", &["--token", "ana=secret"]);
    let mut h = harness(app_on(&server, "external-plain-app", None));
    until_connected(&mut h);
    for control in [
        "phone hold up",
        "laptop hold down",
        "restart",
        "reject next write",
    ] {
        assert!(
            h.get_by_label(control).accesskit_node().is_disabled(),
            "{control} is off"
        );
    }
    assert!(
        h.query_by_label("no admin token: table and faults off")
            .is_some()
    );
    assert!(h.get_by_label("run recipe").accesskit_node().is_disabled());
    // The panes show the links as the server has them: no added latency.
    let links = h.state().layout().devices[0].links;
    assert_eq!(links, [app::gui::layout::Preset::None.link(); 2].into());
    assert!(h.query_by_label_contains("user ana").is_some());
    // The devices still sync, as ana.
    click(&mut h, "phone like post-3");
    let like = Key::parse("like/post-3").unwrap();
    step_until(&mut h, "the laptop to see the like", |a| {
        a.view(1).shown(&like) == json!(true)
    });
    // Nothing can read the server's state: the top bar says so instead of waiting, and
    // the chart ends a burst when the device settles, saying which it measures.
    assert_eq!(
        h.state().agreement().unwrap_err(),
        "agreement unknown: reading the server's state needs its admin token"
    );
    step_until(&mut h, "the phone's burst to end", |a| {
        a.panes()[0].chart.bursts().len() == 1
    });
    h.run_steps(2);
    assert!(h.query_by_label("seconds to settle").is_some());
}
