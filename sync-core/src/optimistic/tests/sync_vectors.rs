//! OptimisticSync vectors 28–49. Fixture: `liked = false`; a tap toggles it; `send` logs
//! `send(v)` and answers null; `on_finish` logs `onFinish`.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use crate::optimistic::sync::{OptimisticSync, SyncEffect, SyncHooks};
use crate::optimistic::{Before, Failure, Finish, SendKind};

type State = HashMap<&'static str, Value>;

#[derive(Default)]
struct Fx {
    log: RefCell<Vec<String>>,
    max: Option<Option<u32>>,
    never_follow_up: bool,
    rollback_on_error: bool,
    finish_fails: bool,
    apply_response_null: bool,
    offline: bool,
    /// `(optimistic, error)` seen by `on_finish`.
    finish_args: RefCell<Vec<(Value, Option<String>)>>,
}

impl SyncHooks<State> for Fx {
    type Key = &'static str;
    type Value = Value;
    type Response = Value;
    type Error = String;

    fn get(&self, s: &State, k: &&'static str) -> Value {
        s.get(k).cloned().unwrap_or(json!(false))
    }
    fn apply_optimistic(&self, s: &mut State, k: &&'static str, v: Value) {
        s.insert(k, v);
    }
    fn apply_response(&self, s: &mut State, k: &&'static str, r: Value) {
        if !self.apply_response_null {
            s.insert(k, r);
        }
    }
    fn should_send_another(&self, cur: &Value, sent: &Value, _: u32) -> bool {
        !self.never_follow_up && cur != sent
    }
    fn max_follow_up_requests(&self) -> Option<u32> {
        self.max.unwrap_or(Some(10_000))
    }
    fn on_finish(
        &self,
        s: &mut State,
        k: &&'static str,
        f: Finish<'_, Value, String>,
    ) -> Result<(), Failure<String>> {
        let err = f.error.map(|e| e.to_string());
        self.finish_args
            .borrow_mut()
            .push((f.optimistic.clone(), err.clone()));
        self.log.borrow_mut().push(match &err {
            None => "onFinish".into(),
            Some(e) => format!("onFinish({e})"),
        });
        if err.is_some() && self.rollback_on_error {
            s.insert(k, json!(false));
            self.log.borrow_mut().push("rollback".into());
        }
        if err.is_none() && self.finish_fails {
            return Err(Failure::Error("E".into()));
        }
        Ok(())
    }
    fn before(&self, _: &State, _: &&'static str) -> Before<String> {
        if self.offline {
            Before::Fail("no connectivity".into())
        } else {
            Before::Proceed
        }
    }
}

const LIKE: &str = "liked";

/// A test world: the machine, the state and the requests waiting for an answer.
struct World {
    s: State,
    m: OptimisticSync<Fx, State>,
    pending: VecDeque<(&'static str, Value)>,
    finished: Vec<Result<(), Failure<String>>>,
}

impl World {
    fn new(fx: Fx) -> Self {
        World {
            s: State::new(),
            m: OptimisticSync::new(fx),
            pending: VecDeque::new(),
            finished: vec![],
        }
    }

    fn take(&mut self, fx: Vec<SyncEffect<&'static str, Value, String>>) {
        for e in fx {
            match e {
                SyncEffect::Send { key, value, .. } => {
                    let entry = if key == LIKE {
                        format!("send({value})")
                    } else {
                        format!("send({key},{value})")
                    };
                    self.m.hooks.log.borrow_mut().push(entry);
                    self.pending.push_back((key, value));
                }
                SyncEffect::Finished { result, .. } => self.finished.push(result),
                SyncEffect::Dropped { .. } => {}
            }
        }
    }

    fn tap(&mut self, key: &'static str) {
        let v = json!(!self.m.hooks.get(&self.s, &key).as_bool().unwrap());
        let fx = self.m.dispatch(&mut self.s, key, v);
        self.take(fx);
    }

    fn set(&mut self, key: &'static str, v: Value) {
        let fx = self.m.dispatch(&mut self.s, key, v);
        self.take(fx);
    }

    /// Answers the oldest pending request.
    fn answer(&mut self, answer: Result<Option<Value>, String>) {
        let (key, _) = self.pending.pop_front().expect("a pending request");
        let fx = self.m.on_response(&mut self.s, &key, answer);
        self.take(fx);
    }

    fn settle(&mut self) {
        while !self.pending.is_empty() {
            self.answer(Ok(None));
        }
    }

    fn log(&self) -> Vec<String> {
        self.m.hooks.log.borrow().clone()
    }

    fn liked(&self) -> Value {
        self.m.hooks.get(&self.s, &LIKE)
    }
}

#[test]
fn vector_28_single_dispatch() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.liked(), json!(true));
    assert_eq!(w.log(), ["send(true)", "onFinish"]);
}

#[test]
fn vector_29_three_taps_in_flight_end_on_the_sent_value() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    assert_eq!(w.liked(), json!(true));
    w.tap(LIKE);
    assert_eq!(w.liked(), json!(false));
    w.tap(LIKE);
    assert_eq!(w.liked(), json!(true));
    w.settle();
    assert_eq!(w.log(), ["send(true)", "onFinish"]);
    assert_eq!(w.liked(), json!(true));
}

#[test]
fn vector_30_two_taps_in_flight_send_a_follow_up() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.log(), ["send(true)", "send(false)", "onFinish"]);
    assert_eq!(w.liked(), json!(false));
}

#[test]
fn vector_31_failure_keeps_the_optimistic_value() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.answer(Err("boom".into()));
    assert_eq!(w.log(), ["send(true)", "onFinish(boom)"]);
    assert_eq!(w.liked(), json!(true));
    assert_eq!(w.finished, [Err(Failure::Error("boom".into()))]);
    w.tap(LIKE);
    w.settle();
    assert_eq!(
        w.log(),
        ["send(true)", "onFinish(boom)", "send(false)", "onFinish"]
    );
    assert_eq!(w.liked(), json!(false));
}

#[test]
fn vector_32_sequential_dispatches() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.settle();
    w.tap(LIKE);
    w.settle();
    assert_eq!(
        w.log(),
        ["send(true)", "onFinish", "send(false)", "onFinish"]
    );
}

#[test]
fn vector_33_different_keys_run_in_parallel() {
    let mut w = World::new(Fx::default());
    w.tap("A");
    w.tap("B");
    assert_eq!(
        w.pending.len(),
        2,
        "both sends start before either completes"
    );
    w.settle();
    assert_eq!(w.m.hooks.get(&w.s, &"A"), json!(true));
    assert_eq!(w.m.hooks.get(&w.s, &"B"), json!(true));
}

#[test]
fn vector_34_same_key_twice() {
    let mut w = World::new(Fx::default());
    w.tap("A");
    w.tap("A");
    assert_eq!(w.log(), ["send(A,true)"]);
    assert_eq!(w.m.hooks.get(&w.s, &"A"), json!(false));
    w.settle();
    assert_eq!(w.log(), ["send(A,true)", "send(A,false)", "onFinish"]);
}

#[test]
fn vector_36_shared_key_counter() {
    let mut w = World::new(Fx::default());
    w.set("shared", json!(1)); // type 1: count + 1
    w.set("shared", json!(2)); // type 2 at t10: count + 1, no send
    assert_eq!(w.log(), ["send(shared,1)"]);
    w.settle();
    assert_eq!(w.log(), ["send(shared,1)", "send(shared,2)", "onFinish"]);
    assert_eq!(w.m.hooks.get(&w.s, &"shared"), json!(2));
}

#[test]
fn vector_39_apply_response_null() {
    let mut w = World::new(Fx {
        apply_response_null: true,
        ..Fx::default()
    });
    w.set(LIKE, json!(10));
    w.answer(Ok(Some(json!(99))));
    assert_eq!(w.log(), ["send(10)", "onFinish"]);
    assert_eq!(w.liked(), json!(10));
}

#[test]
fn vector_41_a_plain_push_defeats_optimistic_sync() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE); // true, held
    w.tap(LIKE); // false: the user's intent
    w.s.insert(LIKE, json!(true)); // a plain action writes another device's value
    w.settle();
    assert_eq!(w.log(), ["send(true)", "onFinish"]);
    assert_eq!(w.liked(), json!(true), "the user's intent (false) is lost");
}

#[test]
fn vector_42_follow_up_limit_releases_the_key() {
    // DESIGN.md improvement 1: at most N requests per cycle for a limit of N (the
    // reference sends N+1), then the key is released and on_finish gets the error.
    let mut w = World::new(Fx {
        max: Some(Some(3)),
        ..Fx::default()
    });
    w.set(LIKE, json!(0));
    for i in 1..=3 {
        w.set(LIKE, json!(i)); // the state changes during every request
        w.answer(Ok(None));
    }
    assert_eq!(w.log()[..3], ["send(0)", "send(1)", "send(2)"]);
    assert_eq!(w.finished, [Err(Failure::TooManyFollowUps { limit: 3 })]);
    assert_eq!(w.log()[3], "onFinish(Too many follow-up requests (> 3).)");
    assert!(!w.m.is_locked(&LIKE), "the key is released");
    w.set(LIKE, json!(9));
    assert_eq!(w.pending.len(), 1, "the next dispatch sends again");
}

#[test]
fn vector_43_a_new_machine_has_no_stale_lock() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE); // in flight when the "store" shuts down
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.log(), ["send(true)", "onFinish"]);
    assert_eq!(w.liked(), json!(true));
}

#[test]
fn vector_44_custom_should_send_another_always_false() {
    let mut w = World::new(Fx {
        never_follow_up: true,
        ..Fx::default()
    });
    w.tap(LIKE);
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.log(), ["send(true)", "onFinish"]);
    assert_eq!(w.liked(), json!(false), "diverges from the server");
}

#[test]
fn vector_45_on_finish_rolls_back_on_error() {
    let mut w = World::new(Fx {
        rollback_on_error: true,
        ..Fx::default()
    });
    w.tap(LIKE);
    w.answer(Err("boom".into()));
    assert_eq!(w.log(), ["send(true)", "onFinish(boom)", "rollback"]);
    assert_eq!(w.liked(), json!(false));
    assert_eq!(w.finished, [Err(Failure::Error("boom".into()))]);
}

#[test]
fn vector_46_on_finish_receives_the_optimistic_value() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.settle();
    w.set(LIKE, json!(true));
    w.answer(Err("user error".into()));
    assert_eq!(
        w.m.hooks.finish_args.borrow().as_slice(),
        [
            (json!(true), None),
            (json!(true), Some("user error".into()))
        ]
    );
}

#[test]
fn vector_47_on_finish_runs_once_even_when_it_fails() {
    // DESIGN.md improvement 2 (the reference calls on_finish a second time).
    let mut w = World::new(Fx {
        finish_fails: true,
        ..Fx::default()
    });
    w.tap(LIKE);
    w.settle();
    assert_eq!(w.log(), ["send(true)", "onFinish"]);
    assert_eq!(w.finished, [Err(Failure::Error("E".into()))]);
    assert!(!w.m.is_locked(&LIKE));
}

#[test]
fn vector_48_the_key_is_free_when_on_finish_runs() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    w.answer(Ok(None));
    assert!(!w.m.is_locked(&LIKE));
    w.tap(LIKE);
    assert_eq!(w.log(), ["send(true)", "onFinish", "send(false)"]);
}

#[test]
fn vector_49_check_internet_offline() {
    let mut w = World::new(Fx {
        offline: true,
        ..Fx::default()
    });
    w.tap(LIKE);
    assert_eq!(w.liked(), json!(false), "no optimistic write");
    assert!(!w.m.is_locked(&LIKE));
    assert!(w.log().is_empty(), "no send, no onFinish");
    assert_eq!(w.finished, [Err(Failure::Error("no connectivity".into()))]);
}

#[test]
fn improvement_5_a_newer_value_is_sent_at_once_after_a_failure() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE); // true, in flight
    w.tap(LIKE); // false, waiting for the follow-up
    w.answer(Err("boom".into()));
    assert_eq!(w.log(), ["send(true)", "onFinish(boom)", "send(false)"]);
    assert_eq!(w.m.hooks.finish_args.borrow()[0].1.as_deref(), Some("boom"));
    w.settle();
    assert_eq!(w.liked(), json!(false));
}

#[test]
fn improvement_6_a_lost_answer_is_resent_or_superseded() {
    let mut w = World::new(Fx::default());
    w.tap(LIKE);
    let fx = w.m.on_answer_lost(&mut w.s, &LIKE, false);
    assert!(matches!(
        fx[..],
        [SyncEffect::Send {
            kind: SendKind::Resend,
            ..
        }]
    ));
    w.tap(LIKE);
    let fx = w.m.on_answer_lost(&mut w.s, &LIKE, false);
    assert!(
        matches!(&fx[..], [SyncEffect::Send { kind: SendKind::FollowUp, value, .. }] if *value == json!(false))
    );
    let fx = w.m.on_answer_lost(&mut w.s, &LIKE, true);
    assert!(matches!(
        fx[..],
        [SyncEffect::Finished { result: Ok(()), .. }]
    ));
    assert!(!w.m.is_locked(&LIKE));
}
