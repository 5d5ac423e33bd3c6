//! The README's tour, run as written: every command of the fenced block after the `tour`
//! marker, with the real binary in one fresh home, twice over (the tour promises to work after
//! any number of runs). The README and this test cannot drift apart.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{Sandbox, describe};

const MARKER: &str = "<!-- tour:";
const LIMIT: Duration = Duration::from_secs(120);

/// The commands of the tour block: one per line, trailing `# comments` dropped.
fn tour_commands(readme: &str) -> Vec<Vec<String>> {
    let after = readme
        .split(MARKER)
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has no `{MARKER}` marker"));
    let block = after
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a ```sh block follows the tour marker");
    block
        .lines()
        .map(|line| words(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .filter(|words| !words.is_empty())
        .collect()
}

/// Shell words of `line` (plain words, single and double quotes), up to a `#` comment.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' if word.is_none() => break,
            ' ' | '\t' => words.extend(word.take()),
            '"' | '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => current.extend(chars.next()),
                        Some(other) => current.push(other),
                        None => return Err(format!("unclosed {c}")),
                    }
                }
            }
            '|' | '>' | '<' | ';' | '&' | '$' | '`' => {
                return Err(format!("`{c}`: the tour holds plain commands only"));
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    words.extend(word);
    Ok(words)
}

#[test]
fn every_tour_command_exits_0_twice_in_one_home() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let commands = tour_commands(&readme);
    assert!(commands.len() >= 5, "{commands:?}");
    let sandbox = Sandbox::new();
    let home = sandbox.root().join("tour-home");
    let home = home.to_str().unwrap();
    for round in 1..=2 {
        for command in &commands {
            assert_eq!(
                command[0], "pods",
                "every tour command runs pods: {command:?}"
            );
            let mut args = vec!["--home", home];
            args.extend(command[1..].iter().map(String::as_str));
            let output = sandbox.run_within(&args, LIMIT);
            assert_eq!(
                output.status.code(),
                Some(0),
                "round {round}: `{}`\n{}",
                command.join(" "),
                describe(&output)
            );
        }
    }
    // The home is the one the tour named: both demo trees are in it.
    let pods = std::fs::read_dir(sandbox.root().join("tour-home/pods"))
        .unwrap()
        .count();
    assert_eq!(pods, 4);
}

#[test]
fn the_tour_reader_splits_words_as_a_shell_does() {
    assert_eq!(
        words("pods run -p demo \"look around\"   # a comment").unwrap(),
        ["pods", "run", "-p", "demo", "look around"]
    );
    assert_eq!(words("a 'b c'd \"e\\\"f\"").unwrap(), ["a", "b cd", "e\"f"]);
    assert!(words("pods ls | head").is_err());
    assert!(words("pods run \"open").is_err());
    assert!(words("  # only a comment").unwrap().is_empty());
}
