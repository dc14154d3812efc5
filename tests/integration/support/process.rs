//! The real binary as a process: run to its end, or `serve` left running on
//! ports the binary chose itself (port 0), read back from its log. A port
//! found free by the test could be taken by another test before the binary
//! bound it; one the binary bound cannot.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// `shadowdiff COMMAND ARGS` against the report API on `report` (with the
/// token unless `token` is none): exit code, stdout, stderr.
pub async fn api_command(
    command: &str,
    (report, token): (u16, Option<&str>),
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut all = vec![
        command.to_string(),
        "--report-url".into(),
        format!("http://127.0.0.1:{report}"),
    ];
    if let Some(token) = token {
        all.extend(["--report-token".to_string(), token.to_string()]);
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let out = binary(all).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `shadowdiff serve` as a real process, with a clean environment, its own
/// working directory and, where given, a limit on open files; stopped with
/// SIGKILL when dropped.
pub struct ServeProcess {
    pub child: Child,
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// Everything logged, once the process ends (read all along, so that a
    /// chatty process never blocks on a full pipe).
    log: Option<std::thread::JoinHandle<String>>,
    _workdir: tempfile::TempDir,
}

impl ServeProcess {
    /// Starts it and waits (bounded) until it says where it listens.
    pub async fn start(args: &[&str], open_files: Option<u64>) -> ServeProcess {
        let workdir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowdiff"));
        // The report API, which serve always starts, on a port of its own
        // too: its default one would be shared by every test.
        command
            .current_dir(workdir.path())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--report-listen", "127.0.0.1:0"])
            .args(args)
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(files) = open_files {
            limit_open_files(&mut command, files);
        }
        let mut child = command.spawn().unwrap();
        let (lines, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut log = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                log.push_str(&line);
                log.push('\n');
                let _ = lines.send(line);
            }
            log
        });
        // Logged once the listener is bound: the port accepts from then on.
        let listen = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = heard.recv().await {
                if let Some(listen) = logged_address(&line, "shadowdiff listening") {
                    return Some(listen);
                }
            }
            None
        })
        .await
        .expect("shadowdiff did not say where it listens within 20 s");
        let Some(listen) = listen else {
            let status = child.wait().unwrap();
            panic!(
                "shadowdiff exited ({status}) before listening: {}",
                log.join().unwrap()
            );
        };
        ServeProcess {
            child,
            listen,
            log: Some(log),
            _workdir: workdir,
        }
    }

    /// Started shadowing every request from `primary` to `candidate`,
    /// with `more` arguments.
    pub async fn shadowing(primary: &str, candidate: &str, more: &[&str]) -> ServeProcess {
        let mut args = vec![
            "--primary",
            primary,
            "--candidate",
            candidate,
            "--sample-rate",
            "1",
        ];
        args.extend_from_slice(more);
        ServeProcess::start(&args, None).await
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
        // The log ends with the process: its reader is done or about to be.
        let log = self.log.take().unwrap().join().unwrap();
        (status.code(), log)
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

/// The address in a log line carrying `message`, logged as
/// `address=127.0.0.1:PORT` (the binary's plain-text log format).
pub fn logged_address(line: &str, message: &str) -> Option<SocketAddr> {
    if !line.contains(message) {
        return None;
    }
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
        .and_then(|address| address.parse().ok())
}

/// Lowers the child's open-file limit to `files` before it runs.
fn limit_open_files(command: &mut Command, files: u64) {
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

/// Waits (bounded) until the process logging to `log` says where the proxy
/// and the report API listen (both are given port 0), and returns their ports.
pub async fn listening(log: &std::path::Path) -> (u16, u16) {
    for _ in 0..1_000 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let find = |message| text.lines().find_map(|l| logged_address(l, message));
        if let (Some(proxy), Some(report)) =
            (find("shadowdiff listening"), find("report API listening"))
        {
            return (proxy.port(), report.port());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never said where it listens", log.display());
}

/// `shadowdiff serve --config` with `config` written to `dir`, a clean
/// environment but `envs`, and its stderr in `dir`: the process and its
/// proxy and report ports (both 0 in the config).
pub async fn serve_config(
    dir: &std::path::Path,
    name: &str,
    config: &str,
    envs: &[(&str, &str)],
) -> (Child, u16, u16) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let stderr = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_shadowdiff"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .env_clear()
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let (listen, report) = listening(&stderr).await;
    (child, listen, report)
}
