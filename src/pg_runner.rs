//! A private PostgreSQL cluster run from the PostgreSQL binaries installed on the machine.
//!
//! `seismo serve` without a database URL, and the test-suite when no server is available, use
//! this module instead of an external server.
//!
//! Lifecycle of [`EmbeddedPostgres::start`]:
//!
//! 1. [`find_binaries`] locates the directory holding `initdb` and `pg_ctl` (`PATH` first, then
//!    the newest `/usr/lib/postgresql/<version>/bin`).
//! 2. PostgreSQL refuses to run as root. When the effective uid is 0 every PostgreSQL tool is run
//!    as the `postgres` system user instead, and the data directory is handed over to that user.
//! 3. The data directory is created with mode 0700 (initdb and postgres insist on it). If it has
//!    no `PG_VERSION` yet, `initdb` creates a cluster with trust authentication for `postgres`;
//!    otherwise the existing cluster is reused as is.
//! 4. A server already running from this data directory and answering on the port recorded in
//!    its `postmaster.pid` is used as it is and left running afterwards: another seismo command
//!    (say `seismo serve`) started it and still needs it. A server that is running but does not
//!    answer is stopped, and a stale `postmaster.pid` is removed.
//! 5. A free loopback port is picked and the server is started with `pg_ctl start -w`, listening
//!    on TCP 127.0.0.1 only (no Unix socket, so deep data-directory paths cannot exceed the
//!    socket path limit). If the port was taken in the meantime, another port is tried.
//!    The server log goes to `<data_dir>/postgres.log`.
//! 6. `start` returns once the port accepts TCP connections.
//!
//! [`EmbeddedPostgres::stop`] runs `pg_ctl stop -m fast -w`; if it was not called, dropping the
//! handle does the same synchronously on a best-effort basis.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::{Uid, User};

/// Where distribution packages (Debian/Ubuntu) install one directory per major version.
const VERSIONED_ROOT: &str = "/usr/lib/postgresql";
/// Seconds `pg_ctl -w` may wait for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// How many ports are tried when the chosen one is taken before the server binds it.
const START_ATTEMPTS: usize = 3;
/// How long to wait for the port to accept connections once `pg_ctl` reported success.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many trailing lines of a failing command's output end up in the error.
const TAIL_LINES: usize = 20;
/// File name of the server log, inside the data directory (owned by whoever runs postgres).
const LOG_FILE: &str = "postgres.log";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin: \
         install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql)"
    )]
    BinariesNotFound,
    #[error(
        "running as root, but PostgreSQL refuses to run as root and there is no `postgres` system \
         user to run it as: run seismo as a non-root user (or create a `postgres` system user)"
    )]
    NoPostgresUser,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    System {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    CommandFailed {
        command: String,
        status: String,
        /// The last lines of the command's error output (and of the server log, for `start`).
        stderr: String,
    },
    #[error("PostgreSQL did not accept TCP connections on 127.0.0.1:{port} within {seconds}s")]
    NotReady { port: u16, seconds: u64 },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
    let context = context.into();
    move |source| EmbeddedError::Io { context, source }
}

/// A running private PostgreSQL server; see the module documentation.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    tools: Tools,
    port: u16,
    stopped: bool,
}

impl EmbeddedPostgres {
    /// Finds binaries, runs initdb if `data_dir` has no PG_VERSION, picks a free loopback port,
    /// starts the server with pg_ctl (-w, log to `<data_dir>/postgres.log`), returns when it
    /// accepts connections.
    pub async fn start(data_dir: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        let tools = Tools {
            bin_dir: find_binaries()?,
            run_as: postgres_user_if_root()?,
        };
        let data_dir = prepare_data_dir(data_dir, tools.run_as)?;
        if !data_dir.join("PG_VERSION").exists() {
            tools.initdb(&data_dir).await?;
        }
        if let Some(port) = tools.answering_port(&data_dir).await? {
            tracing::info!(port, data_dir = %data_dir.display(), "embedded PostgreSQL already running: using it");
            // Not ours to stop: whoever started it still needs it.
            return Ok(EmbeddedPostgres {
                data_dir,
                tools,
                port,
                stopped: true,
            });
        }
        tools.recover_previous_run(&data_dir).await?;
        let port = tools.start_server(&data_dir).await?;
        // From here on the handle owns the server: an early return drops it, which stops it.
        let embedded = EmbeddedPostgres {
            data_dir,
            tools,
            port,
            stopped: false,
        };
        wait_for_tcp(port).await?;
        tracing::info!(port, data_dir = %embedded.data_dir.display(), "embedded PostgreSQL started");
        Ok(embedded)
    }

    /// Starts the server again after [`EmbeddedPostgres::stop`], on the same port, so clients
    /// holding its address reconnect (what an outage that ends looks like to them).
    pub async fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.tools.pg_ctl_start(&self.data_dir, self.port).await?;
        self.stopped = false;
        wait_for_tcp(self.port).await
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, database)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `pg_ctl stop -m fast -w`. Idempotent.
    pub async fn stop(&mut self) -> Result<(), EmbeddedError> {
        if self.stopped {
            return Ok(());
        }
        if let Err(err) = self.tools.stop_server(&self.data_dir).await {
            // Someone else may already have stopped it; that is what the caller wanted anyway.
            if self.tools.server_running(&self.data_dir).await? {
                return Err(err);
            }
        }
        self.stopped = true;
        tracing::info!(data_dir = %self.data_dir.display(), "embedded PostgreSQL stopped");
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    /// Best-effort synchronous shutdown, so the server does not outlive its owner.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        match self.tools.stop_blocking(&self.data_dir) {
            Ok(status) if status.success() => {}
            Ok(status) => {
                tracing::warn!(%status, "pg_ctl stop failed while dropping embedded PostgreSQL")
            }
            Err(err) => {
                tracing::warn!(%err, "could not run pg_ctl while dropping embedded PostgreSQL")
            }
        }
    }
}

/// Finds the directory holding initdb and pg_ctl: PATH first, then the highest version under
/// /usr/lib/postgresql/*/bin (compared numerically: 9.6 < 15 < 16).
pub fn find_binaries() -> Result<PathBuf, EmbeddedError> {
    find_on_path()
        .or_else(|| find_versioned(Path::new(VERSIONED_ROOT)))
        .ok_or(EmbeddedError::BinariesNotFound)
}

fn find_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        // A relative entry would make the result depend on the current directory.
        .filter(|dir| dir.is_absolute() && has_binaries(dir))
        .map(|dir| real_bin_dir(&dir))
        .next()
}

/// Installations often symlink `initdb` into a PATH directory while the companion programs
/// (`postgres`, `pg_isready`) stay in the versioned directory; prefer that one when complete.
fn real_bin_dir(dir: &Path) -> PathBuf {
    fs::canonicalize(dir.join("initdb"))
        .ok()
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .filter(|real| has_binaries(real))
        .unwrap_or_else(|| dir.to_path_buf())
}

/// The `bin` directory of the highest `<root>/<version>` holding the binaries.
fn find_versioned(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            has_binaries(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "9.6" -> [9, 6]; comparing the vectors orders versions numerically, not as strings.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn has_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl"))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// `Some((uid, gid))` of the `postgres` user when we are root, since initdb and postgres refuse
/// to run as root; `None` when the tools can run as ourselves.
fn postgres_user_if_root() -> Result<Option<(u32, u32)>, EmbeddedError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")
        .map_err(|source| EmbeddedError::System {
            context: "could not look up the `postgres` system user".into(),
            source,
        })?
        .ok_or(EmbeddedError::NoPostgresUser)?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

/// Creates the data directory (mode 0700, owned by whoever runs postgres) and returns its
/// absolute path; the tools run from `/`, so relative paths would not resolve.
fn prepare_data_dir(data_dir: &Path, run_as: Option<(u32, u32)>) -> Result<PathBuf, EmbeddedError> {
    let shown = data_dir.display();
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Parents get the default mode: the postgres user may need to traverse them.
        fs::create_dir_all(parent)
            .map_err(io_error(format!("could not create {}", parent.display())))?;
    }
    match DirBuilder::new().mode(0o700).create(data_dir) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
            return Err(io_error(format!("could not create data directory {shown}"))(err));
        }
        _ => {}
    }
    let data_dir =
        fs::canonicalize(data_dir).map_err(io_error(format!("could not resolve {shown}")))?;
    if !data_dir.is_dir() {
        let err = io::Error::other("exists but is not a directory");
        return Err(io_error(format!("data directory {}", data_dir.display()))(
            err,
        ));
    }
    // An existing directory may have a wider mode, which initdb and postgres reject.
    fs::set_permissions(&data_dir, Permissions::from_mode(0o700)).map_err(io_error(format!(
        "could not chmod 0700 {}",
        data_dir.display()
    )))?;
    if let Some((uid, gid)) = run_as {
        // std's chown: nix's needs its `fs` feature, which this crate does not enable.
        std::os::unix::fs::chown(&data_dir, Some(uid), Some(gid)).map_err(io_error(format!(
            "could not hand {} over to the postgres user",
            data_dir.display()
        )))?;
    }
    Ok(data_dir)
}

/// Binds port 0 on loopback and releases it, leaving a port the kernel considers free.
fn free_port() -> Result<u16, EmbeddedError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(io_error("could not find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("could not find a free port"))?
        .port();
    Ok(port)
}

async fn wait_for_tcp(port: u16) -> Result<(), EmbeddedError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() >= deadline {
            return Err(EmbeddedError::NotReady {
                port,
                seconds: READY_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The PostgreSQL programs and the identity they run under.
#[derive(Debug)]
struct Tools {
    bin_dir: PathBuf,
    run_as: Option<(u32, u32)>,
}

impl Tools {
    async fn initdb(&self, data_dir: &Path) -> Result<(), EmbeddedError> {
        tracing::info!(data_dir = %data_dir.display(), "initialising embedded PostgreSQL cluster");
        let args: [&OsStr; 8] = [
            "-D".as_ref(),
            data_dir.as_os_str(),
            "-U".as_ref(),
            "postgres".as_ref(),
            "--auth=trust".as_ref(),
            "-E".as_ref(),
            "UTF8".as_ref(),
            "--locale=C".as_ref(),
        ];
        self.run_ok("initdb", &args).await.map(drop)
    }

    /// A server still running from this data directory is stopped (we do not know its port, and
    /// it may run with other settings); a stale `postmaster.pid` is removed because postgres
    /// refuses to start when the PID recorded there was reused by another process.
    async fn recover_previous_run(&self, data_dir: &Path) -> Result<(), EmbeddedError> {
        let pid_file = data_dir.join("postmaster.pid");
        if !pid_file.exists() {
            return Ok(());
        }
        if self.server_running(data_dir).await? {
            tracing::warn!(data_dir = %data_dir.display(), "stopping a PostgreSQL server left over from an earlier run");
            return self.stop_server(data_dir).await;
        }
        tracing::warn!(path = %pid_file.display(), "removing stale postmaster.pid");
        match fs::remove_file(&pid_file) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_error(format!(
                "could not remove stale {}",
                pid_file.display()
            ))(err)),
            _ => Ok(()),
        }
    }

    /// The port of a server running from this data directory, if it accepts connections.
    async fn answering_port(&self, data_dir: &Path) -> Result<Option<u16>, EmbeddedError> {
        // postmaster.pid's fourth line is the port (PostgreSQL's documented layout).
        let Some(port) = fs::read_to_string(data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|pid| {
                pid.lines()
                    .nth(3)
                    .and_then(|p| p.trim().parse::<u16>().ok())
            })
        else {
            return Ok(None);
        };
        if !self.server_running(data_dir).await? {
            return Ok(None);
        }
        let answers = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        Ok(answers.then_some(port))
    }

    /// Starts the server on a fresh port, retrying when another process grabbed the port
    /// between our probe and the server binding it.
    async fn start_server(&self, data_dir: &Path) -> Result<u16, EmbeddedError> {
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            match self.pg_ctl_start(data_dir, port).await {
                Ok(()) => return Ok(port),
                Err(err) if attempt < START_ATTEMPTS && is_port_conflict(&err) => {
                    tracing::warn!(port, "port taken before PostgreSQL could bind it; retrying");
                    attempt += 1;
                }
                Err(err) => {
                    // `pg_ctl -w` gives up after its timeout but leaves a slow server running.
                    if self.server_running(data_dir).await.unwrap_or(false) {
                        let _ = self.stop_server(data_dir).await;
                    }
                    return Err(err);
                }
            }
        }
    }

    async fn pg_ctl_start(&self, data_dir: &Path, port: u16) -> Result<(), EmbeddedError> {
        let log = data_dir.join(LOG_FILE);
        // The log is appended to across runs; only this attempt's part explains its failure.
        let log_offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        // pg_ctl hands `-o` to a shell, which turns `''` into the empty string: no Unix socket.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' \
             -c max_connections=200 -c shared_buffers=128MB"
        );
        let args: [&OsStr; 10] = [
            "-D".as_ref(),
            data_dir.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
            "-w".as_ref(),
            "-t".as_ref(),
            PG_CTL_TIMEOUT_SECS.as_ref(),
            "-o".as_ref(),
            options.as_ref(),
            "start".as_ref(),
        ];
        match self.run_ok("pg_ctl", &args).await {
            Err(EmbeddedError::CommandFailed {
                command,
                status,
                stderr,
            }) => {
                let log_tail = read_tail_from(&log, log_offset);
                Err(EmbeddedError::CommandFailed {
                    command,
                    status,
                    stderr: format!("{stderr}\n--- {} ---\n{log_tail}", log.display()),
                })
            }
            other => other.map(drop),
        }
    }

    async fn stop_server(&self, data_dir: &Path) -> Result<(), EmbeddedError> {
        let args: [&OsStr; 8] = [
            "-D".as_ref(),
            data_dir.as_os_str(),
            "-m".as_ref(),
            "fast".as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            PG_CTL_TIMEOUT_SECS.as_ref(),
            "stop".as_ref(),
        ];
        self.run_ok("pg_ctl", &args).await.map(drop)
    }

    /// `pg_ctl status` exits 0 when a server runs from the data directory, 3 when none does.
    async fn server_running(&self, data_dir: &Path) -> Result<bool, EmbeddedError> {
        let args: [&OsStr; 3] = ["-D".as_ref(), data_dir.as_os_str(), "status".as_ref()];
        let output = self.run("pg_ctl", &args).await?;
        Ok(output.status.success())
    }

    /// The synchronous `pg_ctl stop` used by `Drop`, where no runtime may be available.
    fn stop_blocking(&self, data_dir: &Path) -> io::Result<std::process::ExitStatus> {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(self.bin_dir.join("pg_ctl"));
        cmd.arg("-D")
            .arg(data_dir)
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.status()
    }

    fn command(&self, tool: &str, args: &[&OsStr]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.bin_dir.join(tool));
        cmd.args(args)
            // Messages are matched below and shown to users: keep them in English.
            .env("LC_ALL", "C")
            // The postgres user may not be allowed into our working directory.
            .current_dir("/")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    async fn run(&self, tool: &str, args: &[&OsStr]) -> Result<Output, EmbeddedError> {
        self.command(tool, args)
            .output()
            .await
            .map_err(io_error(format!("could not run {}", describe(tool, args))))
    }

    /// Like [`Tools::run`], but a non-zero exit becomes [`EmbeddedError::CommandFailed`].
    async fn run_ok(&self, tool: &str, args: &[&OsStr]) -> Result<Output, EmbeddedError> {
        let output = self.run(tool, args).await?;
        if output.status.success() {
            return Ok(output);
        }
        let mut stderr = tail(&output.stderr);
        if stderr.is_empty() {
            stderr = tail(&output.stdout);
        }
        if self.run_as.is_some() && stderr.contains("Permission denied") {
            stderr.push_str(
                "\nhint: PostgreSQL runs as the `postgres` user because seismo runs as root; \
                 every parent directory of the data directory must be traversable by that user \
                 (chmod o+x), or run seismo as a non-root user",
            );
        }
        Err(EmbeddedError::CommandFailed {
            command: describe(tool, args),
            status: output.status.to_string(),
            stderr,
        })
    }
}

fn is_port_conflict(err: &EmbeddedError) -> bool {
    matches!(err, EmbeddedError::CommandFailed { stderr, .. } if stderr.contains("Address already in use"))
}

fn describe(tool: &str, args: &[&OsStr]) -> String {
    let mut line = tool.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// The last [`TAIL_LINES`] lines of some command output.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// The tail of what was appended to `path` after `offset`; best effort, for error messages.
fn read_tail_from(path: &Path, offset: u64) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
            tail(&bytes[start..])
        }
        Err(err) => format!("(could not read log: {err})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    /// A temporary directory the postgres user can traverse when we run as root.
    fn traversable_tempdir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).expect("chmod tempdir");
        dir
    }

    /// Starts a cluster, or returns `None` (skipping the test) on machines without PostgreSQL.
    async fn start_or_skip(data_dir: &Path) -> Option<EmbeddedPostgres> {
        match EmbeddedPostgres::start(data_dir).await {
            Ok(pg) => Some(pg),
            Err(EmbeddedError::BinariesNotFound) => {
                eprintln!("skipping: PostgreSQL binaries not installed");
                None
            }
            Err(err) => panic!("embedded PostgreSQL failed to start: {err}"),
        }
    }

    async fn assert_accepts_connections(pg: &EmbeddedPostgres) {
        tokio::net::TcpStream::connect(("127.0.0.1", pg.port()))
            .await
            .expect("TCP connection to embedded PostgreSQL");
        let pg_isready = pg.tools.bin_dir.join("pg_isready");
        if pg_isready.exists() {
            let port = pg.port().to_string();
            let status = tokio::process::Command::new(&pg_isready)
                .args([
                    os("-h"),
                    os("127.0.0.1"),
                    os("-p"),
                    os(&port),
                    os("-U"),
                    os("postgres"),
                ])
                .stdout(Stdio::null())
                .status()
                .await
                .expect("run pg_isready");
            assert!(status.success(), "pg_isready reported {status}");
        }
    }

    fn modified(path: &Path) -> std::time::SystemTime {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .expect("mtime")
    }

    #[tokio::test]
    async fn starts_stops_and_reuses_the_data_dir() {
        let tmp = traversable_tempdir();
        let data_dir = tmp.path().join("pgdata");
        let Some(mut pg) = start_or_skip(&data_dir).await else {
            return;
        };
        assert!(pg
            .url("seismo")
            .starts_with("postgres://postgres@127.0.0.1:"));
        assert!(pg
            .url("seismo")
            .ends_with(&format!(":{}/seismo", pg.port())));
        let mode = fs::metadata(&data_dir)
            .expect("data dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_accepts_connections(&pg).await;
        pg.stop().await.expect("stop");
        pg.stop().await.expect("second stop is a no-op");

        let initialised_at = modified(&data_dir.join("PG_VERSION"));
        let mut again = EmbeddedPostgres::start(&data_dir).await.expect("restart");
        assert_eq!(
            modified(&data_dir.join("PG_VERSION")),
            initialised_at,
            "initdb ran twice"
        );
        assert_accepts_connections(&again).await;
        again.stop().await.expect("stop again");
    }

    #[tokio::test]
    async fn reuses_a_running_server_and_recovers_from_a_stale_pid_file() {
        let tmp = traversable_tempdir();
        let data_dir = tmp.path().join(
            "deeply/nested/path/to/a/data/directory/that/is/longer/than/the/socket/limit/pgdata",
        );
        let Some(crashed) = start_or_skip(&data_dir).await else {
            return;
        };
        // Another seismo (or one that died) left its server running: it is reused, not stopped.
        let old_port = crashed.port();
        std::mem::forget(crashed);

        let mut pg = EmbeddedPostgres::start(&data_dir)
            .await
            .expect("start beside a running server");
        assert_eq!(pg.port(), old_port, "the running server is reused");
        pg.stop()
            .await
            .expect("stop is a no-op for a borrowed server");
        assert_accepts_connections(&pg).await;
        // Stop it for real, as its owner would.
        pg.stopped = false;
        pg.stop().await.expect("stop");

        // A kill -9 leaves postmaster.pid behind with a PID that no longer exists.
        let pid_file = data_dir.join("postmaster.pid");
        fs::write(&pid_file, format!("999999\n{}\n", data_dir.display()))
            .expect("write stale pid file");
        let mut pg = EmbeddedPostgres::start(&data_dir)
            .await
            .expect("start with stale pid file");
        assert_accepts_connections(&pg).await;
        pg.stop().await.expect("stop");
        // Dropping after stop must not try to stop again (and must not hang).
        drop(pg);
    }

    #[tokio::test]
    async fn drop_stops_the_server() {
        let tmp = traversable_tempdir();
        let data_dir = tmp.path().join("pgdata");
        let Some(pg) = start_or_skip(&data_dir).await else {
            return;
        };
        let port = pg.port();
        drop(pg);
        assert!(
            !data_dir.join("postmaster.pid").exists(),
            "server still running after drop"
        );
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err());
    }

    #[test]
    fn find_binaries_returns_a_dir_with_initdb() {
        match find_binaries() {
            Ok(dir) => {
                assert!(
                    is_executable(&dir.join("initdb")),
                    "{} has no initdb",
                    dir.display()
                );
                assert!(
                    is_executable(&dir.join("pg_ctl")),
                    "{} has no pg_ctl",
                    dir.display()
                );
            }
            Err(err) => {
                let message = err.to_string();
                assert!(matches!(err, EmbeddedError::BinariesNotFound));
                assert!(!message.contains('\n') && message.contains("install PostgreSQL"));
            }
        }
    }

    #[test]
    fn picks_the_numerically_highest_version() {
        let root = tempfile::tempdir().expect("tempdir");
        for version in ["9.6", "15", "16", "notaversion"] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).expect("mkdir");
            for tool in ["initdb", "pg_ctl"] {
                fs::write(bin.join(tool), "").expect("write");
                fs::set_permissions(bin.join(tool), Permissions::from_mode(0o755)).expect("chmod");
            }
        }
        // A newer directory without the binaries does not count.
        fs::create_dir_all(root.path().join("17/bin")).expect("mkdir");
        assert_eq!(
            find_versioned(root.path()),
            Some(root.path().join("16/bin"))
        );
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert!(parse_version("9.6") < parse_version("15"));
        assert_eq!(parse_version("main"), None);
    }

    #[test]
    fn error_messages() {
        let message = EmbeddedError::BinariesNotFound.to_string();
        assert!(!message.contains('\n'));
        assert!(message.contains("apt-get install postgresql"));
        let failed = EmbeddedError::CommandFailed {
            command: "pg_ctl start".into(),
            status: "exit status: 1".into(),
            stderr: "could not bind IPv4 address \"127.0.0.1\": Address already in use".into(),
        };
        assert!(is_port_conflict(&failed));
        assert_eq!(tail(b"a\nb\n"), "a\nb");
    }
}
