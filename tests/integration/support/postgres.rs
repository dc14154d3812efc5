//! Databases for the store tests: a fresh SQLite file, or a fresh database on
//! a PostgreSQL server. The server is the one `SHADOWDIFF_TEST_POSTGRES_URL`
//! names (as under CI) or, without it, a throwaway one this test process
//! starts once with Debian's server programs and stops when it exits. With
//! neither, the tests fail naming the variable: they never skip, because a
//! skipped half of a test passes without having checked anything.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The variable naming the PostgreSQL server the store tests use.
pub const POSTGRES_ENV: &str = "SHADOWDIFF_TEST_POSTGRES_URL";

/// A database for one test: a fresh SQLite file, or a fresh database on the
/// PostgreSQL server, dropped (best effort) when the guard goes.
pub struct TestDatabase {
    pub name: &'static str,
    pub url: shadowdiff::store::DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    drop_from: Option<(String, String)>,
}

impl TestDatabase {
    /// The store on this database, connected and migrated (a failure names
    /// the database).
    pub async fn store(&self) -> shadowdiff::store::SqlStore {
        let store = shadowdiff::store::SqlStore::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        store
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, db)) = self.drop_from.take() {
            // A separate runtime: drop can run inside or outside one.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                            .execute(&pool)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn sqlite_database() -> TestDatabase {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shadowdiff.db").display());
    TestDatabase {
        name: "sqlite",
        url: url.parse().unwrap(),
        _dir: Some(dir),
        drop_from: None,
    }
}

/// A fresh database on the PostgreSQL server of [`postgres_admin_url`].
pub async fn postgres_database() -> TestDatabase {
    // Starting the throwaway server blocks for a few seconds, once.
    let admin = tokio::task::spawn_blocking(postgres_admin_url)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let db = format!(
        "shadowdiff_test_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin}: cannot connect: {e}"));
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin);
    TestDatabase {
        name: "postgres",
        url: format!("{base}/{db}").parse().unwrap(),
        _dir: None,
        drop_from: Some((admin.clone(), db)),
    }
}

/// Both databases a store test runs on.
pub async fn databases() -> Vec<TestDatabase> {
    vec![sqlite_database(), postgres_database().await]
}

/// The URL of the PostgreSQL server's own database, from which the tests
/// create theirs: `SHADOWDIFF_TEST_POSTGRES_URL` when set, else the URL of
/// this process's throwaway server (started on first use). Panics, naming
/// the variable, when there is neither.
pub fn postgres_admin_url() -> String {
    if let Some(url) = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()) {
        return url;
    }
    match SHARED.get_or_init(start_shared) {
        Ok(pg) => pg.url(),
        Err(why) => panic!(
            "the PostgreSQL tests need a server: set {POSTGRES_ENV} \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres), or install \
             PostgreSQL's server programs (Debian: apt-get install postgresql) \
             so that the tests start a throwaway one; `bash .ci/run` does both. \
             No throwaway server here: {why}"
        ),
    }
}

/// The throwaway server of this test process, shared by its tests.
static SHARED: OnceLock<Result<ThrowawayPostgres, String>> = OnceLock::new();

fn start_shared() -> Result<ThrowawayPostgres, String> {
    let pg = ThrowawayPostgres::try_start()?;
    // Statics are never dropped: stop the server when the process exits
    // (the test harness exits through exit(3), pass or fail). A process
    // killed outright leaves it running, but without its data directory's
    // lock file, which the server rechecks every minute and then shuts down.
    // SAFETY: `stop_shared` is a plain function that does not unwind.
    #[allow(unsafe_code, reason = "std has no exit hook for statics")]
    unsafe {
        libc::atexit(stop_shared)
    };
    Ok(pg)
}

extern "C" fn stop_shared() {
    if let Some(Ok(pg)) = SHARED.get() {
        pg.shut_down();
        let _ = std::fs::remove_dir_all(pg.dir.path());
    }
}

/// A PostgreSQL server of the test's own, in a temporary directory, that the
/// test can stop and start again: never the shared server.
pub struct ThrowawayPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl ThrowawayPostgres {
    /// Starts one, or fails the test on a machine without PostgreSQL's
    /// server programs (a test that needs its own server cannot skip).
    pub fn start() -> ThrowawayPostgres {
        Self::try_start().unwrap_or_else(|why| {
            panic!(
                "this test needs a PostgreSQL server of its own: install \
                 PostgreSQL's server programs (Debian: apt-get install \
                 postgresql; `bash .ci/run` does): {why}"
            )
        })
    }

    /// Starts one on a free port, or says why it cannot.
    pub fn try_start() -> Result<ThrowawayPostgres, String> {
        let bin = server_programs().ok_or("no initdb under /usr/lib/postgresql/*/bin")?;
        let root = running_as_root();
        if root && !user_exists("postgres") {
            return Err("running as root, and there is no postgres user to run it as".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut pg = ThrowawayPostgres { dir, bin, port: 0 };
        if root {
            // PostgreSQL refuses to run as root: its files belong to postgres.
            run_checked(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(pg.dir.path()),
            )?;
        }
        let data = pg.data();
        pg.try_run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        )?;
        // A port free a moment ago can be taken before the server binds it;
        // the server cannot be given port 0, so another port is tried.
        let mut last = String::new();
        for _ in 0..3 {
            pg.port = free_port();
            match pg.try_start_again() {
                Ok(()) => return Ok(pg),
                Err(why) => last = why,
            }
        }
        Err(format!("the server did not start: {last}"))
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start_again(&self) {
        self.try_start_again().unwrap();
    }

    fn try_start_again(&self) -> Result<(), String> {
        let data = self.data();
        let log = self.dir.path().join("log");
        // fsync off: the tests crash the server process, never the machine.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let started = self.try_run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        started.map_err(|why| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{why}\nserver log:\n{log}")
        })
    }

    /// Stops it at once, as a crash would.
    pub fn stop(&self) {
        let data = self.data();
        let stop = [
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ];
        self.try_run("pg_ctl", &stop).unwrap();
    }

    /// Stops it, best effort: a stop that fails leaves nothing worse than a
    /// temporary directory.
    fn shut_down(&self) {
        let data = self.data();
        let stop = ["-D", data.to_str().unwrap(), "-m", "immediate", "stop"];
        let _ = self.command("pg_ctl", &stop).output();
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of PostgreSQL's programs, run as the postgres user when we are
    /// root (the server refuses to run as root).
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).stdin(Stdio::null());
        command
    }

    fn try_run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        run_checked(&mut self.command(program, args))
            .map_err(|why| format!("{program} {args:?}: {why}"))
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The newest PostgreSQL's server programs, where Debian's packages put them.
fn server_programs() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|v| v.ok())
        .map(|v| v.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|b| version_of(b));
    found.pop()
}

/// `/usr/lib/postgresql/16/bin` → 16, so that 16 sorts after 9.6.
fn version_of(bin: &Path) -> Vec<u32> {
    let version = bin.parent().and_then(Path::file_name);
    let version = version.map(|v| v.to_string_lossy().into_owned());
    version
        .unwrap_or_default()
        .split('.')
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Runs a command to its end; its output, when it fails, says why.
fn run_checked(command: &mut Command) -> Result<(), String> {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().map_err(|e| e.to_string())?;
    match status.success() {
        true => Ok(()),
        false => Err(format!(
            "{status}: {}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )),
    }
}

fn free_port() -> u16 {
    super::free_address().port()
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn running_as_root() -> bool {
    // SAFETY: geteuid only reads the process's credentials.
    #[allow(unsafe_code, reason = "std has no safe geteuid")]
    unsafe {
        libc::geteuid() == 0
    }
}
