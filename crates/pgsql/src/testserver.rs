//! A private PostgreSQL server for tests and benchmarks: Debian's
//! postgresql 15 binaries (`/usr/lib/postgresql/15/bin`, or `$YUBIN_PG_BIN`)
//! run `initdb` in a temporary directory, listen on 127.0.0.1 at a free port
//! and on a private socket directory, and are stopped when the value drops.
//! As root the server runs as the `postgres` user (PostgreSQL refuses root).
//! The system service is never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running private server. `stop` and `start` simulate an outage.
pub struct TestServer {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    as_user: Option<String>,
    running: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free local port")
}

impl TestServer {
    /// Creates and starts a cluster with database `yubin` (trust
    /// authentication for local connections, user `postgres`).
    pub fn start() -> Result<TestServer, String> {
        let bin = std::env::var_os("YUBIN_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        if !bin.join("initdb").exists() {
            return Err(format!(
                "{}/initdb not found: install Debian's postgresql package",
                bin.display()
            ));
        }
        let root = unsafe_is_root();
        let dir =
            std::env::temp_dir().join(format!("yubin-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let as_user = root.then(|| "postgres".to_string());
        if root {
            let ok = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .map_err(|e| e.to_string())?
                .success();
            if !ok {
                return Err("chown postgres failed".into());
            }
        }
        let mut s = TestServer {
            dir,
            bin,
            port: free_port(),
            as_user,
            running: false,
        };
        let data = s.dir.join("data");
        s.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-N",
            ],
        )?;
        s.start_again()?;
        s.psql("postgres", "CREATE DATABASE yubin")?;
        Ok(s)
    }

    fn cmd(&self, prog: &str) -> Command {
        match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(self.bin.join(prog));
                c
            }
            None => Command::new(self.bin.join(prog)),
        }
    }

    fn run(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let out = self
            .cmd(prog)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{prog}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{prog} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The socket directory (`unix:` hosts).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster's data directory (for running `postgres` elsewhere, e.g.
    /// inside a network namespace, after `stop`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The `postgres` server binary, and the user it must run as (`None`:
    /// the current user).
    pub fn server_command(&self) -> (PathBuf, Option<String>) {
        (self.bin.join("postgres"), self.as_user.clone())
    }

    /// Lets clients from `cidr` in without a password (pg_hba.conf `trust`).
    pub fn trust_network(&self, cidr: &str) -> Result<(), String> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("pg_hba.conf"))
            .map_err(|e| e.to_string())?;
        writeln!(f, "host all all {cidr} trust").map_err(|e| e.to_string())
    }

    /// Starts the server again after `stop` (same data, same port).
    pub fn start_again(&mut self) -> Result<(), String> {
        let data = self.dir.join("data");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off -c log_statement=all -c shared_buffers=16MB -c max_connections=60",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &self.dir.join("log").to_string_lossy(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        )?;
        self.running = true;
        Ok(())
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&mut self) -> Result<(), String> {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"],
        )?;
        self.running = false;
        Ok(())
    }

    /// Runs SQL through psql (`ON_ERROR_STOP`) and returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
        )
    }

    /// The server log (`log_statement = all`: every statement it received).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// A pgsql_table(5) `hosts`/`user`/`dbname` block for this server.
    pub fn conf_head(&self) -> String {
        format!(
            "hosts = inet:127.0.0.1:{}\nuser = postgres\ndbname = yubin\n",
            self.port
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unsafe_is_root() -> bool {
    // The effective uid, without a libc dependency: /proc/self/status "Uid:".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
