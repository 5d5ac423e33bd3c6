//! Whole-system tests: provider.

mod support;
