use super::*;
use crate::control::{ActionParams, ClientInfo, ControlClient, RunResult, cli_client};
use crate::record::{LifecycleKind, Origin};
use pod_provider::event::StopReason;
use serde_json::Value;

#[tokio::test]
async fn live_socket_is_not_stolen_but_stale_one_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ControlServer::bind(dir.path()).await.expect("bind");
    let second = ControlServer::bind(dir.path()).await;
    assert!(matches!(second, Err(ChildError::SocketInUse { .. })));
    drop(server);
    // A socket file with no listener behind it (a crashed pod) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(dir.path().join(CONTROL_SOCKET))
        .expect("stale bind");
    drop(stale);
    assert!(dir.path().join(CONTROL_SOCKET).exists());
    let again = ControlServer::bind(dir.path()).await;
    assert!(again.is_ok(), "{:?}", again.err());
}

/// A pod that answers a request and ends at once still delivers the answer: `close` waits
/// for it; the runtime is dropped right after, so nothing else could write it.
#[test]
fn a_reply_owed_when_the_server_closes_is_still_delivered() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut server = runtime
        .block_on(ControlServer::bind(dir.path()))
        .expect("bind");
    let path = server.path().to_owned();
    let client = std::thread::spawn(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        writeln!(
            stream,
            r#"{{"id": "r-last", "client": {{"type": "other", "name": "t"}}, "method": "cancel"}}"#
        )
        .expect("write");
        let mut line = String::new();
        let _ = std::io::BufReader::new(&stream).read_line(&mut line);
        line
    });
    runtime.block_on(async move {
        let request = server.incoming.recv().await.expect("request");
        request.respond(Ok(serde_json::json!({"accepted": true})));
        server.close(std::time::Duration::from_secs(5)).await;
    });
    drop(runtime);
    let line = client.join().expect("client");
    let reply: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line:?}"));
    assert_eq!(reply["id"], "r-last");
    assert_eq!(reply["ok"], true, "{reply}");
}

#[test]
fn events_published_just_before_the_server_closes_still_reach_a_subscriber() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime
        .block_on(ControlServer::bind(dir.path()))
        .expect("bind");
    let path = server.path().to_owned();
    let (subscribed_tx, subscribed) = oneshot::channel();
    let client = std::thread::spawn(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        writeln!(
            stream,
            r#"{{"id": "s", "client": {{"type": "other", "name": "t"}}, "method": "subscribe"}}"#
        )
        .expect("write");
        let mut lines = std::io::BufReader::new(&stream).lines();
        let reply = lines.next().expect("reply").expect("read");
        let _ = subscribed_tx.send(());
        let mut seen = vec![reply];
        seen.extend(lines.map_while(Result::ok));
        seen
    });
    runtime.block_on(async move {
        subscribed.await.expect("subscribed");
        for run_id in ["r1", "r2"] {
            server.publish(PodEvent::RunStarted {
                run_id: run_id.into(),
                request_id: None,
            });
        }
        // Nothing has run the subscriber's task yet: only close's wait lets it write.
        server.close(std::time::Duration::from_secs(5)).await;
    });
    drop(runtime);
    let seen = client.join().expect("client");
    let runs: Vec<Value> = seen[1..]
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).expect("json")["run_id"].clone())
        .collect();
    assert_eq!(
        runs,
        [serde_json::json!("r1"), serde_json::json!("r2")],
        "{seen:?}"
    );
}

#[tokio::test]
async fn request_reaches_owner_with_origin_and_reply_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ControlServer::bind(dir.path()).await.expect("bind");
    let owner = tokio::spawn(async move {
        let req = server.incoming.recv().await.expect("request");
        let action = req
            .action(vec!["pod-1".into(), "child-1".into()])
            .expect("action");
        let origin = req.origin();
        req.respond(Ok(serde_json::to_value(&action).expect("json")));
        (origin, action, server)
    });
    let client = ControlClient::connect(dir.path(), cli_client())
        .await
        .expect("connect");
    let params = ActionParams {
        reason: Some("enough".into()),
        caused_by: None,
    };
    let reply = client
        .call_with_id("req-7", &Call::Action(LifecycleKind::Stop, params))
        .await
        .expect("reply");
    let (origin, action, _server) = owner.await.expect("owner");
    assert_eq!(
        origin,
        Origin::Cli {
            command: "pods stop test".into(),
            request_id: "req-7".into()
        }
    );
    assert_eq!(action.kind, LifecycleKind::Stop);
    assert_eq!(action.reason.as_deref(), Some("enough"));
    assert_eq!(
        action.affects,
        vec!["pod-1".to_owned(), "child-1".to_owned()]
    );
    assert_eq!(reply["action_id"], Value::String(action.action_id));
}

async fn raw_exchange(dir: &Path, line: &str) -> Value {
    let mut stream = UnixStream::connect(dir.join(CONTROL_SOCKET))
        .await
        .expect("connect");
    stream.write_all(line.as_bytes()).await.expect("write");
    stream.write_all(b"\n").await.expect("write");
    let mut reader = BufReader::new(&mut stream);
    let mut out = String::new();
    reader.read_line(&mut out).await.expect("read");
    serde_json::from_str(&out).expect("reply is json")
}

#[tokio::test]
async fn malformed_requests_get_error_replies_and_server_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ControlServer::bind(dir.path()).await.expect("bind");
    let not_json = raw_exchange(dir.path(), "this is not json").await;
    assert_eq!(not_json["ok"], false);
    assert_eq!(not_json["error"]["code"], "bad_request");
    let no_client = raw_exchange(dir.path(), r#"{"id":"a","method":"status"}"#).await;
    assert_eq!(no_client["id"], "a");
    assert!(
        no_client["error"]["message"]
            .as_str()
            .expect("message")
            .contains("client")
    );
    let unknown = raw_exchange(
        dir.path(),
        r#"{"id":"b","client":{"type":"cli","command":"x"},"method":"explode"}"#,
    )
    .await;
    assert_eq!(unknown["error"]["code"], "unknown_method");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .expect("message")
            .contains("stop_tree")
    );
    let bad_params = raw_exchange(
        dir.path(),
        r#"{"id":"c","client":{"type":"cli","command":"x"},"method":"run","params":{"inptu":"x"}}"#,
    )
    .await;
    assert_eq!(bad_params["error"]["code"], "bad_request");
    // Still serving: a good request reaches the owner.
    let owner = tokio::spawn(async move {
        let req = server.incoming.recv().await.expect("request");
        assert_eq!(req.call, Call::Status);
        req.respond(Ok(serde_json::json!({"state": "idle"})));
        server
    });
    let ok = raw_exchange(
        dir.path(),
        r#"{"id":"d","client":{"type":"other","name":"t"},"method":"status"}"#,
    )
    .await;
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["result"]["state"], "idle");
    drop(owner.await);
}

#[tokio::test]
async fn oversized_line_is_refused_not_buffered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _server = ControlServer::bind(dir.path()).await.expect("bind");
    let huge = "x".repeat(MAX_LINE_BYTES + 10);
    let reply = raw_exchange(dir.path(), &huge).await;
    assert_eq!(reply["error"]["code"], "bad_request");
    assert!(
        reply["error"]["message"]
            .as_str()
            .expect("message")
            .contains("longer than")
    );
}

#[tokio::test]
async fn subscribers_receive_events_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ControlServer::bind(dir.path()).await.expect("bind");
    let client = ControlClient::connect(
        dir.path(),
        ClientInfo::ParentPod {
            pod_id: "parent".into(),
            tool_call_id: None,
        },
    )
    .await
    .expect("connect");
    client.subscribe().await.expect("subscribe");
    server.publish(PodEvent::RunStarted {
        run_id: "r1".into(),
        request_id: None,
    });
    server.publish(PodEvent::RunEnded {
        run_id: "r1".into(),
        request_id: None,
        result: RunResult::Completed {
            text: "done".into(),
            stop_reason: Some(StopReason::MaxTokens),
            truncated: Some(true),
        },
    });
    assert_eq!(
        client.next_event().await,
        Some(PodEvent::RunStarted {
            run_id: "r1".into(),
            request_id: None,
        })
    );
    assert!(matches!(
        client.next_event().await,
        Some(PodEvent::RunEnded {
            result: RunResult::Completed { ref text, stop_reason: Some(StopReason::MaxTokens), truncated: Some(true) },
            ..
        }) if text == "done"
    ));
    drop(server);
    // Server gone: pending calls fail instead of hanging.
    let status = client.call(&Call::Status).await;
    assert!(status.is_err());
}

/// Nobody but the verified parent answers a pod's asks: a command line, or a client that claims
/// to be the parent from the wrong process, is refused and the ask keeps waiting.
#[tokio::test]
async fn only_the_verified_parent_may_answer_an_ask() {
    use crate::approval::Approver;
    use crate::record::{DecisionSource, SideEffectClass};
    use pod_protocol::control::{ApprovalAnswer, ApprovalAsk};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = ControlServer::bind(dir.path()).await.expect("bind");
    let watcher = ControlClient::connect(dir.path(), cli_client())
        .await
        .expect("connect");
    watcher.subscribe().await.expect("subscribe");
    let asker = server.ask_parent("parent-1");
    let ask = ApprovalAsk {
        ask_id: "ask-7".into(),
        pod_id: "pod".into(),
        pod_name: "pod".into(),
        run_id: "r".into(),
        call_id: "c".into(),
        tool: "shell".into(),
        side_effect: SideEffectClass::Process,
        input: "{}".into(),
        why: "permissions.process = \"ask\"".into(),
    };
    let waiting = tokio::spawn(async move { asker.decide(&ask).await });
    let Some(PodEvent::ApprovalRequested(published)) = watcher.next_event().await else {
        panic!("the ask was not published");
    };
    let answer = Call::Approve(ApprovalAnswer {
        ask_id: published.ask_id,
        allow: true,
        for_pod: true,
        source: DecisionSource::User,
        detail: "forged".into(),
    });
    let as_cli = watcher
        .call(&answer)
        .await
        .expect_err("a cli client may not answer");
    assert!(
        as_cli.to_string().contains("only this pod's parent"),
        "{as_cli}"
    );
    let pretender = ControlClient::connect(
        dir.path(),
        ClientInfo::ParentPod {
            pod_id: "parent-1".into(),
            tool_call_id: None,
        },
    )
    .await
    .expect("connect");
    let as_pretender = pretender
        .call(&answer)
        .await
        .expect_err("an unverified parent claim may not answer");
    assert!(
        as_pretender.to_string().contains("only this pod's parent"),
        "{as_pretender}"
    );
    assert!(!waiting.is_finished(), "the ask still waits");
    waiting.abort();
}
