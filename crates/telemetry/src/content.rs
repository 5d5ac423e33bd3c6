//! Whether spans carry content (prompts, outputs, tool arguments and results), and how: never
//! by default; with capture on, as bounded previews with the known keys and `Bearer` tokens
//! stripped by the same rules every record follows (`pod_protocol::text::scrub`).

use std::fmt;

use pod_protocol::text::{scrub, truncate_marked};

/// The largest content preview a span attribute holds, in bytes, unless set otherwise.
pub const DEFAULT_PREVIEW_BYTES: usize = 4096;

/// The content policy of a span builder.
#[derive(Clone, Default)]
pub enum Content {
    /// No content at all: names, ids, classes, counts and times only.
    #[default]
    Off,
    /// Previews of at most `max_bytes`, each secret value in `secrets` (and any `Bearer` token)
    /// replaced by `[redacted]` before it is cut.
    Capture {
        max_bytes: usize,
        secrets: Vec<String>,
    },
}

impl Content {
    /// Capture with the default bound, stripping `secrets`.
    pub fn capture(secrets: Vec<String>) -> Content {
        Content::Capture {
            max_bytes: DEFAULT_PREVIEW_BYTES,
            secrets,
        }
    }

    pub fn captures(&self) -> bool {
        matches!(self, Content::Capture { .. })
    }

    /// The preview of `text` a span may hold, or `None` when content is off.
    pub fn preview(&self, text: &str) -> Option<String> {
        let Content::Capture { max_bytes, secrets } = self else {
            return None;
        };
        let mut out = scrub(text, None).into_owned();
        for secret in secrets {
            out = scrub(&out, Some(secret)).into_owned();
        }
        truncate_marked(&mut out, *max_bytes);
        Some(out)
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Off => f.write_str("Off"),
            Content::Capture { max_bytes, secrets } => f
                .debug_struct("Capture")
                .field("max_bytes", max_bytes)
                .field("secrets", &format_args!("[{} redacted]", secrets.len()))
                .finish(),
        }
    }
}
