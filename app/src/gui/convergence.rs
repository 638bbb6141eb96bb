//! The top bar's verdict: do the devices agree with the server? Every device counts.
//!
//! A device agrees when it is connected, has nothing in flight, and shows the server's
//! value and knows its revision for every stored key. One that is offline or reconnecting
//! does not agree, whatever it shows: it cannot know what it missed, and taps it made
//! offline are not on the server yet. (Skipping such devices made the bar say "all agree"
//! while a phone held two unsent taps.)

use mock_server::core::store::{Difference, UserData};
use sync_core::engine::DeviceView;
use sync_core::engine::connection::ConnectionState;

/// How many devices agree, and why the first one that does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// Devices that agree.
    pub agree: usize,
    /// All devices.
    pub total: usize,
    /// What keeps the first disagreeing device (in pane order) from agreeing.
    pub first_problem: Option<String>,
}

impl Agreement {
    /// `true` when every device agrees.
    pub fn all(&self) -> bool {
        self.agree == self.total
    }

    /// The bar's text: "2 of 3 agree · tablet offline, 2 keys unconfirmed".
    pub fn summary(&self) -> String {
        match &self.first_problem {
            None if self.total == 1 => "the device agrees with the server".into(),
            None => format!("all {} devices agree with the server", self.total),
            Some(why) => format!("{} of {} agree · {why}", self.agree, self.total),
        }
    }
}

/// Judges every device, named, against what the server stores.
pub fn judge<'a>(
    server: &UserData,
    devices: impl IntoIterator<Item = (&'a str, &'a DeviceView)>,
) -> Agreement {
    let mut agreement = Agreement {
        agree: 0,
        total: 0,
        first_problem: None,
    };
    for (name, view) in devices {
        agreement.total += 1;
        match problem(server, name, view) {
            None => agreement.agree += 1,
            Some(why) => {
                agreement.first_problem.get_or_insert(why);
            }
        }
    }
    agreement
}

/// Whether one device agrees with the server.
pub fn agrees(server: &UserData, view: &DeviceView) -> bool {
    problem(server, "", view).is_none()
}

/// Why `view` does not agree with the server, if it does not.
fn problem(server: &UserData, name: &str, view: &DeviceView) -> Option<String> {
    // A polling device owes agreement as a connected one does (SCENARIOS.md, `expect
    // converged`): it learns every change at its next poll.
    if !matches!(
        view.connection,
        ConnectionState::Connected | ConnectionState::Polling
    ) {
        let unconfirmed = view
            .keys
            .iter()
            .filter(|k| k.in_flight.is_some() || k.slot.shown != k.slot.confirmed)
            .count();
        let state = match &view.connection {
            ConnectionState::Offline => "offline".to_string(),
            other => other.to_string(),
        };
        return Some(match unconfirmed {
            0 => format!("{name} {state}"),
            1 => format!("{name} {state}, 1 key unconfirmed"),
            n => format!("{name} {state}, {n} keys unconfirmed"),
        });
    }
    let known = |key: &_| view.key(key).map_or(0, |k| k.known_rev);
    server
        .difference(view.has_pending(), |key| view.shown(key), known)
        .map(|d| match d {
            Difference::Pending => format!("{name} has a request in flight"),
            Difference::Value { key, .. } | Difference::Rev { key, .. } => {
                format!("{name} differs on {key}")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mock_server::core::store::Stored;
    use serde_json::json;
    use sync_core::engine::state::{Counters, KeySlot};
    use sync_core::engine::{KeyView, Strategy};
    use sync_core::protocol::Key;

    fn like(post: &str) -> Key {
        Key::parse(&format!("like/{post}")).unwrap()
    }

    fn device(connection: ConnectionState, keys: Vec<KeyView>) -> DeviceView {
        DeviceView {
            device_id: "d".into(),
            strategy: Strategy::SyncWithPush,
            connection,
            token: Default::default(),
            keys,
            counters: Counters::default(),
            cursor: 0,
            clock_cursor: None,
            settings: Default::default(),
            retry_at: None,
            next_poll_at: None,
        }
    }

    /// A key the device shows as `shown`, confirmed `confirmed` at `rev`.
    fn key(k: Key, shown: bool, confirmed: bool, rev: u64) -> KeyView {
        let mut slot = KeySlot::new(&k);
        slot.shown = json!(shown);
        slot.confirmed = json!(confirmed);
        slot.known_rev = rev;
        KeyView {
            key: k,
            slot,
            known_rev: rev,
            in_flight: None,
            follow_up_pending: false,
        }
    }

    fn server(likes: &[(&str, bool, u64)]) -> UserData {
        let mut data = UserData::default();
        for (post, value, rev) in likes {
            data.keys.insert(
                like(post),
                Stored {
                    value: json!(value),
                    rev: *rev,
                    device_id: "phone".into(),
                    local_rev: 1,
                    time_ms: 0,
                },
            );
            data.head = data.head.max(*rev);
        }
        data
    }

    #[test]
    fn an_offline_device_with_unsent_taps_does_not_agree() {
        let server = server(&[]);
        let phone = device(
            ConnectionState::Offline,
            vec![
                key(like("a"), true, false, 0),
                key(like("b"), true, false, 0),
            ],
        );
        let laptop = device(ConnectionState::Connected, vec![]);
        let a = judge(&server, [("phone", &phone), ("laptop", &laptop)]);
        assert!(!a.all());
        assert_eq!(
            a.summary(),
            "1 of 2 agree · phone offline, 2 keys unconfirmed"
        );
    }

    #[test]
    fn connected_devices_showing_the_servers_values_and_revisions_agree() {
        let server = server(&[("a", true, 3)]);
        let phone = device(
            ConnectionState::Connected,
            vec![key(like("a"), true, true, 3)],
        );
        let a = judge(&server, [("phone", &phone)]);
        assert!(a.all());
        assert_eq!(a.summary(), "the device agrees with the server");
        let stale = device(
            ConnectionState::Connected,
            vec![key(like("a"), true, true, 2)],
        );
        let a = judge(&server, [("phone", &phone), ("tablet", &stale)]);
        assert_eq!(a.summary(), "1 of 2 agree · tablet differs on like/a");
    }
}
