use super::*;

/// A phase as a terminal entry (`recorded`) or the log's entries (`derived`) give it.
fn phase(source: &str, visible: Option<bool>, effects: Option<&[&str]>) -> PhaseDoc {
    PhaseDoc {
        source: source.to_owned(),
        provider_progress_seen: Some(true),
        visible_output_seen: visible,
        tool_execution: "completed".to_owned(),
        side_effects_started: effects.map(|e| e.iter().map(|c| (*c).to_owned()).collect()),
    }
}

fn verdict(phase: &PhaseDoc) -> (RetryVerdict, String) {
    let safety = retry_safety(phase);
    (safety.verdict, safety.reason)
}

#[test]
fn nothing_started_is_safe() {
    let (verdict, reason) = verdict(&phase("recorded", Some(false), Some(&[])));
    assert_eq!(verdict, RetryVerdict::Safe);
    assert_eq!(
        reason,
        "nothing had started: no visible output and no tool side effects"
    );
}

#[test]
fn read_only_tools_alone_are_safe_to_repeat() {
    let (verdict, reason) = verdict(&phase("derived", Some(false), Some(&["read_only"])));
    assert_eq!(verdict, RetryVerdict::Safe);
    assert_eq!(
        reason,
        "only read_only tools ran and no visible output was shown"
    );
}

#[test]
fn every_side_effect_beyond_reading_is_unsafe_and_named() {
    for class in [
        SideEffectClass::LocalWrite,
        SideEffectClass::Process,
        SideEffectClass::Spawn,
        SideEffectClass::Unknown,
    ] {
        let name = class.as_str();
        let (verdict, reason) = verdict(&phase("recorded", Some(false), Some(&[name])));
        assert_eq!(verdict, RetryVerdict::Unsafe, "{name}");
        let article = if name == "unknown" { "an" } else { "a" };
        assert_eq!(
            reason,
            format!("{article} {name} side effect started; repeating the run would repeat it")
        );
    }
}

#[test]
fn the_reason_names_the_writes_only_in_the_order_they_started() {
    let effects = ["process", "read_only", "local_write"];
    let (verdict, reason) = verdict(&phase("derived", Some(false), Some(&effects)));
    assert_eq!(verdict, RetryVerdict::Unsafe);
    assert_eq!(
        reason,
        "a process and local_write side effect started; repeating the run would repeat it"
    );
}

#[test]
fn a_side_effect_outweighs_output_the_user_saw_or_may_have_seen() {
    for visible in [Some(true), None] {
        let (verdict, _) = verdict(&phase("recorded", visible, Some(&["spawn"])));
        assert_eq!(verdict, RetryVerdict::Unsafe, "visible: {visible:?}");
    }
}

#[test]
fn output_the_user_saw_makes_it_the_users_call() {
    let (verdict, reason) = verdict(&phase("recorded", Some(true), Some(&["read_only"])));
    assert_eq!(verdict, RetryVerdict::AskUser);
    assert_eq!(reason, "visible output was already shown to the user");
}

#[test]
fn unknown_visible_output_asks_and_says_which_source_left_it_unknown() {
    let (recorded, recorded_reason) = verdict(&phase("recorded", None, Some(&[])));
    assert_eq!(recorded, RetryVerdict::AskUser);
    assert_eq!(
        recorded_reason,
        "the terminal entry does not record whether visible output was shown"
    );
    let (derived, derived_reason) = verdict(&phase("derived", None, Some(&[])));
    assert_eq!(derived, RetryVerdict::AskUser);
    assert!(
        derived_reason.starts_with("output may have been shown: a provider stream was open"),
        "{derived_reason}"
    );
}

#[test]
fn unrecorded_side_effects_are_never_taken_for_none() {
    let (verdict, reason) = verdict(&phase("recorded", Some(false), None));
    assert_eq!(verdict, RetryVerdict::AskUser);
    assert_eq!(reason, "the log does not record which side effects started");
}

#[test]
fn a_side_effect_class_from_a_newer_writer_is_not_taken_for_reading() {
    let (verdict, reason) = verdict(&phase("recorded", Some(false), Some(&["teleport"])));
    assert_eq!(verdict, RetryVerdict::Unsafe);
    assert!(
        reason.starts_with("a teleport side effect started"),
        "{reason}"
    );
}

#[test]
fn a_network_side_effect_is_the_users_call_unless_something_unsafe_started_too() {
    let (first, reason) = verdict(&phase(
        "derived",
        Some(false),
        Some(&["read_only", "network"]),
    ));
    assert_eq!(first, RetryVerdict::AskUser);
    assert!(reason.contains("network"), "{reason}");
    let (second, reason) = verdict(&phase(
        "derived",
        Some(false),
        Some(&["network", "unknown"]),
    ));
    assert_eq!(second, RetryVerdict::Unsafe);
    assert_eq!(
        reason,
        "an unknown side effect started; repeating the run would repeat it"
    );
}
