//! OptimisticCommand vectors 1–27. Fixture: `items = ["initial"]`; the command adds
//! `"new"`, so `opt = ["initial","new"]`. `writes` lists the values written through
//! `apply` (the reference's `applyValueToState`).
//! One file for the reference's one table of vectors, in its order (hence its length).

use std::cell::RefCell;
use std::time::Duration;

use crate::optimistic::command::{CommandEffect, CommandHooks, CommandRunner, Dispatched, Retry};
use crate::optimistic::{Before, Failure};

type Items = Vec<String>;

fn items(v: &[&str]) -> Items {
    v.iter().map(|s| s.to_string()).collect()
}

#[derive(Default)]
struct Fx {
    writes: RefCell<Vec<Items>>,
    ops: RefCell<Vec<&'static str>>,
    /// Recorded `(last_applied, rollback)` seen by `should_reload`.
    reload_args: RefCell<Vec<(Items, Option<Items>)>>,
    reload: bool,
    always_reload: bool,
    never_reload_on_error: bool,
    rollback_policy: Option<fn(&str) -> bool>,
    rollback_returns_none: bool,
    mark_failed: bool,
    apply_response_null: bool,
    apply_reload_null: bool,
    should_apply_reload: bool,
    retry: Option<Retry>,
    offline: Option<bool>, // Some(abort?) when offline
}

impl Fx {
    fn new() -> Self {
        Fx {
            should_apply_reload: true,
            ..Fx::default()
        }
    }
}

impl CommandHooks<Items> for Fx {
    type Key = &'static str;
    type Value = Items;
    type Response = Items;
    type Error = String;

    fn get(&self, s: &Items, _: &&'static str) -> Items {
        s.clone()
    }
    fn apply(&self, s: &mut Items, _: &&'static str, v: Items) {
        self.writes.borrow_mut().push(v.clone());
        *s = v;
    }
    fn apply_response(&self, s: &mut Items, _: &&'static str, r: Items) -> bool {
        self.ops.borrow_mut().push("applyServerResponse");
        if self.apply_response_null {
            return false;
        }
        *s = r;
        true
    }
    fn has_reload(&self) -> bool {
        self.reload
    }
    fn should_rollback(&self, cur: &Items, _: &Items, opt: &Items, e: &String) -> bool {
        match self.rollback_policy {
            Some(p) => p(e),
            None => cur == opt,
        }
    }
    fn rollback(
        &self,
        s: &mut Items,
        k: &&'static str,
        init: &Items,
        _: &Items,
        e: &String,
    ) -> bool {
        if self.rollback_returns_none {
            return false;
        }
        if self.mark_failed {
            assert_eq!(e, "command failed", "rollback gets the command's error");
            let mut v = init.clone();
            v.push("new (FAILED)".into());
            self.apply(s, k, v);
            return true;
        }
        self.apply(s, k, init.clone());
        true
    }
    fn should_reload(
        &self,
        _: &Items,
        last: &Items,
        _: &Items,
        rb: Option<&Items>,
        e: Option<&String>,
    ) -> bool {
        self.reload_args
            .borrow_mut()
            .push((last.clone(), rb.cloned()));
        if self.never_reload_on_error {
            return false;
        }
        self.always_reload || e.is_some()
    }
    fn should_apply_reload(
        &self,
        _: &Items,
        _: &Items,
        _: &Items,
        _: Option<&Items>,
        _: &Items,
        _: Option<&String>,
    ) -> bool {
        self.should_apply_reload
    }
    fn apply_reload(&self, s: &mut Items, k: &&'static str, r: Items) -> bool {
        if self.apply_reload_null {
            return false;
        }
        self.apply(s, k, r);
        true
    }
    fn retry(&self) -> Option<Retry> {
        self.retry
    }
    fn before(&self, _: &Items, _: &&'static str) -> Before<String> {
        match self.offline {
            None => Before::Proceed,
            Some(true) => Before::Abort,
            Some(false) => Before::Fail("no connectivity".into()),
        }
    }
}

const K: &str = "items";

fn opt() -> Items {
    items(&["initial", "new"])
}

/// Runs one command to its end: `answers` are the server's answers, in order; a reload
/// (when asked) gets `reload`. Returns the final `Finished` effect and the sends seen.
struct Run {
    state: Items,
    m: CommandRunner<Fx, Items>,
    sends: Vec<Items>,
    waits: Vec<Duration>,
    reloads: u32,
}

impl Run {
    fn new(fx: Fx) -> Self {
        Run {
            state: items(&["initial"]),
            m: CommandRunner::new(fx),
            sends: vec![],
            waits: vec![],
            reloads: 0,
        }
    }

    fn go(
        &mut self,
        answers: Vec<Result<Option<Items>, String>>,
        reload: Result<Items, String>,
    ) -> CommandEffect<&'static str, Items, String> {
        let Dispatched::Started(mut fx) = self.m.dispatch(&mut self.state, K, opt()) else {
            panic!("dispatch did not start");
        };
        let mut answers = answers.into_iter();
        loop {
            let effect = fx.pop().expect("an effect");
            fx = match effect {
                CommandEffect::Send { value, .. } => {
                    self.sends.push(value);
                    let a = answers.next().expect("an answer for every send");
                    self.m.on_response(&mut self.state, &K, a)
                }
                CommandEffect::Wait { delay, .. } => {
                    self.waits.push(delay);
                    self.m.on_timer(&K)
                }
                CommandEffect::Reload { .. } => {
                    self.reloads += 1;
                    self.m.hooks.ops.borrow_mut().push("reload");
                    self.m.on_reload(&mut self.state, &K, reload.clone())
                }
                finished @ CommandEffect::Finished { .. } => {
                    assert!(!self.m.is_running(&K), "the key is released at the end");
                    return finished;
                }
            };
        }
    }

    fn writes(&self) -> Vec<Items> {
        self.m.hooks.writes.borrow().clone()
    }
}

fn result(f: &CommandEffect<&'static str, Items, String>) -> Result<(), Failure<String>> {
    match f {
        CommandEffect::Finished { result, .. } => result.clone(),
        _ => unreachable!(),
    }
}

fn err(s: &str) -> Result<(), Failure<String>> {
    Err(Failure::Error(s.into()))
}

fn failed() -> Result<Option<Items>, String> {
    Err("command failed".into())
}

fn reloaded() -> Result<Items, String> {
    Ok(items(&["reloaded"]))
}

#[test]
fn vector_01_success_without_reload_and_null_response() {
    let mut r = Run::new(Fx::new());
    let f = r.go(vec![Ok(None)], reloaded());
    assert_eq!(result(&f), Ok(()));
    assert_eq!(r.writes(), vec![opt()]);
    assert_eq!(
        r.sends,
        vec![opt()],
        "one send, with the optimistic value itself"
    );
    assert_eq!(r.state, opt());
}

#[test]
fn vector_02_default_should_reload_skips_reload_on_success() {
    let mut r = Run::new(Fx {
        reload: true,
        ..Fx::new()
    });
    r.go(vec![Ok(None)], reloaded());
    assert_eq!(r.reloads, 0);
    assert_eq!(r.writes(), vec![opt()]);
    assert_eq!(r.state, opt());
}

#[test]
fn vector_03_should_reload_true_applies_the_reload() {
    let mut r = Run::new(Fx {
        reload: true,
        always_reload: true,
        ..Fx::new()
    });
    let f = r.go(vec![Ok(None)], reloaded());
    assert_eq!(result(&f), Ok(()));
    assert_eq!(r.state, items(&["reloaded"]));
}

#[test]
fn vector_04_failure_rolls_back_then_reloads() {
    let mut r = Run::new(Fx {
        reload: true,
        ..Fx::new()
    });
    let f = r.go(vec![failed()], reloaded());
    assert_eq!(
        r.writes(),
        vec![opt(), items(&["initial"]), items(&["reloaded"])]
    );
    assert_eq!(r.state, items(&["reloaded"]));
    assert_eq!(result(&f), err("command failed"));
    assert_eq!(r.sends.len(), 1);
}

#[test]
fn vector_05_failure_without_reload_rolls_back() {
    let mut r = Run::new(Fx::new());
    let f = r.go(vec![failed()], reloaded());
    assert_eq!(r.writes(), vec![opt(), items(&["initial"])]);
    assert_eq!(r.state, items(&["initial"]));
    assert_eq!(result(&f), err("command failed"));
}

#[test]
fn vector_07_rollback_always_overwrites_a_concurrent_change() {
    let mut r = Run::new(Fx {
        rollback_policy: Some(|_| true),
        ..Fx::new()
    });
    let Dispatched::Started(_) = r.m.dispatch(&mut r.state, K, opt()) else {
        panic!()
    };
    r.state = items(&["other action"]); // a concurrent change, not through this command
    r.m.on_response(&mut r.state, &K, failed());
    assert_eq!(r.writes(), vec![opt(), items(&["initial"])]);
    assert_eq!(r.state, items(&["initial"]));
}

#[test]
fn default_rollback_keeps_a_concurrent_change() {
    let mut r = Run::new(Fx::new());
    let Dispatched::Started(_) = r.m.dispatch(&mut r.state, K, opt()) else {
        panic!()
    };
    r.state = items(&["other action"]);
    r.m.on_response(&mut r.state, &K, failed());
    assert_eq!(r.state, items(&["other action"]));
}

#[test]
fn vector_08_rollback_never() {
    let mut r = Run::new(Fx {
        rollback_policy: Some(|_| false),
        ..Fx::new()
    });
    let f = r.go(vec![failed()], reloaded());
    assert_eq!(r.state, opt());
    assert_eq!(r.writes(), vec![opt()]);
    assert!(result(&f).is_err());
}

#[test]
fn vector_09_conditional_rollback() {
    let fx = || Fx {
        rollback_policy: Some(|e| e == "validation"),
        ..Fx::new()
    };
    let mut r = Run::new(fx());
    r.go(vec![Err("network".into())], reloaded());
    assert_eq!(r.state, opt());
    let mut r = Run::new(fx());
    r.go(vec![Err("validation".into())], reloaded());
    assert_eq!(r.state, items(&["initial"]));
}

#[test]
fn vector_10_custom_rollback_state() {
    let mut r = Run::new(Fx {
        rollback_returns_none: true,
        ..Fx::new()
    });
    r.go(vec![failed()], reloaded());
    assert_eq!(r.state, opt());
    let mut r = Run::new(Fx {
        mark_failed: true,
        ..Fx::new()
    });
    r.go(vec![failed()], reloaded());
    assert_eq!(r.state, items(&["initial", "new (FAILED)"]));
}

#[test]
fn vector_11_server_response_handling() {
    let confirmed = items(&["initial", "new", "server_confirmed"]);
    let mut r = Run::new(Fx::new());
    r.go(vec![Ok(Some(confirmed.clone()))], reloaded());
    assert_eq!(r.m.hooks.ops.borrow().as_slice(), ["applyServerResponse"]);
    assert_eq!(r.state, confirmed);

    let mut r = Run::new(Fx::new());
    r.go(vec![Ok(None)], reloaded());
    assert!(
        r.m.hooks.ops.borrow().is_empty(),
        "not called for a null response"
    );

    let mut r = Run::new(Fx {
        apply_response_null: true,
        ..Fx::new()
    });
    r.go(vec![Ok(Some(confirmed))], reloaded());
    assert_eq!(r.state, opt());
}

#[test]
fn vector_12_server_response_then_reload() {
    let confirmed = items(&["initial", "new", "server_confirmed"]);
    let mut r = Run::new(Fx {
        reload: true,
        always_reload: true,
        ..Fx::new()
    });
    r.go(vec![Ok(Some(confirmed.clone()))], reloaded());
    assert_eq!(
        r.m.hooks.ops.borrow().as_slice(),
        ["applyServerResponse", "reload"]
    );
    assert_eq!(r.state, items(&["reloaded"]));

    let mut r = Run::new(Fx {
        reload: true,
        ..Fx::new()
    });
    r.go(vec![Ok(Some(confirmed.clone()))], reloaded());
    assert_eq!(r.reloads, 0);
    assert_eq!(r.state, confirmed);
}

#[test]
fn vector_13_reload_error_fails_a_successful_command() {
    let mut r = Run::new(Fx {
        reload: true,
        always_reload: true,
        ..Fx::new()
    });
    let f = r.go(vec![Ok(None)], Err("Reload failed".into()));
    assert_eq!(result(&f), err("Reload failed"));
    assert_eq!(r.state, opt());
}

#[test]
fn vector_14_command_error_wins_over_reload_error() {
    let mut r = Run::new(Fx {
        reload: true,
        ..Fx::new()
    });
    let f = r.go(vec![failed()], Err("Reload failed".into()));
    assert_eq!(result(&f), err("command failed"));
    assert_eq!(r.state, items(&["initial"]));
}

#[test]
fn vector_15_should_reload_false_on_error() {
    let mut r = Run::new(Fx {
        reload: true,
        never_reload_on_error: true,
        ..Fx::new()
    });
    r.go(vec![failed()], reloaded());
    assert_eq!(r.reloads, 0);
    assert_eq!(r.state, items(&["initial"]));
}

#[test]
fn vector_16_should_apply_reload_false_on_error() {
    let mut r = Run::new(Fx {
        reload: true,
        should_apply_reload: false,
        ..Fx::new()
    });
    r.go(vec![failed()], reloaded());
    assert_eq!(r.reloads, 1);
    assert_eq!(r.state, items(&["initial"]));
}

#[test]
fn vector_18_last_applied_bookkeeping() {
    let mut r = Run::new(Fx::new());
    r.go(vec![failed()], reloaded());
    assert_eq!(
        r.m.hooks.reload_args.borrow().as_slice(),
        [(items(&["initial"]), Some(items(&["initial"])))]
    );
    let mut r = Run::new(Fx::new());
    r.go(vec![Ok(None)], reloaded());
    assert_eq!(r.m.hooks.reload_args.borrow().as_slice(), [(opt(), None)]);
}

#[test]
fn vector_19_apply_reload_null_skips_the_apply() {
    let mut r = Run::new(Fx {
        reload: true,
        always_reload: true,
        apply_reload_null: true,
        ..Fx::new()
    });
    r.go(vec![Ok(None)], reloaded());
    assert_eq!(r.reloads, 1);
    assert_eq!(r.state, opt());
    assert_eq!(r.writes(), vec![opt()]);
}

fn retrying(max: u32) -> Fx {
    Fx {
        reload: true,
        always_reload: true,
        retry: Some(Retry {
            max_retries: Some(max),
            ..Retry::default()
        }),
        ..Fx::new()
    }
}

#[test]
fn vector_20_retry_fail_fail_succeed() {
    let mut r = Run::new(retrying(10));
    let f = r.go(vec![failed(), failed(), Ok(None)], reloaded());
    assert_eq!(r.sends.len(), 3);
    assert!(matches!(
        f,
        CommandEffect::Finished {
            attempts: 2,
            result: Ok(()),
            ..
        }
    ));
    assert_eq!(r.writes(), vec![opt(), items(&["reloaded"])]);

    let mut r = Run::new(retrying(10));
    r.go(vec![failed(), failed(), failed(), Ok(None)], reloaded());
    assert_eq!(r.sends.len(), 4);
    assert!(
        r.sends.iter().all(|s| *s == opt()),
        "the same optimistic value each time"
    );
}

#[test]
fn vector_21_retry_always_failing() {
    let mut r = Run::new(Fx {
        reload: true,
        retry: Some(Retry::default()),
        ..Fx::new()
    });
    let f = r.go(vec![failed(), failed(), failed(), failed()], reloaded());
    assert_eq!(r.sends.len(), 4);
    assert!(matches!(f, CommandEffect::Finished { attempts: 4, .. }));
    assert_eq!(result(&f), err("command failed"));
    assert_eq!(
        r.writes(),
        vec![opt(), items(&["initial"]), items(&["reloaded"])]
    );
    let ms: Vec<u128> = r.waits.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [350, 700, 1400]);
}

#[test]
fn retry_delays_are_capped_and_a_small_multiplier_counts_as_two() {
    let retry = Retry {
        multiplier: 0.5,
        ..Retry::default()
    };
    let mut d = None;
    let mut seen = vec![];
    for _ in 0..6 {
        let next = retry.next_delay(d);
        seen.push(next.as_millis());
        d = Some(next);
    }
    assert_eq!(seen, [350, 700, 1400, 2800, 5000, 5000]);
}

#[test]
fn vector_22_retry_then_success_with_a_response() {
    let confirmed = items(&["initial", "new", "server_confirmed"]);
    let mut r = Run::new(Fx {
        retry: Some(Retry::default()),
        ..Fx::new()
    });
    r.go(
        vec![failed(), failed(), Ok(Some(confirmed.clone()))],
        reloaded(),
    );
    assert_eq!(r.state, confirmed);
    assert_eq!(r.writes(), vec![opt()]);
}

#[test]
fn vector_23_non_reentrant() {
    let mut state = items(&["initial"]);
    let mut m = CommandRunner::new(Fx::new());
    let Dispatched::Started(_) = m.dispatch(&mut state, K, items(&["initial", "item1"])) else {
        panic!()
    };
    assert!(m.is_running(&K));
    let second = m.dispatch(&mut state, K, items(&["initial", "item1", "item2"]));
    assert_eq!(second, Dispatched::Aborted);
    assert_eq!(
        m.hooks.writes.borrow().len(),
        1,
        "no write for the aborted one"
    );
    m.on_response(&mut state, &K, Ok(None));
    assert_eq!(state, items(&["initial", "item1"]));
    assert!(!m.is_running(&K));
}

#[test]
fn vector_24_sequential_dispatches() {
    let mut state = items(&["initial"]);
    let mut m = CommandRunner::new(Fx::new());
    m.dispatch(&mut state, K, items(&["initial", "item1"]));
    m.on_response(&mut state, &K, Ok(None));
    m.dispatch(&mut state, K, items(&["initial", "item1", "item2"]));
    m.on_response(&mut state, &K, Ok(None));
    assert_eq!(state, items(&["initial", "item1", "item2"]));

    let mut state = items(&["initial"]);
    m.dispatch(&mut state, K, opt());
    m.on_response(&mut state, &K, failed());
    assert_eq!(state, items(&["initial"]));
    assert!(matches!(
        m.dispatch(&mut state, K, opt()),
        Dispatched::Started(_)
    ));
}

#[test]
fn vector_26_shared_key_across_two_types() {
    let mut state: Items = vec![];
    let mut m = CommandRunner::new(Fx::new());
    m.dispatch(&mut state, K, items(&["value1"]));
    assert_eq!(
        m.dispatch(&mut state, K, items(&["value1", "value2"])),
        Dispatched::Aborted
    );
    m.on_response(&mut state, &K, Ok(None));
    let v = {
        let mut v = state.clone();
        v.push("value2".into());
        v
    };
    m.dispatch(&mut state, K, v);
    m.on_response(&mut state, &K, Ok(None));
    assert_eq!(state, items(&["value1", "value2"]));
}

#[test]
fn vector_27_check_internet_offline() {
    let mut state = items(&["initial"]);
    let mut m = CommandRunner::new(Fx {
        offline: Some(false),
        ..Fx::new()
    });
    assert_eq!(
        m.dispatch(&mut state, K, opt()),
        Dispatched::Failed("no connectivity".into())
    );
    assert!(m.hooks.writes.borrow().is_empty());
    assert!(!m.is_running(&K), "the key is released");
    m.hooks.offline = Some(true);
    assert_eq!(m.dispatch(&mut state, K, opt()), Dispatched::Aborted);
    m.hooks.offline = None;
    assert!(matches!(
        m.dispatch(&mut state, K, opt()),
        Dispatched::Started(_)
    ));
}
