//! Shared test equipment: real backends on 127.0.0.1 port 0, a proxy started
//! the way `main` starts it, and misbehaving candidates made of raw sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use bytes::Bytes;
use http::HeaderMap;
use shadowdiff::config::BackendUrl;
use shadowdiff::outcome::{Recorder, Tally};
use shadowdiff::{Server, Settings};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A backend serving a router until the test ends.
pub struct Backend {
    pub addr: SocketAddr,
    _task: JoinHandle<()>,
}

impl Backend {
    pub fn url(&self) -> BackendUrl {
        format!("http://{}", self.addr).parse().unwrap()
    }
}

pub async fn backend(router: Router) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Backend { addr, _task: task }
}

/// A request as a backend saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: http::Method,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Every request a recording backend received.
#[derive(Clone, Default)]
pub struct Hits(Arc<Mutex<Vec<Hit>>>);

impl Hits {
    pub fn all(&self) -> Vec<Hit> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..500 {
            if self.0.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.all()
    }
}

/// A backend that records each request and answers `{"ok":true}`.
pub async fn recording_backend() -> (Backend, Hits) {
    let hits = Hits::default();
    let sink = hits.clone();
    let router = Router::new().fallback(move |request: Request| {
        let sink = sink.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            sink.0.lock().unwrap().push(Hit {
                method: parts.method,
                target: parts.uri.to_string(),
                headers: parts.headers,
                body,
            });
            ([("content-type", "application/json")], "{\"ok\":true}")
        }
    });
    (backend(router).await, hits)
}

/// A running proxy, stopped (and drained) with [`RunningProxy::stop`].
pub struct RunningProxy {
    pub addr: SocketAddr,
    /// The report API's address, when it was started.
    pub report: Option<SocketAddr>,
    pub recorder: Arc<Recorder>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Tally>,
}

impl RunningProxy {
    pub fn url(&self, target: &str) -> String {
        format!("http://{}{}", self.addr, target)
    }

    /// Waits (bounded) until `n` outcomes are recorded, and returns the tally.
    pub async fn outcomes(&self, n: u64) -> Tally {
        let waited = tokio::time::timeout(Duration::from_secs(20), self.recorder.wait_for(n)).await;
        let tally = self.recorder.tally();
        assert!(waited.is_ok(), "expected {n} outcomes, got {tally:?}");
        tally
    }

    pub async fn stop(self) -> Tally {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

pub fn settings(primary: &Backend, candidate: BackendUrl) -> Settings {
    Settings::new(primary.url(), candidate)
}

pub async fn start(settings: Settings) -> RunningProxy {
    launch(settings, false).await
}

/// The proxy and its report API, each on a port of its own.
pub async fn start_with_report(settings: Settings) -> RunningProxy {
    launch(settings, true).await
}

async fn launch(settings: Settings, with_report: bool) -> RunningProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let report = match with_report {
        true => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        false => None,
    };
    let report_addr = report.as_ref().map(|r| r.local_addr().unwrap());
    let server = Server::new(settings).unwrap();
    let recorder = server.recorder();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        match report {
            Some(report) => server
                .run_with_report(listener, report, shutdown)
                .await
                .unwrap(),
            None => server.run(listener, shutdown).await.unwrap(),
        }
    });
    RunningProxy {
        addr,
        report: report_addr,
        recorder,
        stop,
        task,
    }
}

/// A client that changes nothing: no redirects, no decompression, no proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// A URL on which nothing listens: connections are refused.
pub async fn refusing_url() -> BackendUrl {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}").parse().unwrap()
}

/// A raw TCP server that reads a request and then does `answer` to the socket.
pub async fn raw_backend<F, Fut>(answer: F) -> BackendUrl
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                answer(socket).await;
            });
        }
    });
    format!("http://{addr}").parse().unwrap()
}

/// A candidate that resets every connection after reading the request.
pub async fn resetting_url() -> BackendUrl {
    raw_backend(|socket| async move {
        // Linger 0 turns the close into a TCP RST. The deprecation warns that
        // a non-zero linger blocks on drop; a zero one resets at once.
        #[allow(deprecated)]
        let _ = socket.set_linger(Some(Duration::ZERO));
        drop(socket);
    })
    .await
}

/// A candidate that answers with bytes that are not HTTP.
pub async fn garbage_url() -> BackendUrl {
    raw_backend(|mut socket| async move {
        let _ = socket
            .write_all(b"SSH-2.0-OpenSSH_9.6 this is not http\r\n\r\n")
            .await;
        let _ = socket.shutdown().await;
    })
    .await
}

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

/// A fresh PostgreSQL database, or `None` (with a printed notice) on a
/// machine without one. Under CI the server is required: its absence fails.
pub async fn postgres_database() -> Option<TestDatabase> {
    let Ok(admin) = std::env::var(POSTGRES_ENV) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{POSTGRES_ENV} is not set under CI: the PostgreSQL tests must run there"
        );
        eprintln!("notice: {POSTGRES_ENV} is not set; skipping the PostgreSQL half of this test");
        return None;
    };
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
    Some(TestDatabase {
        name: "postgres",
        url: format!("{base}/{db}").parse().unwrap(),
        _dir: None,
        drop_from: Some((admin.clone(), db)),
    })
}

/// Both databases a store test runs on (PostgreSQL where there is one).
pub async fn databases() -> Vec<TestDatabase> {
    let mut all = vec![sqlite_database()];
    all.extend(postgres_database().await);
    all
}

/// A PostgreSQL server of the test's own, in a temporary directory, that the
/// test can stop and start again: never the shared server.
pub struct ThrowawayPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    pub port: u16,
}

impl ThrowawayPostgres {
    /// Starts one, or `None` with a notice on a machine without PostgreSQL's
    /// server programs (under CI their absence fails the test).
    pub fn start() -> Option<ThrowawayPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok())
                    .map(|v| v.path().join("bin"))
                    .find(|b| b.join("initdb").exists())
            });
        let Some(bin) = bin else {
            assert!(
                std::env::var_os("CI").is_none(),
                "initdb is missing under CI"
            );
            eprintln!(
                "notice: no PostgreSQL server programs here; skipping the database-outage test"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = ThrowawayPostgres { dir, bin, port };
        if running_as_root() {
            // PostgreSQL refuses to run as root: its files belong to postgres.
            assert!(Command::new("chown")
                .args(["-R", "postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap()
                .success());
        }
        let data = pg.dir.path().join("data");
        pg.run(
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
        );
        pg.start_again();
        Some(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start_again(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        self.run(
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
    }

    /// Stops it at once, as a crash would.
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
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
        command.args(args).stdout(std::process::Stdio::null());
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let status = self.command(program, args).status();
        assert!(status.unwrap().success(), "{program} {args:?} failed");
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let stop = ["-D", data.to_str().unwrap(), "-m", "immediate", "stop"];
        // Best effort: a stop that fails leaves nothing worse than a temp dir.
        let _ = self.command("pg_ctl", &stop).output();
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs the real binary with a clean environment, off the async runtime.
pub async fn binary(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_shadowdiff"))
            .args(&args)
            .env_clear()
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `shadowdiff serve` as a real process on a free port, with a clean
/// environment, its own working directory and, where given, a limit on open
/// files; stopped with SIGKILL when dropped.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub listen: SocketAddr,
    _workdir: tempfile::TempDir,
}

impl ServeProcess {
    pub async fn start(args: &[&str], open_files: Option<u64>) -> ServeProcess {
        // A port free a moment ago may be taken by the time the process
        // binds it: try other ports then.
        for _ in 0..3 {
            match Self::try_start(args, open_files).await {
                Ok(process) => return process,
                Err(stderr) if stderr.contains("cannot listen") => continue,
                Err(stderr) => panic!("shadowdiff exited: {stderr}"),
            }
        }
        panic!("shadowdiff found no free port in three tries");
    }

    async fn try_start(args: &[&str], open_files: Option<u64>) -> Result<ServeProcess, String> {
        let listen = free_address();
        let workdir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowdiff"));
        command
            .current_dir(workdir.path())
            .arg("serve")
            .args(["--listen", &listen.to_string()])
            .args(["--report-listen", &free_address().to_string()])
            .args(args)
            .env_clear()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(files) = open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit runs between fork and exec.
            #[allow(unsafe_code, reason = "a limit for the child alone needs pre_exec")]
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: files,
                        rlim_max: files,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().unwrap();
        let started = std::time::Instant::now();
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr);
                return Err(format!("{status}: {stderr}"));
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "shadowdiff did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(ServeProcess {
            child,
            listen,
            _workdir: workdir,
        })
    }

    pub fn url(&self, target: &str) -> String {
        format!("http://{}{}", self.listen, target)
    }

    /// Sends SIGTERM and returns the exit code and everything logged.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (status.code(), stderr)
    }

    /// Peak resident memory so far, in bytes (VmHWM).
    pub fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address on 127.0.0.1 that was free a moment ago.
pub fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Raises this process's soft open-file limit to the hard one, for tests
/// that open many sockets.
pub fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    #[allow(unsafe_code, reason = "no safe wrapper for the open-file limit in std")]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
