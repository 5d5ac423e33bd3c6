//! Finding profiles and config files: builtins, the user dir, the project dir and
//! `--profile-dir`s, with the precedence between them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ProfileError;
use crate::manifest::SourceKind;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_profiles.rs"));
}

/// Where to look for profiles and config files.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The working directory; the project dir is the nearest `.pods` found walking up from it.
    pub cwd: PathBuf,
    /// The user config dir (`$XDG_CONFIG_HOME/pods`, else `~/.config/pods`); `None` skips it.
    pub user_config_dir: Option<PathBuf>,
    /// `--profile-dir` values in command-line order (a later one wins over an earlier one).
    pub profile_dirs: Vec<PathBuf>,
}

impl Discovery {
    /// The user config dir from the process environment: `$XDG_CONFIG_HOME/pods`, else
    /// `$HOME/.config/pods`.
    pub fn user_config_dir_from_env() -> Option<PathBuf> {
        if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(xdg).join("pods"));
        }
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".config").join("pods"))
    }
}

/// Which kind of place a profile was found in, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Shipped with pods (embedded from the repository's `profiles/`).
    Builtin,
    /// `$XDG_CONFIG_HOME/pods/profiles`.
    User,
    /// `.pods/profiles` of the project.
    Project,
    /// A `--profile-dir`.
    ProfileDir,
}

/// One profile file.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileSource {
    pub origin: Origin,
    /// The file; for builtins, `profiles/NAME.toml`.
    pub path: PathBuf,
    /// The file's text, or why it could not be read: one unreadable file fails only the
    /// commands that use that profile, never discovery as a whole.
    #[serde(skip)]
    pub(crate) text: Result<String, Unreadable>,
}

/// Why a profile file could not be read (kept so it can be reported when the profile is used).
#[derive(Debug, Clone)]
pub(crate) struct Unreadable {
    kind: std::io::ErrorKind,
    message: String,
}

impl ProfileSource {
    /// The directory relative paths in this file resolve against.
    pub(crate) fn base_dir(&self) -> PathBuf {
        match self.origin {
            Origin::Builtin => PathBuf::from(builtin::BUILTIN_DIR),
            _ => self
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        }
    }

    /// A profile read from `path` (for `pods profile validate PATH`).
    pub fn from_file(path: &Path) -> Result<ProfileSource, ProfileError> {
        let source = ProfileSource::read(Origin::ProfileDir, path);
        source.text()?;
        Ok(source)
    }

    /// A profile file found in a directory; a read failure is kept, not raised.
    fn read(origin: Origin, path: &Path) -> ProfileSource {
        let text = std::fs::read_to_string(path).map_err(|error| Unreadable {
            kind: error.kind(),
            message: error.to_string(),
        });
        ProfileSource {
            origin,
            path: path.to_path_buf(),
            text,
        }
    }

    /// The file's text, or the error that reading it gave.
    pub(crate) fn text(&self) -> Result<&str, ProfileError> {
        self.text
            .as_deref()
            .map_err(|unreadable| ProfileError::Read {
                path: self.path.clone(),
                source: std::io::Error::new(unreadable.kind, unreadable.message.clone()),
            })
    }
}

/// A name with the file that won and the files it shadows (highest precedence first).
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    pub name: String,
    pub source: ProfileSource,
    pub shadows: Vec<ProfileSource>,
}

impl CatalogEntry {
    /// The profile's `description`, if it has a readable one.
    pub fn description(&self) -> Option<String> {
        let table: toml::Table = toml::from_str(self.source.text().ok()?).ok()?;
        table.get("description")?.as_str().map(str::to_owned)
    }
}

/// A manifest-shaped config file (user or project).
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    /// `User` or `Project`.
    pub(crate) kind: SourceKind,
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// Every profile found, by name, and the config files that apply.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: BTreeMap<String, CatalogEntry>,
    pub(crate) configs: Vec<ConfigFile>,
}

impl Catalog {
    /// Find every profile and config file. Precedence for a name found in several places,
    /// highest first: later `--profile-dir` > earlier `--profile-dir` > project > user > builtin.
    pub fn discover(discovery: &Discovery) -> Result<Catalog, ProfileError> {
        let mut catalog = Catalog {
            entries: BTreeMap::new(),
            configs: Vec::new(),
        };
        for (name, text) in builtin::BUILTINS {
            catalog.add(
                name,
                ProfileSource {
                    origin: Origin::Builtin,
                    path: PathBuf::from(format!("profiles/{name}.toml")),
                    text: Ok((*text).to_owned()),
                },
            );
        }
        if let Some(user) = &discovery.user_config_dir {
            catalog.add_config(SourceKind::User, &user.join("config.toml"))?;
            catalog.add_dir(Origin::User, &user.join("profiles"), false)?;
        }
        if let Some(project) = find_project_dir(&discovery.cwd) {
            catalog.add_config(SourceKind::Project, &project.join("config.toml"))?;
            catalog.add_dir(Origin::Project, &project.join("profiles"), false)?;
        }
        for dir in &discovery.profile_dirs {
            catalog.add_dir(Origin::ProfileDir, dir, true)?;
        }
        Ok(catalog)
    }

    /// Every profile name with its winning file and what it shadows, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }

    /// The winning entry for `name`.
    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.get(name)
    }

    /// The entry for `name`, or an error with a suggestion and the available names.
    pub fn require(&self, name: &str) -> Result<&CatalogEntry, ProfileError> {
        self.entries.get(name).ok_or_else(|| {
            let available: Vec<String> = self.entries.keys().cloned().collect();
            ProfileError::ProfileNotFound {
                name: name.to_owned(),
                suggestion: crate::schema::suggest(name, &available),
                available,
            }
        })
    }

    fn add(&mut self, name: &str, source: ProfileSource) {
        match self.entries.get_mut(name) {
            Some(entry) => {
                let previous = std::mem::replace(&mut entry.source, source);
                entry.shadows.insert(0, previous);
            }
            None => {
                self.entries.insert(
                    name.to_owned(),
                    CatalogEntry {
                        name: name.to_owned(),
                        source,
                        shadows: Vec::new(),
                    },
                );
            }
        }
    }

    fn add_config(&mut self, kind: SourceKind, path: &Path) -> Result<(), ProfileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.configs.push(ConfigFile {
                    kind,
                    path: path.to_path_buf(),
                    text,
                });
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ProfileError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn add_dir(&mut self, origin: Origin, dir: &Path, required: bool) -> Result<(), ProfileError> {
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return if required {
                    Err(ProfileError::MissingDir {
                        path: dir.to_path_buf(),
                    })
                } else {
                    Ok(())
                };
            }
            Err(source) => {
                return Err(ProfileError::Read {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut files = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|source| ProfileError::Read {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            self.add(&name, ProfileSource::read(origin, &path));
        }
        Ok(())
    }
}

/// The nearest `.pods` directory at or above `cwd`.
fn find_project_dir(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors()
        .map(|dir| dir.join(".pods"))
        .find(|candidate| candidate.is_dir())
}
