//! No silent mode switch, between real processes and on every backend: an opener that asks for
//! a `QueueMode` (`ShmQueueOptions::queue_mode`) and finds a queue created in the other one
//! gets `Error::QueueModeMismatch` naming both; an opener that asks for none follows the
//! creator; `open_or_create` that creates uses the mode asked for, or the default (MPMC).
//!
//! The opener is `shm-helper queue-open-mode`, which prints `ok MODE` and pushes one element,
//! or `err VARIANT MESSAGE`.

use shmstore::{Error, QueueMode};
use shmstore_tests::{create_queue, helper, Backend, Msg, MsgQueue, Place, PATIENCE};

/// The helper's word for a mode.
fn word(mode: QueueMode) -> &'static str {
    match mode {
        QueueMode::Spsc => "spsc",
        _ => "mpmc",
    }
}

/// The other mode.
fn other(mode: QueueMode) -> QueueMode {
    match mode {
        QueueMode::Spsc => QueueMode::Mpmc,
        _ => QueueMode::Spsc,
    }
}

/// Runs `shm-helper queue-open-mode PLACE HOW MODE` and returns its first line; an opener that
/// succeeded has pushed `Msg::new(1, 0)` before exiting.
fn open_in_helper(place: &Place, how: &str, mode: &str) -> String {
    let mut h = helper!("queue-open-mode", place, how, mode);
    let first = h.line();
    let rest = h.finish_ok();
    if first.starts_with("ok ") {
        assert_eq!(rest, ["pushed"], "{first}");
    }
    first
}

/// Checks that `line` is the helper's report of a `QueueModeMismatch` that names the mode
/// asked for, the mode found, and what to do.
fn assert_mismatch(line: &str, asked: QueueMode, found: QueueMode) {
    assert!(
        line.starts_with("err QueueModeMismatch "),
        "asked {asked:?} of a {found:?} queue, expected QueueModeMismatch: {line}"
    );
    let names = |mode: QueueMode| format!("QueueMode::{mode:?}");
    let asked_at = line.find(&format!("asked for {}", names(asked)));
    let found_at = line.find(&format!("created in mode {}", names(found)));
    assert!(
        asked_at.is_some() && found_at.is_some(),
        "both modes must be named: {line}"
    );
    assert!(line.contains("leave queue_mode unset"), "{line}");
}

/// The consumer (a helper that asks for no mode) created the queue first, MPMC by default; a
/// producer that asks for SPSC must not be switched to MPMC silently: by `open` or by
/// `open_or_create`, it gets an error naming both modes, and the queue is left as it was.
fn a_producer_asking_spsc_of_a_queue_its_consumer_created_gets_an_error(backend: Backend) {
    let place = Place::new(backend, "modes-issue");
    assert_eq!(open_in_helper(&place, "open-or-create", "any"), "ok mpmc");
    for how in ["open", "open-or-create"] {
        let line = open_in_helper(&place, how, "spsc");
        assert_mismatch(&line, QueueMode::Spsc, QueueMode::Mpmc);
    }
    let q = MsgQueue::open(&place).unwrap();
    assert_eq!(q.mode(), QueueMode::Mpmc);
    assert_eq!(
        q.len(),
        1,
        "only the creator's element: the refused opens pushed nothing"
    );
}

/// Both directions, both ways of opening: asking for the mode the queue does not have is an
/// error naming both; asking for the one it has opens it.
fn asking_for_the_other_mode_is_an_error_naming_both(backend: Backend) {
    for created in [QueueMode::Spsc, QueueMode::Mpmc] {
        let place = Place::new(backend, "modes-both");
        let q = create_queue(&place, created);
        for how in ["open", "open-or-create"] {
            let line = open_in_helper(&place, how, word(other(created)));
            assert_mismatch(&line, other(created), created);
        }
        assert!(q.is_empty(), "a refused opener pushed nothing");
        let line = open_in_helper(&place, "open", word(created));
        assert_eq!(line, format!("ok {}", word(created)));
        assert_eq!(q.pop_timeout(PATIENCE).unwrap(), Some(Msg::new(1, 0)));
    }
}

/// An opener that asks for no mode follows the creator's, by `open` and by `open_or_create`.
fn an_opener_that_asks_for_no_mode_follows_the_creator(backend: Backend) {
    for created in [QueueMode::Spsc, QueueMode::Mpmc] {
        let place = Place::new(backend, "modes-follow");
        let q = create_queue(&place, created);
        for how in ["open", "open-or-create"] {
            let line = open_in_helper(&place, how, "any");
            assert_eq!(line, format!("ok {}", word(created)), "{how}");
            assert_eq!(q.pop_timeout(PATIENCE).unwrap(), Some(Msg::new(1, 0)));
        }
    }
}

/// `open_or_create` that creates uses the mode asked for (the default, MPMC, when none), and a
/// later opener that asks for the other one is refused.
fn open_or_create_that_creates_uses_the_mode_asked_for(backend: Backend) {
    for (asked, created) in [
        ("spsc", QueueMode::Spsc),
        ("mpmc", QueueMode::Mpmc),
        ("any", QueueMode::Mpmc),
    ] {
        let place = Place::new(backend, "modes-create");
        assert_eq!(
            open_in_helper(&place, "open-or-create", asked),
            format!("ok {}", word(created)),
            "asked {asked}"
        );
        assert_eq!(MsgQueue::open(&place).unwrap().mode(), created);
        let line = open_in_helper(&place, "open-or-create", word(other(created)));
        assert_mismatch(&line, other(created), created);
    }
}

/// A refused opener never removes the queue, even with `unlink_on_drop`: the mode is checked
/// before the handle that would remove it exists. The error's fields name both modes.
fn a_refused_opener_with_unlink_on_drop_leaves_the_queue(backend: Backend) {
    let place = Place::new(backend, "modes-unlink");
    let _creator = create_queue(&place, QueueMode::Mpmc);
    let refused = MsgQueue::options()
        .queue_mode(QueueMode::Spsc)
        .unlink_on_drop(true)
        .open(&place);
    match refused {
        Err(Error::QueueModeMismatch { name, asked, found }) => {
            assert_eq!(name, place.to_string());
            assert_eq!((asked, found), (QueueMode::Spsc, QueueMode::Mpmc));
        }
        other => panic!("expected QueueModeMismatch, got {other:?}"),
    }
    assert!(place.exists(), "the refused opener removed the queue");
    assert_eq!(MsgQueue::open(&place).unwrap().mode(), QueueMode::Mpmc);
}

shmstore_tests::for_each_backend!(
    a_producer_asking_spsc_of_a_queue_its_consumer_created_gets_an_error,
    asking_for_the_other_mode_is_an_error_naming_both,
    an_opener_that_asks_for_no_mode_follows_the_creator,
    open_or_create_that_creates_uses_the_mode_asked_for,
    a_refused_opener_with_unlink_on_drop_leaves_the_queue,
);
