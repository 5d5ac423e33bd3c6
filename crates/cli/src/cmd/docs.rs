//! `pods completions` and `pods man`: generated from the same clap definitions that parse the
//! command line, so they cannot drift from it.

use std::io::Write;

use clap::Args;

use crate::failure::{CmdResult, Exit, Failure};

/// Print a shell completion script for `pods` on stdout.
///
/// For example `pods completions bash > ~/.local/share/bash-completion/completions/pods`, or
/// `pods completions zsh > "${fpath[1]}/_pods"`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the `pods(1)` man page (roff) on stdout, every subcommand included, e.g.
/// `pods man > pods.1 && man ./pods.1`.
#[derive(Debug, Args)]
pub struct ManArgs {}

pub fn completions(mut command: clap::Command, args: CompletionsArgs) -> CmdResult {
    let name = command.get_name().to_owned();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, name, &mut out);
    out.flush().map_err(Failure::run_failed)?;
    Ok(Exit::Success)
}

pub fn man(command: clap::Command) -> CmdResult {
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    let mut sections = || -> std::io::Result<()> {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        // Every visible subcommand (and theirs), in full, in one page.
        writeln!(page, ".SH COMMANDS")?;
        for sub in visible(&command) {
            render_subcommand(&mut page, command.get_name(), sub)?;
        }
        man.render_version_section(&mut page)
    };
    sections().map_err(Failure::run_failed)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page).map_err(Failure::run_failed)?;
    out.flush().map_err(Failure::run_failed)?;
    Ok(Exit::Success)
}

fn visible(command: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    command.get_subcommands().filter(|s| !s.is_hide_set())
}

/// A `SUBCOMMANDS` section entry: `pods run` with its usage, description and options.
fn render_subcommand(page: &mut Vec<u8>, parent: &str, sub: &clap::Command) -> std::io::Result<()> {
    let name = format!("{parent} {}", sub.get_name());
    writeln!(page, ".SS \"{}\"", roff(&name))?;
    let mut usage_of = sub.clone().bin_name(name.clone());
    let usage = usage_of.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ");
    writeln!(page, ".B {}", roff(usage))?;
    writeln!(page, ".br")?;
    if let Some(about) = sub.get_long_about().or(sub.get_about()) {
        paragraphs(page, &about.to_string())?;
    }
    for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("-{short}"));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("--{long}"));
        }
        let value = arg
            .get_value_names()
            .map(|v| {
                v.iter()
                    .map(|n| format!("<{n}>"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let label = match (names.is_empty(), arg.get_action().takes_values()) {
            (true, _) => value,
            (false, true) => format!("{} {value}", names.join(", ")),
            (false, false) => names.join(", "),
        };
        writeln!(page, ".TP\n\\fB{}\\fR", roff(&label))?;
        if let Some(help) = arg.get_long_help().or(arg.get_help()) {
            paragraphs(page, &help.to_string())?;
        }
    }
    for nested in visible(sub) {
        render_subcommand(page, &name, nested)?;
    }
    Ok(())
}

/// Text as roff paragraphs, one per blank-line-separated block.
fn paragraphs(page: &mut Vec<u8>, text: &str) -> std::io::Result<()> {
    for (i, block) in text.split("\n\n").enumerate() {
        if i > 0 {
            writeln!(page, ".PP")?;
        }
        for line in block.lines() {
            writeln!(page, "{}", roff(line))?;
        }
    }
    Ok(())
}

/// Escape text for roff: backslashes, and a leading `.` or `'` that would read as a request.
fn roff(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\e")
        .replace('"', "\\(dq")
        .replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}
