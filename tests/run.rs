//! Whole-system tests: run.

mod support;
