//! Whole-system tests: export.

mod support;
