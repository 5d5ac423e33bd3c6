//! The provider wire schemes: the names manifests, traces and cassettes use for them.

use serde::{Deserialize, Serialize};

/// A provider wire protocol. One adapter module per scheme.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum WireScheme {
    /// OpenAI Responses API: `POST {base}/responses`.
    OpenaiResponses,
    /// OpenAI Chat Completions: `POST {base}/chat/completions` (also Ollama, vLLM, llama.cpp
    /// server, OpenRouter, Groq, DeepSeek, Azure).
    OpenaiChat,
    /// Anthropic Messages: `POST {base}/v1/messages`.
    AnthropicMessages,
    /// Google Gemini: `POST {base}/models/{model}:streamGenerateContent?alt=sse`.
    Gemini,
}

impl WireScheme {
    /// Every scheme, in declaration order.
    pub const ALL: &'static [WireScheme] = <WireScheme as strum::VariantArray>::VARIANTS;

    /// The kebab-case name used in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parse a kebab-case name; `None` for anything else.
    pub fn parse(name: &str) -> Option<WireScheme> {
        WireScheme::ALL.iter().copied().find(|s| s.as_str() == name)
    }

    /// The provider's public endpoint root.
    pub fn default_base_url(self) -> &'static str {
        match self {
            WireScheme::OpenaiResponses | WireScheme::OpenaiChat => "https://api.openai.com/v1",
            WireScheme::AnthropicMessages => "https://api.anthropic.com",
            WireScheme::Gemini => "https://generativelanguage.googleapis.com/v1beta",
        }
    }

    /// The environment variable that conventionally holds the API key.
    pub fn default_api_key_env(self) -> &'static str {
        self.api_key_envs()[0]
    }

    /// Every variable that conventionally holds the API key, in the order they are tried
    /// (Gemini: `GEMINI_API_KEY`, then `GOOGLE_API_KEY`).
    pub fn api_key_envs(self) -> &'static [&'static str] {
        match self {
            WireScheme::OpenaiResponses | WireScheme::OpenaiChat => &["OPENAI_API_KEY"],
            WireScheme::AnthropicMessages => &["ANTHROPIC_API_KEY"],
            WireScheme::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        }
    }
}

impl std::fmt::Display for WireScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
