//! The `seismo` binary as a child process: started with a clean environment, its DSN read
//! from what it prints, stopped with SIGTERM or killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary with a clean environment: no database URL, settings or OpenTelemetry export
/// from the caller.
pub fn seismo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seismo"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SEISMO_") || name.starts_with("OTEL_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
        .env("SEISMO_OTLP_HTTP_LISTEN", "off")
        .env("SEISMO_OTLP_GRPC_LISTEN", "off");
    command
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Reads the server's stdout until it prints the DSN.
pub fn wait_for_dsn(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (found, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(dsn) = line.trim().strip_prefix("DSN:") {
                let _ = found.send(dsn.trim().to_owned());
            }
        }
    });
    receive
        .recv_timeout(Duration::from_secs(120))
        .expect("serve printed a DSN")
}

pub fn terminate(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
}

pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("seismo did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `seismo serve` on a database of the caller's, killed when dropped.
pub struct Served {
    pub child: Child,
    pub dsn: String,
    /// Where its log goes (next to the spool folder).
    pub log: std::path::PathBuf,
}

impl Served {
    /// Starts `seismo serve` on `database_url` with the spool in `spool_dir`, listening on
    /// `port`, and waits for its DSN. `extra` sets more variables.
    pub fn start(
        database_url: &str,
        spool_dir: &std::path::Path,
        port: u16,
        extra: &[(&str, &str)],
    ) -> Served {
        let log = spool_dir.with_extension(format!("{port}.log"));
        let mut command = seismo();
        command
            .arg("serve")
            .env("SEISMO_DATABASE_URL", database_url)
            .env("SEISMO_LISTEN", format!("127.0.0.1:{port}"))
            .env("SEISMO_SPOOL_DIR", spool_dir)
            .env("SEISMO_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file(&log)));
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start seismo serve");
        let dsn = wait_for_dsn(&mut child);
        Served { child, dsn, log }
    }

    /// The last lines of its log, for a failing assertion to show.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `kill -9`: no flush, no goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("a log file")
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
