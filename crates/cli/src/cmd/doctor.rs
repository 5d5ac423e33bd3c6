//! `pods doctor`: check the environment.

use std::io::Write;

use clap::Args;

use pod_core::PodHome;
use pod_profile::{Catalog, Discovery, Overrides, Scheme};

use crate::failure::{CmdResult, Exit, Failure};
use crate::global::GlobalArgs;

/// Check that pods can work here: the home directory is writable, control sockets can be bound
/// (their directory is private to you and a socket path fits the system's limit), every profile
/// resolves, and the API key variables the profiles need are set (names only; values are never
/// shown). An unset key variable is a failure: the profiles that use it cannot run. Each MCP
/// server the profiles declare is checked for its command (found on `PATH`, or its path
/// executable); a missing one is a failure too: its tools would be missing. It also says how far
/// this kernel can confine `shell` commands (Landlock: writes, network, signals); a kernel
/// without Landlock is reported but is no failure: its commands run unconfined.
///
/// A profile that exports telemetry live (`[telemetry] otlp_endpoint`, or the `OTEL_EXPORTER_OTLP_*`
/// variables) has its collector checked: its header variables set, and something listening.
///
/// Exits 0 when everything is fine, 2 when something needs fixing (a profile that does not
/// resolve or cannot run). `--profile` limits the profile checks to the profiles named.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check only this profile (repeatable) [default: every profile found].
    #[arg(short = 'p', long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Print the findings as one JSON document (`ok`, `checks`, and `shell_confinement`:
    /// `landlock_abi`, `landlock_disabled`, and whether `writes`, `network` and `signals` are
    /// confined).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
}

pub fn run(global: &GlobalArgs, args: DoctorArgs) -> CmdResult {
    let mut checks = Vec::new();
    checks.push(check_home(global));
    checks.push(check_control_sockets(global));
    let confinement = pod_core::tools::shell::sandbox::Support::probe();
    checks.push(Check {
        check: "shell confinement".into(),
        ok: true,
        detail: confinement.describe(),
    });
    let cwd = std::env::current_dir().unwrap_or_default();
    match Catalog::discover(&Discovery {
        cwd,
        user_config_dir: Discovery::user_config_dir_from_env(),
        profile_dirs: global.profile_dirs.clone(),
    }) {
        Err(error) => checks.push(Check {
            check: "profiles".into(),
            ok: false,
            detail: error.to_string(),
        }),
        Ok(catalog) => {
            let overrides = Overrides {
                sets: Vec::new(),
                env: std::env::vars()
                    .filter(|(k, _)| k.starts_with("PODS_"))
                    .collect(),
                model: None,
            };
            let mut key_vars: Vec<(String, Vec<String>)> = Vec::new();
            let mut mcp_servers = McpUsers::new();
            let mut collectors = CollectorUsers::new();
            for name in &args.profiles {
                if catalog.get(name).is_none() {
                    checks.push(Check {
                        check: format!("profile {name}"),
                        ok: false,
                        detail: "no such profile (see `pods profile list`)".into(),
                    });
                }
            }
            let wanted =
                |name: &str| args.profiles.is_empty() || args.profiles.iter().any(|p| p == name);
            for entry in catalog.entries().filter(|e| wanted(&e.name)) {
                match catalog.resolve(&entry.name, &overrides) {
                    Ok(resolved) => {
                        checks.push(Check {
                            check: format!("profile {}", entry.name),
                            ok: true,
                            detail: format!(
                                "{} ({})",
                                resolved.manifest.model.scheme.as_str(),
                                entry.source.path.display()
                            ),
                        });
                        if let Some(target) =
                            pod_core::telemetry::live_target(&resolved.manifest, |name| {
                                std::env::var(name).ok()
                            })
                        {
                            collectors
                                .entry((target.endpoint, target.headers_env))
                                .or_default()
                                .push(entry.name.clone());
                        }
                        for (server, config) in &resolved.manifest.mcp.servers {
                            let users = mcp_servers
                                .entry((server.clone(), config.command.clone(), config.cwd.clone()))
                                .or_default();
                            users.push(entry.name.clone());
                        }
                        let needs_key = resolved.manifest.model.scheme != Scheme::Replay
                            || resolved.manifest.model.api_key_env.is_some();
                        if let (true, Some(var)) =
                            (needs_key, pod_core::api_key_var(&resolved.manifest))
                        {
                            match key_vars.iter_mut().find(|(v, _)| *v == var) {
                                Some((_, users)) => users.push(entry.name.clone()),
                                None => key_vars.push((var, vec![entry.name.clone()])),
                            }
                        }
                    }
                    Err(error) => checks.push(Check {
                        check: format!("profile {}", entry.name),
                        ok: false,
                        detail: error.to_string(),
                    }),
                }
            }
            for (var, users) in key_vars {
                let set = std::env::var_os(&var).is_some_and(|v| !v.is_empty());
                checks.push(Check {
                    check: format!("api key {var}"),
                    // `pods run` refuses these profiles without it.
                    ok: set,
                    detail: if set {
                        format!("set (used by {})", users.join(", "))
                    } else {
                        format!(
                            "not set: profile(s) {} cannot run; export {var}=… (or `pods doctor -p PROFILE` to check only the profiles you use)",
                            users.join(", ")
                        )
                    },
                });
            }
            checks.extend(mcp_servers.into_iter().map(check_mcp_server));
            checks.extend(collectors.into_iter().map(check_collector));
        }
    }
    let healthy = checks.iter().all(|c| c.ok);
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "ok": healthy,
            "checks": checks,
            "shell_confinement": {
                "landlock_abi": confinement.abi,
                "landlock_disabled": confinement.disabled,
                "writes": confinement.confines_writes(),
                "network": confinement.confines_network(),
                "signals": confinement.confines_signals(),
            },
        });
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        for check in &checks {
            let mark = if check.ok { "ok " } else { "BAD" };
            let _ = writeln!(out, "[{mark}] {}: {}", check.check, check.detail);
        }
    }
    if healthy {
        Ok(Exit::Success)
    } else {
        Err(Failure::usage("some checks failed (marked BAD above)"))
    }
}

/// The profiles exporting telemetry live, by endpoint and header variables.
type CollectorUsers = std::collections::BTreeMap<(String, Vec<String>), Vec<String>>;

/// Whether live telemetry to `endpoint` can work from here: its header variables are set and
/// well formed, and something accepts connections at its address. A collector that is down
/// never fails a run, but its spans only reach it later, through `pods telemetry push`.
fn check_collector(
    ((endpoint, headers_env), users): ((String, Vec<String>), Vec<String>),
) -> Check {
    let used_by = format!("used by {}", users.join(", "));
    let problem = pod_telemetry::headers_from_env(&headers_env, |name| std::env::var(name).ok())
        .err()
        .map(|error| error.to_string())
        .or_else(|| reachable(&endpoint).err());
    Check {
        check: format!("telemetry {endpoint}"),
        ok: problem.is_none(),
        detail: match problem {
            None => format!("accepts connections ({used_by})"),
            Some(problem) => format!(
                "{problem} ({used_by}); runs go on without live telemetry, and \
                 `pods telemetry push POD --tree` sends their spans later"
            ),
        },
    }
}

/// Whether something accepts a TCP connection at the host and port of the http(s) `url`.
fn reachable(url: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let (rest, default_port) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, 443)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (rest, 80)
    } else {
        return Err("is not an http(s) URL".to_owned());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    let addresses = with_port
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {authority}: {error}"))?;
    let mut last = format!("{authority} has no address");
    for address in addresses {
        match std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(error) => last = format!("nothing answers at {address}: {error}"),
        }
    }
    Err(last)
}

/// The profiles using each MCP server, by server name, command and working directory.
type McpUsers = std::collections::BTreeMap<(String, String, Option<String>), Vec<String>>;

/// Whether the command of MCP server `name` can be started from here.
fn check_mcp_server(
    ((name, command, cwd), users): ((String, String, Option<String>), Vec<String>),
) -> Check {
    let config = pod_profile::McpServer {
        command,
        cwd,
        ..Default::default()
    };
    let dir =
        pod_core::tools::mcp::server_dir(&config, &std::env::current_dir().unwrap_or_default());
    let users = users.join(", ");
    let found = pod_core::tools::mcp::find_command(&config.command, &dir);
    Check {
        check: format!("mcp server {name}"),
        ok: found.is_ok(),
        detail: match found {
            Ok(program) => format!("{} (used by {users})", program.display()),
            Err(problem) => format!(
                "{problem} (`mcp.servers.{name}.command`): profile(s) {users} would run without its tools; install it or give its path"
            ),
        },
    }
}

fn check_home(global: &GlobalArgs) -> Check {
    let home = match PodHome::resolve(global.home.as_deref()) {
        Ok(home) => home,
        Err(error) => {
            return Check {
                check: "home".into(),
                ok: false,
                detail: error.to_string(),
            };
        }
    };
    let root = home.root();
    let probe = root.join(format!(".doctor-{}", std::process::id()));
    let result = std::fs::create_dir_all(root)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    Check {
        check: "home".into(),
        ok: result.is_ok(),
        detail: match result {
            Ok(()) => format!("{} is writable", root.display()),
            Err(error) => format!("{} is not writable: {error}", root.display()),
        },
    }
}

fn check_control_sockets(global: &GlobalArgs) -> Check {
    let result = PodHome::resolve(global.home.as_deref())
        .map_err(|error| error.to_string())
        .and_then(|home| {
            pod_core::control::check_socket_dir(home.root())
                .map_err(|error| pod_core::error_chain(&error))
        });
    Check {
        check: "control sockets".into(),
        ok: result.is_ok(),
        detail: result.unwrap_or_else(|error| error),
    }
}
