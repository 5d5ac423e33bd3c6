//! A pseudo-terminal for `pods` processes that ask the user something: the process gets the
//! terminal as stdin and stderr, and the test reads what it shows and types answers.

use std::fs::File;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::process::{Background, wait_until};

/// The test's end of a pseudo-terminal, with everything the process wrote to it so far.
pub struct Terminal {
    master: File,
    slave_path: std::path::PathBuf,
    shown: Arc<Mutex<String>>,
}

impl Terminal {
    pub fn open() -> Terminal {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave_path = std::path::PathBuf::from(name.to_string_lossy().into_owned());
        let master = File::from(master);
        let shown = Arc::new(Mutex::new(String::new()));
        let mut reader = master.try_clone().expect("clone the terminal");
        let sink = shown.clone();
        // Read all along, so the process never blocks on a full terminal; ends with the
        // process (EIO once no one has the terminal open).
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut shown) = sink.lock() {
                    shown.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Terminal {
            master,
            slave_path,
            shown,
        }
    }

    /// Start `cmd` with this terminal as its stdin and stderr (stdout captured).
    pub fn spawn(&self, mut cmd: Command) -> Background {
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.slave_path)
                .expect("open the terminal")
        };
        cmd.stdin(Stdio::from(open()))
            .stderr(Stdio::from(open()))
            .stdout(Stdio::piped());
        Background::adopt(cmd.spawn().expect("spawn pods on the terminal"))
    }

    /// Everything shown on the terminal so far.
    pub fn shown(&self) -> String {
        self.shown.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Wait until the terminal shows `text`; panics with what it shows after `limit`.
    pub fn wait_for(&self, text: &str, limit: Duration) {
        wait_until(&format!("the terminal to show {text:?}"), limit, || {
            self.shown().contains(text).then_some(())
        });
    }

    /// Type `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.master
            .write_all(format!("{line}\n").as_bytes())
            .expect("type on the terminal");
    }
}
