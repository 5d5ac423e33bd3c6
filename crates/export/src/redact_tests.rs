use super::*;

#[test]
fn same_value_same_placeholder_and_counts_distinct_values() {
    let mut r = Redactor::default();
    let a = r.text("write the report", "prompt");
    let b = r.text("something else", "prompt");
    let c = r.text("write the report", "prompt");
    assert_eq!(a, "[redacted:prompt:1]");
    assert_eq!(b, "[redacted:prompt:2]");
    assert_eq!(a, c);
    assert_eq!(r.counts["prompt"], 2);
}

#[test]
fn paths_are_hashed_not_numbered() {
    let mut r = Redactor::default();
    let p = r.text("/home/alice/secret-project", "path");
    assert!(p.starts_with("[redacted:path:"), "{p}");
    assert!(!p.contains("alice"));
    assert_eq!(p.len(), "[redacted:path:]".len() + 12);
    assert_eq!(p, r.text("/home/alice/secret-project", "path"));
    assert_ne!(p, r.text("/home/bob", "path"));
}

#[test]
fn secret_check_finds_raw_and_escaped_values_and_never_prints_them() {
    let secret = Secret::new("OPENAI_API_KEY", "sk-test-\"quoted\"-123");
    let escaped = format!(
        "{{\"x\":{}}}",
        serde_json::to_string("sk-test-\"quoted\"-123").unwrap()
    );
    let err = check_secrets(escaped.as_bytes(), std::slice::from_ref(&secret)).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("OPENAI_API_KEY"));
    assert!(!message.contains("sk-test"));
    assert!(!format!("{secret:?}").contains("sk-test"));
    assert!(check_secrets(b"clean output", &[secret]).is_ok());
}

fn guarded(secrets: &[Secret], chunk: usize, pieces: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut guard = SecretGuard::with_chunk(Vec::new(), secrets, chunk);
    for piece in pieces {
        guard.write_all(piece).map_err(|e| {
            secret_found(&e)
                .map(|f| f.env_var.clone())
                .unwrap_or_default()
        })?;
    }
    guard.finish().map_err(|e| {
        secret_found(&e)
            .map(|f| f.env_var.clone())
            .unwrap_or_default()
    })
}

#[test]
fn the_guard_finds_a_secret_that_straddles_a_chunk_boundary() {
    let secret = Secret::new("OPENAI_API_KEY", "sk-straddle-0123456789");
    let value = b"sk-straddle-0123456789".as_slice();
    let chunk = 64;
    // The value starts 5 bytes before the end of the first chunk, at every split too.
    for split in 1..value.len() {
        let mut text = vec![b'x'; chunk - split];
        text.extend_from_slice(value);
        text.extend_from_slice(&[b'y'; 100]);
        let (a, b) = text.split_at(chunk);
        let found = guarded(std::slice::from_ref(&secret), chunk, &[a, b]);
        assert_eq!(found, Err("OPENAI_API_KEY".to_owned()), "split at {split}");
        // Written byte by byte (no write reaches a chunk alone) it is found too.
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        let found = guarded(std::slice::from_ref(&secret), chunk, &bytes);
        assert_eq!(
            found,
            Err("OPENAI_API_KEY".to_owned()),
            "split at {split}, bytewise"
        );
    }
    // JSON-escaped, across a boundary.
    let quoted = Secret::new("K", "sk-\"quoted\"-0123456789");
    let escaped = serde_json::to_string("sk-\"quoted\"-0123456789").unwrap();
    let mut text = vec![b' '; chunk - 4];
    text.extend_from_slice(escaped.as_bytes());
    let (a, b) = text.split_at(chunk);
    assert_eq!(
        guarded(std::slice::from_ref(&quoted), chunk, &[a, b]),
        Err("K".to_owned())
    );
}

#[test]
fn a_recorded_print_is_found_without_the_value_across_chunks() {
    let key = b"pk-recorded-0123456789abcdef";
    let print = KeyPrint::new("POD_KEY", "raw", key, b"salt-salt-salt-1");
    let secret = Secret::recorded(print);
    assert!(!format!("{secret:?}").contains("pk-recorded"));
    let chunk = 64;
    for split in 1..key.len() {
        let mut text = vec![b'x'; chunk - split];
        text.extend_from_slice(key);
        text.extend_from_slice(&[b'y'; 100]);
        let (a, b) = text.split_at(chunk);
        let found = guarded(std::slice::from_ref(&secret), chunk, &[a, b]);
        assert_eq!(found, Err("POD_KEY".to_owned()), "split at {split}");
    }
    let err = check_secrets(
        &[b"a ".as_slice(), key].concat(),
        std::slice::from_ref(&secret),
    )
    .unwrap_err();
    assert!(err.to_string().contains("POD_KEY"));
    assert!(check_secrets(&key[..key.len() - 1], &[secret]).is_ok());
}

#[test]
fn a_print_of_a_key_the_shell_has_is_not_searched_twice() {
    let key = "pk-shared-0123456789abcdef";
    let print = |k: &str| Secret::recorded(KeyPrint::new("K", "raw", k.as_bytes(), b"s"));
    let mut secrets = vec![Secret::new("K", key)];
    merge_recorded(
        &mut secrets,
        vec![print(key), print("pk-other-0123456789abcdef")],
    );
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    assert!(check_secrets(b"x pk-other-0123456789abcdef", &secrets).is_err());
}

#[test]
fn the_guard_passes_clean_bytes_on_unchanged() {
    let secret = Secret::new("OPENAI_API_KEY", "sk-never-written-0123");
    let text: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let pieces: Vec<&[u8]> = text.chunks(37).collect();
    let mut guard = SecretGuard::with_chunk(Vec::new(), &[secret], 100);
    for piece in &pieces {
        guard.write_all(piece).unwrap();
    }
    assert_eq!(guard.finish().unwrap(), text);
}

#[test]
fn short_values_are_not_searched() {
    let secret = Secret::new("X", "a");
    assert!(check_secrets(b"a a a", &[secret]).is_ok());
}
