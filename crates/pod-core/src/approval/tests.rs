use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use pod_profile::{Permission, PermissionsSection};
use pod_protocol::control::{ApprovalAnswer, ApprovalAsk, PodEvent};
use pod_protocol::record::{Decision, DecisionSource, SideEffectClass};

use super::parent::{AskParent, PendingAsks};
use super::{AnswerFuture, Approvals, ApproveFlag, Approver, Unattended};

fn ask(tool: &str, side_effect: SideEffectClass) -> ApprovalAsk {
    ApprovalAsk {
        ask_id: "ask-1".into(),
        pod_id: "pod-1".into(),
        pod_name: "coder-1".into(),
        run_id: "run-1".into(),
        call_id: "call-1".into(),
        tool: tool.into(),
        side_effect,
        input: "{}".into(),
        why: String::new(),
    }
}

/// Answers every ask with `allow` and `for_pod`, counting the asks.
#[derive(Default)]
struct Counting {
    asked: AtomicU32,
    for_pod: bool,
}

impl Approver for Counting {
    fn decide<'a>(&'a self, ask: &'a ApprovalAsk) -> AnswerFuture<'a> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(ApprovalAnswer {
            ask_id: ask.ask_id.clone(),
            allow: true,
            for_pod: self.for_pod,
            source: DecisionSource::User,
            detail: format!("asked about {} because {}", ask.tool, ask.why),
        }))
    }
}

#[tokio::test]
async fn config_allow_and_deny_are_decided_without_asking_and_name_their_key() {
    let approver = Arc::new(Counting::default());
    let approvals = Approvals::new(approver.clone());
    let permissions = PermissionsSection {
        tools: [("write_file".to_owned(), Permission::Deny)].into(),
        ..Default::default()
    };
    let read = approvals
        .decide(&permissions, ask("read_file", SideEffectClass::ReadOnly))
        .await;
    assert_eq!(read.decision, Decision::Allowed);
    assert_eq!(read.source, DecisionSource::Config);
    assert_eq!(read.detail, "permissions.read_only = \"allow\"");
    let write = approvals
        .decide(&permissions, ask("write_file", SideEffectClass::LocalWrite))
        .await;
    assert_eq!(write.decision, Decision::Denied);
    assert_eq!(write.detail, "permissions.tools.write_file = \"deny\"");
    assert_eq!(approver.asked.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_ask_reaches_the_approver_with_the_rule_and_for_pod_is_remembered() {
    let approver = Arc::new(Counting {
        for_pod: true,
        ..Default::default()
    });
    let approvals = Approvals::new(approver.clone());
    let permissions = PermissionsSection::default();
    let first = approvals
        .decide(&permissions, ask("shell", SideEffectClass::Process))
        .await;
    assert_eq!(first.decision, Decision::Allowed);
    assert_eq!(first.source, DecisionSource::User);
    assert!(
        first.detail.contains("permissions.process = \"ask\""),
        "{}",
        first.detail
    );
    let second = approvals
        .decide(&permissions, ask("shell", SideEffectClass::Process))
        .await;
    assert_eq!(second.decision, Decision::Allowed);
    assert!(second.detail.ends_with("(allowed for this pod)"));
    assert_eq!(approver.asked.load(Ordering::SeqCst), 1, "asked once");
    // Remembered per tool: another tool of the same class is asked about again.
    approvals
        .decide(&permissions, ask("mcp__x__run", SideEffectClass::Process))
        .await;
    assert_eq!(approver.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_a_terminal_the_flag_decides_and_without_a_flag_asks_are_denied_saying_why() {
    let decide = |flag, side_effect| async move {
        let approvals = Approvals::new(Arc::new(Unattended { flag }));
        approvals
            .decide(&PermissionsSection::default(), ask("shell", side_effect))
            .await
    };
    let none = decide(None, SideEffectClass::Process).await;
    assert_eq!(none.decision, Decision::Denied);
    assert_eq!(none.source, DecisionSource::Config);
    assert!(none.detail.contains("no terminal"), "{}", none.detail);
    assert!(none.detail.contains("--approve"), "{}", none.detail);

    let all = decide(Some(ApproveFlag::All), SideEffectClass::Process).await;
    assert_eq!(
        (all.decision, all.source),
        (Decision::Allowed, DecisionSource::Flag)
    );
    let never = decide(Some(ApproveFlag::Never), SideEffectClass::Process).await;
    assert_eq!(never.decision, Decision::Denied);
    assert_eq!(never.detail, "--approve never");
    let read_only = decide(Some(ApproveFlag::ReadOnly), SideEffectClass::Process).await;
    assert_eq!(read_only.decision, Decision::Denied);
    assert!(read_only.detail.contains("process"), "{}", read_only.detail);

    // `--approve read-only` allows a read-only tool that the policy asks about.
    let approvals = Approvals::new(Arc::new(Unattended {
        flag: Some(ApproveFlag::ReadOnly),
    }));
    let permissions = PermissionsSection {
        read_only: Permission::Ask,
        ..Default::default()
    };
    let read = approvals
        .decide(&permissions, ask("search", SideEffectClass::ReadOnly))
        .await;
    assert_eq!(read.decision, Decision::Allowed);
}

#[tokio::test]
async fn a_childs_ask_is_published_and_the_parents_answer_is_recorded_as_the_parents() {
    let (events, mut subscriber) = tokio::sync::broadcast::channel(8);
    let pending = PendingAsks::default();
    let approvals = Approvals::new(Arc::new(AskParent {
        parent_id: "parent-9".into(),
        events,
        pending: pending.clone(),
    }));
    let decided = tokio::spawn(async move {
        approvals
            .decide(
                &PermissionsSection::default(),
                ask("shell", SideEffectClass::Process),
            )
            .await
    });
    let PodEvent::ApprovalRequested(published) = subscriber.recv().await.unwrap() else {
        panic!("expected an approval request");
    };
    assert_eq!(published.why, "permissions.process = \"ask\"");
    pending
        .resolve(ApprovalAnswer {
            ask_id: published.ask_id.clone(),
            allow: true,
            for_pod: false,
            source: DecisionSource::User,
            detail: "allowed once at the terminal".into(),
        })
        .unwrap();
    let verdict = decided.await.unwrap();
    assert_eq!(verdict.decision, Decision::Allowed);
    assert_eq!(verdict.source, DecisionSource::Parent);
    assert!(
        verdict.detail.contains("parent-9") && verdict.detail.contains("user"),
        "{}",
        verdict.detail
    );
    // Answered once: a second answer to the same ask is refused, naming it.
    let again = pending.resolve(ApprovalAnswer {
        ask_id: published.ask_id,
        allow: false,
        for_pod: false,
        source: DecisionSource::User,
        detail: String::new(),
    });
    assert!(again.unwrap_err().contains("ask-1"));
}

#[tokio::test]
async fn a_child_whose_parent_does_not_listen_is_denied_saying_so() {
    let (events, subscriber) = tokio::sync::broadcast::channel(8);
    drop(subscriber);
    let approvals = Approvals::new(Arc::new(AskParent {
        parent_id: "parent-9".into(),
        events,
        pending: PendingAsks::default(),
    }));
    let verdict = approvals
        .decide(
            &PermissionsSection::default(),
            ask("shell", SideEffectClass::Process),
        )
        .await;
    assert_eq!(verdict.decision, Decision::Denied);
    assert!(
        verdict.detail.contains("not listening"),
        "{}",
        verdict.detail
    );
}
