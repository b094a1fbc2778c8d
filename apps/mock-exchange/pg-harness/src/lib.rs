//! A private PostgreSQL server for mock-exchange's integration tests and benchmark.
//!
//! Owns: starting Debian's PostgreSQL binaries (`/usr/lib/postgresql/<ver>/bin`) on a free
//! loopback port with its data in a temporary directory, stopping and restarting it, and
//! removing everything on drop (even when a test panics). As root, the server runs as the
//! `postgres` system user, because PostgreSQL refuses to run as root.
//! Never touches a server or cluster it did not create.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Errors of the harness, with what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (or $PG_BIN_DIR); \
         install them with: apt-get install -y postgresql"
    )]
    NoBinaries,
    /// A file-system or process-spawning step failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A PostgreSQL program exited non-zero.
    #[error("`{cmd}` failed ({status}):\n{output}")]
    Command {
        /// The command line.
        cmd: String,
        /// How it ended.
        status: String,
        /// Its stdout, stderr and the tail of the server log.
        output: String,
    },
}

/// How to set up the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep `fsync` on (benchmarks want real durability costs; tests want speed).
    pub fsync: bool,
    /// `max_connections` of the server.
    pub max_connections: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            fsync: false,
            max_connections: 100,
        }
    }
}

/// The superuser the harness creates (password authentication over TCP).
pub const SUPERUSER: &str = "stackpilot";

/// A running private PostgreSQL server; stopped and deleted on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: String,
    run_as_postgres: bool,
}

impl PgServer {
    /// Creates a cluster in a fresh temporary directory and starts it on a free port.
    pub fn start(opts: &Options) -> Result<Self, Error> {
        let bin = bin_dir()?;
        // Postgres refuses to run as root: as root, the cluster runs as the postgres user.
        let run_as_postgres = nix::unistd::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("pg-harness-")
            .tempdir()
            .map_err(|e| io("create a temporary directory", e))?;
        let password = unique_token();
        let server = Self {
            dir,
            bin,
            port: 0,
            password,
            run_as_postgres,
        };
        server.init(opts)?;
        server.start_on_free_port()
    }

    fn init(&self, opts: &Options) -> Result<(), Error> {
        let pwfile = self.dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password))
            .map_err(|e| io("write the password file", e))?;
        if self.run_as_postgres {
            chown_to_postgres(self.dir.path())?;
            chown_to_postgres(&pwfile)?;
        }
        let mut cmd = self.pg_command("initdb");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                SUPERUSER,
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
            ])
            .args(["-E", "UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        self.run(&mut cmd)?;
        let mut conf = String::from("\n# pg-harness\nlisten_addresses = '127.0.0.1'\n");
        let _ = writeln!(
            conf,
            "unix_socket_directories = '{}'",
            self.dir.path().display()
        );
        let _ = writeln!(conf, "max_connections = {}", opts.max_connections);
        if !opts.fsync {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let path = self.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).map_err(|e| io("read postgresql.conf", e))?;
        text.push_str(&conf);
        std::fs::write(&path, text).map_err(|e| io("write postgresql.conf", e))
    }

    fn start_on_free_port(mut self) -> Result<Self, Error> {
        // Another process may grab the port between our probe and the server's bind: retry.
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.port = free_port()?;
            match self.start_again() {
                Ok(()) => return Ok(self),
                Err(e) if attempts >= 3 => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory of the PostgreSQL programs (psql, pgbench, ...).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A `postgres://` URL for `user`/`password` and database `db` on this server.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{db}", self.port)
    }

    /// The superuser's URL for database `db`.
    pub fn admin_url(&self, db: &str) -> String {
        self.url(SUPERUSER, &self.password, db)
    }

    /// Stops the server (fast mode: clients are disconnected) and waits until it is down.
    pub fn stop(&self) -> Result<(), Error> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "30", "stop"]);
        self.run(&mut cmd).map(drop)
    }

    /// Starts the (stopped) server again on the same port and waits until it accepts
    /// connections.
    pub fn start_again(&self) -> Result<(), Error> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .args(["-w", "-t", "30", "start"]);
        self.run(&mut cmd).map(drop)
    }

    /// Runs SQL as the superuser through psql and returns its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, Error> {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password);
        let out = self.run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn pg_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.run_as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn run(&self, cmd: &mut Command) -> Result<Output, Error> {
        let line = format!("{cmd:?}").replace('"', "");
        let out = cmd
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| io(&format!("run `{line}`"), e))?;
        if out.status.success() {
            return Ok(out);
        }
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(Error::Command {
            cmd: line,
            status: out.status.to_string(),
            output: format!(
                "{}{}\n--- server log (tail) ---\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail.join("\n")
            ),
        })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Immediate mode: nothing to preserve, and drop must not wait for clients.
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "10", "stop"]);
        let _ = cmd.current_dir(self.dir.path()).output();
    }
}

/// Finds Debian's server binaries: `$PG_BIN_DIR`, else the highest
/// `/usr/lib/postgresql/<ver>/bin` that has `initdb`.
pub fn bin_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() {
            Ok(dir)
        } else {
            Err(Error::NoBinaries)
        };
    }
    let entries = std::fs::read_dir("/usr/lib/postgresql").map_err(|_| Error::NoBinaries)?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
        .ok_or(Error::NoBinaries)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| io("bind a probe port on 127.0.0.1", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| io("read the probe port", e))
}

fn unique_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("pw{:x}{:x}", std::process::id(), nanos)
}

fn chown_to_postgres(path: &Path) -> Result<(), Error> {
    let uid = id_of("-u")?;
    let gid = id_of("-g")?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| io(&format!("chown {} to postgres", path.display()), e))
}

fn id_of(flag: &str) -> Result<u32, Error> {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .map_err(|e| io("run `id postgres`", e))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| Error::Command {
            cmd: format!("id {flag} postgres"),
            status: out.status.to_string(),
            output: "no `postgres` system user (it comes with Debian's postgresql package)".into(),
        })
}

fn io(what: &str, source: std::io::Error) -> Error {
    Error::Io {
        what: what.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_sql_and_survives_stop_and_start() -> Result<(), Error> {
        let pg = PgServer::start(&Options::default())?;
        assert_eq!(pg.psql("postgres", "SELECT 40 + 2")?, "42");
        pg.stop()?;
        assert!(pg.psql("postgres", "SELECT 1").is_err());
        pg.start_again()?;
        assert_eq!(pg.psql("postgres", "SELECT 1")?, "1");
        Ok(())
    }
}
