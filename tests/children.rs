//! Whole-system tests: children.

mod support;
