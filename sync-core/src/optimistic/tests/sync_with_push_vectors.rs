//! OptimisticSyncWithPush + ServerPush vectors 50–79. Fixture: state `{liked: false,
//! rev: 10}`; the server gives revisions from `next_rev = 11`; `send` logs
//! `send(v,localRev)` and answers `v` with the next revision; `Push(v, r)` comes from
//! another device (`-999`, local rev 0) unless marked self.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use crate::optimistic::sync_with_push::{
    Answer, DropReason, OptimisticSyncWithPush, PushEffect, PushHooks, PushMeta, PushOutcome,
};
use crate::optimistic::{Failure, Finish, SendKind};

const ME: i64 = 1;
const OTHER: i64 = -999;
const LIKE: &str = "liked";

#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    liked: bool,
    rev: i64,
}

type State = HashMap<&'static str, Slot>;

#[derive(Default)]
struct Fx {
    log: RefCell<Vec<String>>,
    max: Option<u32>,
    decline_pushes: bool,
    finish_marks: bool,
}

impl PushHooks<State> for Fx {
    type Key = &'static str;
    type Value = bool;
    type Response = bool;
    type Push = bool;
    type DeviceId = i64;
    type Error = String;

    fn get(&self, s: &State, k: &&'static str) -> bool {
        s[k].liked
    }
    fn apply_optimistic(&self, s: &mut State, k: &&'static str, v: bool) {
        s.get_mut(k).unwrap().liked = v;
    }
    fn apply_response(&self, s: &mut State, k: &&'static str, r: bool, rev: i64) {
        *s.get_mut(k).unwrap() = Slot { liked: r, rev };
    }
    fn state_rev(&self, s: &State, k: &&'static str) -> i64 {
        s[k].rev
    }
    fn apply_push(&self, s: &mut State, k: &&'static str, v: bool, rev: i64) -> bool {
        if self.decline_pushes {
            return false;
        }
        *s.get_mut(k).unwrap() = Slot { liked: v, rev };
        true
    }
    fn device_id(&self) -> i64 {
        ME
    }
    fn max_follow_up_requests(&self) -> Option<u32> {
        self.max.or(Some(10_000))
    }
    fn on_finish(
        &self,
        s: &mut State,
        k: &&'static str,
        f: Finish<'_, bool, String>,
    ) -> Result<(), Failure<String>> {
        self.log.borrow_mut().push(match f.error {
            None => "onFinish".into(),
            Some(e) => format!("onFinish({e})"),
        });
        if self.finish_marks {
            // An on_finish that changes the state, on success and on error alike.
            s.get_mut(k).unwrap().rev += 1000;
        }
        Ok(())
    }
}

struct World {
    s: State,
    m: OptimisticSyncWithPush<Fx, State>,
    next_rev: i64,
    pending: VecDeque<(&'static str, bool, i64)>,
    finished: Vec<Result<(), Failure<String>>>,
    dropped: Vec<DropReason>,
    /// Called on every send (vector 77's nested dispatch).
    on_send: Option<fn(&mut World)>,
}

impl World {
    fn new(fx: Fx) -> Self {
        Self::with(fx, &[(LIKE, false, 10)])
    }

    fn with(fx: Fx, keys: &[(&'static str, bool, i64)]) -> Self {
        World {
            s: keys
                .iter()
                .map(|&(k, liked, rev)| (k, Slot { liked, rev }))
                .collect(),
            m: OptimisticSyncWithPush::new(fx),
            next_rev: 11,
            pending: VecDeque::new(),
            finished: vec![],
            dropped: vec![],
            on_send: None,
        }
    }

    fn take(&mut self, fx: Vec<PushEffect<&'static str, bool, String>>) {
        for e in fx {
            match e {
                PushEffect::Send {
                    key,
                    value,
                    local_rev,
                    ..
                } => {
                    let entry = if key == LIKE {
                        format!("send({value},{local_rev})")
                    } else {
                        format!("send({key},{value},{local_rev})")
                    };
                    self.m.hooks.log.borrow_mut().push(entry);
                    self.pending.push_back((key, value, local_rev));
                    if let Some(f) = self.on_send {
                        f(self);
                    }
                }
                PushEffect::Finished { result, .. } => self.finished.push(result),
                PushEffect::Dropped { reason, .. } => self.dropped.push(reason),
                PushEffect::Applied { .. } => {}
            }
        }
    }

    fn tap(&mut self, key: &'static str) {
        let v = !self.s[key].liked;
        let fx = self.m.dispatch(&mut self.s, key, v);
        self.take(fx);
    }

    /// The server answers the oldest pending request with the next revision.
    fn release(&mut self) {
        let (key, value, _) = self.pending.pop_front().expect("a pending request");
        let rev = self.next_rev;
        self.next_rev += 1;
        let answer = Ok(Answer {
            response: Some(value),
            rev: Some(rev),
        });
        let fx = self.m.on_response(&mut self.s, &key, answer);
        self.take(fx);
    }

    fn settle(&mut self) {
        while !self.pending.is_empty() {
            self.release();
        }
    }

    fn push(&mut self, liked: bool, rev: i64) -> PushOutcome {
        self.push_from(LIKE, liked, rev, OTHER, 0)
    }

    fn push_from(
        &mut self,
        key: &'static str,
        liked: bool,
        rev: i64,
        device_id: i64,
        local_rev: i64,
    ) -> PushOutcome {
        let meta = PushMeta {
            rev,
            local_rev,
            device_id,
        };
        self.m.push(&mut self.s, &key, meta, liked)
    }

    fn log(&self) -> Vec<String> {
        self.m.hooks.log.borrow().clone()
    }

    fn now(&self) -> (bool, i64) {
        (self.s[LIKE].liked, self.s[LIKE].rev)
    }
}

#[test]
fn vector_50_single_tap_immediate_server() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.log(), ["send(true,1)", "onFinish"]);
    assert_eq!(w.now(), (true, 11));
}

#[test]
fn vector_51_local_revision_increments() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.log(), ["send(true,1)", "send(false,2)", "onFinish"]);
    assert_eq!(w.now(), (false, 12));
}

#[test]
fn vector_53_five_taps_follow_up_by_revision_not_value() {
    let mut w = World::new(Fx::default());
    for _ in 0..5 {
        w.tap(LIKE); // at 0, 5, 10, 15, 20 ms; the answer comes at 50 ms
    }
    w.settle();
    assert_eq!(w.log(), ["send(true,1)", "send(true,5)", "onFinish"]);
    assert_eq!(w.now(), (true, 12));
}

#[test]
fn vector_54_stale_self_echo_is_only_an_ack() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.tap(LIKE);
    assert_eq!(w.push_from(LIKE, true, 11, ME, 1), PushOutcome::TakenAsAck);
    assert_eq!(w.now(), (false, 10));
    w.settle();
    assert_eq!(w.log(), ["send(true,1)", "send(false,2)", "onFinish"]);
    assert_eq!(w.now(), (false, 12));
}

#[test]
fn vector_56_newer_push_applies_while_locked_and_the_answer_is_stale() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    assert_eq!(w.push(false, 12), PushOutcome::Applied);
    assert_eq!(w.now(), (false, 12));
    w.release(); // rev 11
    assert_eq!(w.now(), (false, 12));
    assert_eq!(w.log(), ["send(true,1)", "onFinish"]);
    assert_eq!(w.dropped, [DropReason::Stale { rev: 11, known: 12 }]);
}

#[test]
fn vector_58_push_during_a_timed_request() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE); // t0
    w.tap(LIKE); // t10
    w.push(true, 15); // t20
    w.release(); // t50
    assert!(w.pending.is_empty(), "the push superseded the follow-up");
    assert_eq!(w.log(), ["send(true,1)", "onFinish"]);
    assert_eq!(w.now(), (true, 15));
}

#[test]
fn vector_59_remote_device_wins() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.now(), (true, 11));
    w.push(false, 12);
    assert_eq!(w.now(), (false, 12));
}

#[test]
fn vector_62_quirk_answer_clears_is_push_and_follow_up_sends_the_pushed_value() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE); // true, held
    w.tap(LIKE); // false
    w.push(true, 12);
    w.next_rev = 13;
    w.settle();
    assert_eq!(w.log(), ["send(true,1)", "send(true,2)", "onFinish"]);
    assert_eq!(w.now(), (true, 14));
}

#[test]
fn vector_64_stale_push_after_completion() {
    let mut w = World::new(Fx::default());
    w.next_rev = 15;
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.push(false, 12), PushOutcome::Stale { known: 15 });
    assert_eq!(w.now(), (true, 15));
}

#[test]
fn vector_65_out_of_order_replay() {
    let mut w = World::with(Fx::default(), &[(LIKE, true, 20)]);
    assert!(matches!(w.push(false, 18), PushOutcome::Stale { .. }));
    assert!(matches!(w.push(false, 19), PushOutcome::Stale { .. }));
    assert_eq!(w.now(), (true, 20));
    assert_eq!(w.push(false, 21), PushOutcome::Applied);
    assert_eq!(w.now(), (false, 21));
}

#[test]
fn equal_revision_is_already_seen_not_stale() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.push_from(LIKE, true, 11, ME, 1), PushOutcome::AlreadySeen);
}

#[test]
fn vector_67_missing_revision_fails_the_cycle() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.pending.clear();
    let answer = Ok(Answer {
        response: Some(true),
        rev: None,
    });
    let fx = w.m.on_response(&mut w.s, &LIKE, answer);
    w.take(fx);
    assert_eq!(w.finished, [Err(Failure::RevisionNotInformed)]);
    assert!(
        w.finished[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("informServerRevision()")
    );
    assert!(!w.m.is_locked(&LIKE));
    assert!(w.log()[1].starts_with("onFinish(OptimisticSyncWithPush requires"));
    assert!(w.now().0, "the state keeps the optimistic value");
}

#[test]
fn vector_70_init_fresh_response() {
    let mut w = World::with(Fx::default(), &[(LIKE, false, 100)]);
    w.next_rev = 101;
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.now(), (true, 101));
}

#[test]
fn vector_71_init_stale_response() {
    let mut w = World::with(Fx::default(), &[(LIKE, false, 100)]);
    w.next_rev = 1;
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.now(), (true, 100));
    assert_eq!(w.log(), ["send(true,1)", "onFinish"]);
}

#[test]
fn vector_73_init_seeding() {
    let mut w = World::with(Fx::default(), &[(LIKE, false, 100), ("A", false, 100)]);
    w.next_rev = 101;
    for key in [LIKE, "A"] {
        w.tap(key); // held: seeds the map with 100
        w.s.get_mut(key).unwrap().rev = -1; // getServerRevisionFromState now says unknown
        assert!(matches!(
            w.push_from(key, false, 99, OTHER, 0),
            PushOutcome::Stale { known: 100 }
        ));
    }
    w.settle();
    assert_eq!(
        w.s[LIKE],
        Slot {
            liked: true,
            rev: 101
        }
    );
    assert_eq!(
        w.s["A"],
        Slot {
            liked: true,
            rev: 102
        }
    );
}

#[test]
fn quirk_7_6_seeding_resets_the_local_revision() {
    // Kept as in the reference: a push that seeds an entry whose revision was unknown
    // resets its local revision (the engine never has unknown revisions, so never hits it).
    let mut w = World::with(Fx::default(), &[(LIKE, false, -1)]);
    w.tap(LIKE);
    w.s.get_mut(LIKE).unwrap().rev = 5;
    w.push(false, 3);
    assert_eq!(w.m.entry(&LIKE).unwrap().local, 0);
}

#[test]
fn vector_75_datetime_revisions() {
    let t = 1_767_225_600_000; // 2026-01-01 in ms since the epoch
    let mut w = World::with(Fx::default(), &[(LIKE, false, t)]);
    assert!(matches!(w.push(true, t - 1000), PushOutcome::Stale { .. }));
    assert_eq!(w.push(true, t + 1000), PushOutcome::Applied);
    assert_eq!(w.now(), (true, t + 1000));
}

#[test]
fn vector_76_failure() {
    let mut w = World::new(Fx {
        finish_marks: true,
        ..Fx::default()
    });
    w.tap(LIKE);
    w.pending.clear();
    let fx = w.m.on_response(&mut w.s, &LIKE, Err("boom".into()));
    w.take(fx);
    assert_eq!(w.log(), ["send(true,1)", "onFinish(boom)"]);
    assert_eq!(w.finished, [Err(Failure::Error("boom".into()))]);
    assert!(w.now().0, "the optimistic state stays");
    assert_eq!(w.now().1, 1010, "on_finish's change is applied on error");
    assert!(!w.m.is_locked(&LIKE));
    w.tap(LIKE);
    assert_eq!(
        w.log()[2],
        "send(false,2)",
        "the next tap gets localRev + 1"
    );
    w.settle();
    // The answer (rev 11) is older than the marked state (1010): not applied; on_finish's
    // change is applied on success too.
    assert_eq!(w.now(), (false, 2010), "and on success");
}

#[test]
fn vector_77_follow_up_limit_releases_the_key() {
    // DESIGN.md improvement 1: the reference leaks the lock here.
    let mut w = World::new(Fx {
        max: Some(3),
        ..Fx::default()
    });
    w.on_send = Some(|w| {
        let v = !w.s[LIKE].liked;
        let fx = w.m.dispatch(&mut w.s, LIKE, v); // a nested dispatch for the same key
        assert!(fx.is_empty());
    });
    w.tap(LIKE);
    w.settle();
    let sends = w.log().iter().filter(|l| l.starts_with("send")).count();
    assert_eq!(sends, 3);
    assert_eq!(w.finished, [Err(Failure::TooManyFollowUps { limit: 3 })]);
    assert!(!w.m.is_locked(&LIKE), "the key is released");
    assert!(w.log().last().unwrap().starts_with("onFinish(Too many"));
}

#[test]
fn vector_78_different_keys_run_concurrently() {
    let mut w = World::with(Fx::default(), &[("a", false, 10), ("b", false, 10)]);
    w.tap("a");
    w.tap("b");
    assert_eq!(w.pending.len(), 2);
}

#[test]
fn vector_79_declined_push_still_records_its_revision() {
    let mut w = World::new(Fx {
        decline_pushes: true,
        ..Fx::default()
    });
    w.tap(LIKE);
    assert_eq!(w.push(false, 12), PushOutcome::Declined);
    assert_eq!(w.now(), (true, 10), "the state is unchanged");
    let e = w.m.entry(&LIKE).unwrap();
    assert_eq!((e.server, e.is_push), (12, true));
    w.release(); // rev 11 < 12
    assert_eq!(
        w.now(),
        (true, 10),
        "the lower-revision answer is not applied"
    );
}

#[test]
fn improvement_5_newer_intent_is_sent_at_once_after_a_failure() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.tap(LIKE);
    w.pending.pop_front();
    let fx = w.m.on_response(&mut w.s, &LIKE, Err("rejected".into()));
    w.take(fx);
    assert_eq!(
        w.log(),
        ["send(true,1)", "onFinish(rejected)", "send(false,2)"]
    );
    w.settle();
    assert_eq!(w.now(), (false, 11));
}

#[test]
fn improvement_6_lost_answer_resend_follow_up_or_superseded() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    let fx = w.m.on_answer_lost(&mut w.s, &LIKE, false);
    assert_eq!(
        fx,
        [PushEffect::Send {
            key: LIKE,
            value: true,
            local_rev: 1,
            kind: SendKind::Resend
        }]
    );
    w.tap(LIKE);
    let fx = w.m.on_answer_lost(&mut w.s, &LIKE, false);
    assert_eq!(
        fx,
        [PushEffect::Send {
            key: LIKE,
            value: false,
            local_rev: 2,
            kind: SendKind::FollowUp
        }]
    );
    let fx = w.m.on_answer_lost(&mut w.s, &LIKE, true);
    assert!(matches!(
        fx[..],
        [PushEffect::Finished { result: Ok(()), .. }]
    ));
    assert!(!w.m.is_locked(&LIKE));
}
