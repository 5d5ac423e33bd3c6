//! How a foreground run is shown: text for people, or JSON Lines events for programs.

use std::sync::Arc;

use pod_core::RunObserver;
use pod_core::run_events::RunEvent;

use super::json::JsonLines;
use super::outcome::RunEnd;
use super::terminal::Terminal;
use crate::failure::CmdResult;

pub(super) enum Presenter {
    Terminal(Arc<Terminal>),
    Json(Arc<JsonLines>),
}

impl Presenter {
    pub(super) fn new(json: bool) -> Presenter {
        if json {
            Presenter::Json(Arc::new(JsonLines::default()))
        } else {
            Presenter::Terminal(Arc::new(Terminal::new()))
        }
    }

    pub(super) fn observer(&self) -> Arc<dyn RunObserver> {
        match self {
            Presenter::Terminal(terminal) => terminal.clone(),
            Presenter::Json(json) => json.clone(),
        }
    }

    /// The pod is hosted and its run about to start.
    pub(super) fn pod_started(&self, event: RunEvent) {
        match self {
            Presenter::Terminal(terminal) => terminal.start_spinner(),
            Presenter::Json(json) => json.emit(event),
        }
    }

    pub(super) fn finish(&self) {
        match self {
            Presenter::Terminal(terminal) => terminal.finish(),
            Presenter::Json(json) => json.flush(),
        }
    }

    pub(super) fn abandon(&self) {
        match self {
            Presenter::Terminal(terminal) => terminal.abandon(),
            Presenter::Json(json) => json.flush(),
        }
    }

    pub(super) fn saw_reasoning(&self) -> bool {
        match self {
            Presenter::Terminal(terminal) => terminal.saw_reasoning(),
            Presenter::Json(json) => json.lock().saw_reasoning,
        }
    }

    /// The command is done with `result`: `run_ended`, the stream's last line.
    pub(super) fn ended(&self, end: RunEnd, result: &CmdResult) {
        let Presenter::Json(json) = self else {
            return;
        };
        let exit = match result {
            Ok(exit) => *exit,
            Err(failure) => failure.exit,
        };
        json.emit(end.into_event(exit as i32));
        json.lock().ended = true;
    }
}
