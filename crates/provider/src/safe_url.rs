//! URLs that can be shown: redaction is a property of the type, not a call to remember.

use std::fmt;

/// A URL whose `Display` and `Debug` never show the parts that can carry a credential: userinfo
/// (`user:password@`), the query string (`?key=…`) and the fragment. Scheme, host, port and path
/// are shown as written. Text that does not parse as a URL is treated the same way.
///
/// The whole URL is only reachable through [`DisplaySafeUrl::expose`], for sending the request.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DisplaySafeUrl(String);

impl DisplaySafeUrl {
    pub fn new(url: impl Into<String>) -> DisplaySafeUrl {
        DisplaySafeUrl(url.into())
    }

    /// The whole URL, credentials included: for the HTTP client, never for people.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The parts that may be shown, in order: scheme with `://`, host (with port), path.
    fn shown_parts(&self) -> [&str; 3] {
        let url = &self.0;
        let url = &url[..url.find(['?', '#']).unwrap_or(url.len())];
        let (scheme, rest) = match url.find("://") {
            Some(i) => url.split_at(i + 3),
            None => ("", url),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = match authority.rfind('@') {
            Some(i) => &authority[i + 1..],
            None => authority,
        };
        [scheme, host, path]
    }
}

impl From<String> for DisplaySafeUrl {
    fn from(url: String) -> DisplaySafeUrl {
        DisplaySafeUrl(url)
    }
}

impl From<&str> for DisplaySafeUrl {
    fn from(url: &str) -> DisplaySafeUrl {
        DisplaySafeUrl(url.to_owned())
    }
}

impl fmt::Display for DisplaySafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shown_parts()
            .into_iter()
            .try_for_each(|part| f.write_str(part))
    }
}

/// Shown as a quoted string, like the `String` it stands for, but redacted.
impl fmt::Debug for DisplaySafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shown_parts().concat(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug_drop_userinfo_query_and_fragment() {
        let cases = [
            (
                "https://user:pa55@proxy.example:8443/v1?key=SECRET#frag",
                "https://proxy.example:8443/v1",
            ),
            (
                "http://127.0.0.1:9/v1/responses",
                "http://127.0.0.1:9/v1/responses",
            ),
            ("https://tok@host", "https://host"),
            ("https://host/a@b/c?x=1", "https://host/a@b/c"),
            ("not a url?token=SECRET", "not a url"),
            ("user:pw@host/v1", "host/v1"),
            ("", ""),
        ];
        for (input, shown) in cases {
            let url = DisplaySafeUrl::new(input);
            assert_eq!(url.to_string(), shown, "{input}");
            assert_eq!(format!("{url:?}"), format!("{shown:?}"), "{input}");
            assert_eq!(url.expose(), input);
        }
    }
}
