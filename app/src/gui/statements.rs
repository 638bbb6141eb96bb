//! A pane's actions in the scenario language. The player does a learner's action by
//! handing these statements to its runner, and the recorder writes the same statements
//! for a live session: one translation, so what a pane does on the simulator, what a
//! recording says and what a script says are the same thing.

use mock_server::link::{Fault, LinkConfig, Pair};
use mock_server::scenario::ast::{Pick, Stmt};
use mock_server::scenario::write::changes;

use super::pane::PaneAction;

/// The statements that do `action` on device `d`, whose link in the action's direction
/// is `link` now (a link change writes only the settings it changes). `None` for what
/// the language cannot say mid-run: a strategy or a device setting (setup statements),
/// moving or removing a pane (a scenario's devices are its setup).
pub fn of(action: &PaneAction, d: usize, links: Pair<LinkConfig>) -> Option<Vec<Stmt>> {
    Some(match action {
        PaneAction::Tap(key) => vec![Stmt::Tap(d, key.clone())],
        PaneAction::Set(key, value) => vec![Stmt::Set(d, key.clone(), value.clone())],
        PaneAction::Comment(key, text) => vec![Stmt::Comment(d, key.clone(), text.clone())],
        PaneAction::EditComment(key, id, text) => {
            vec![Stmt::EditComment(d, key.clone(), id.clone(), text.clone())]
        }
        PaneAction::DeleteComment(key, id) => vec![Stmt::DeleteComment(d, key.clone(), id.clone())],
        PaneAction::Online(true) => vec![Stmt::Online(d)],
        PaneAction::Online(false) => vec![Stmt::Offline(d)],
        PaneAction::Retry => vec![Stmt::Retry(d)],
        PaneAction::Link(Fault::Configure(dir, to)) => changes(links.of(*dir), to, to)
            .into_iter()
            .map(|change| Stmt::Link(vec![d], Some(*dir), change))
            .collect(),
        PaneAction::Link(Fault::Hold(dir, true)) => vec![Stmt::Hold(d, Some(*dir))],
        PaneAction::Link(Fault::Hold(dir, false)) => vec![Stmt::Unhold(d, Some(*dir))],
        PaneAction::Link(Fault::Release(dir, n)) => {
            vec![Stmt::Release(d, *dir, Pick::Nth(*n))]
        }
        PaneAction::Link(Fault::Drop(dir, n)) => vec![Stmt::Drop(d, *dir, *n)],
        PaneAction::Strategy(_)
        | PaneAction::Settings(_)
        | PaneAction::Move(_)
        | PaneAction::Remove => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mock_server::link::Direction;
    use mock_server::scenario::ast::LinkChange;

    use super::*;

    #[test]
    fn a_link_change_says_only_what_changed() {
        let from = LinkConfig::default();
        let to = LinkConfig {
            latency: Duration::from_millis(400),
            ..from
        };
        let action = PaneAction::Link(Fault::Configure(Direction::Down, to));
        assert_eq!(
            of(&action, 1, Pair::both(from)),
            Some(vec![Stmt::Link(
                vec![1],
                Some(Direction::Down),
                LinkChange::Latency(Duration::from_millis(400))
            )])
        );
        assert_eq!(of(&PaneAction::Remove, 0, Pair::both(from)), None);
    }
}
