//! Whole-system tests: profile.

mod support;
