//! The host-tuning files in `tuning/`: `check.sh` runs on this host and reports every setting,
//! and the env file, sysctl file, limits and systemd unit stay consistent with the code and each
//! other. (The Prometheus rules and the Grafana dashboard are checked in `tuning_monitoring.rs`.)

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tuning(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tuning")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(tuning(file)).unwrap_or_else(|e| panic!("reading tuning/{file}: {e}"))
}

/// Runs `bash tuning/check.sh` with extra env vars; returns (exit code, stdout). Fails the test
/// if the script hangs (it must finish in < 5 s; 30 s only guards against a hang on a busy CI).
fn run_check(envs: &[(&str, &str)]) -> (i32, String) {
    let mut child = Command::new("bash")
        .arg(tuning("check.sh"))
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    // A bounded poll of the process exit (not a guessed wait).
    let start = Instant::now();
    while child.try_wait().expect("wait on check.sh").is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("check.sh still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("check.sh output");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().is_empty(),
        "check.sh wrote to stderr:\n{stderr}"
    );
    (
        out.status.code().expect("check.sh exited, not killed"),
        stdout,
    )
}

/// `(status, setting)` of every line; every line must start with a known status.
fn parse_lines(stdout: &str) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let status = line.split_whitespace().next().unwrap_or_default();
        assert!(
            ["OK", "SHORT", "UNKNOWN"].contains(&status),
            "line without a status: {line:?}"
        );
        // The setting is the second column (it may contain spaces: "nofile (pid 42)").
        let setting = line.get(9..45).unwrap_or_default().trim().to_string();
        lines.push((status.to_string(), setting));
    }
    lines
}

/// Keys set by non-comment lines of the sysctl file.
fn sysctl_keys(conf: &str) -> Vec<String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect()
}

#[test]
fn check_sh_reports_every_setting_and_exits_0_or_1() {
    let (code, stdout) = run_check(&[]);
    assert!(code == 0 || code == 1, "exit code {code}\n{stdout}");
    let lines = parse_lines(&stdout);
    let has = |name: &str| lines.iter().any(|(_, s)| s == name);
    for name in ["fs.file-max", "nofile", "memlock", "kernel", "io_uring"] {
        assert!(has(name), "no line for {name}:\n{stdout}");
    }
    for key in sysctl_keys(&read("sysctl.d/90-aegis-gateway.conf")) {
        assert!(has(&key), "no line for {key}:\n{stdout}");
    }
    let all_ok = lines.iter().all(|(status, _)| status == "OK");
    assert_eq!(
        code == 0,
        all_ok,
        "exit code {code} disagrees with:\n{stdout}"
    );
}

#[test]
fn check_sh_compares_in_the_right_direction() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("test.conf");
    // Satisfied on any Linux host / impossible on any, including values beyond 64 bits.
    std::fs::write(
        &conf,
        "# test\nfs.file-max = 1\nnet.ipv4.tcp_fin_timeout = 4000000000\n\
         vm.max_map_count = 99999999999999999999999\n-net.ipv4.tcp_keepalive_time = 0\n",
    )
    .expect("write conf");
    let conf = conf.to_str().expect("UTF-8 path");
    let (code, stdout) = run_check(&[("AEGIS_SYSCTL_CONF", conf)]);
    let lines = parse_lines(&stdout);
    let status = |name: &str| {
        lines
            .iter()
            .find(|(_, s)| s == name)
            .map(|(st, _)| st.as_str())
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"))
    };
    assert_eq!(status("fs.file-max"), "OK", "{stdout}");
    assert_eq!(status("net.ipv4.tcp_fin_timeout"), "OK", "{stdout}");
    assert_eq!(status("vm.max_map_count"), "SHORT", "{stdout}");
    assert_eq!(status("net.ipv4.tcp_keepalive_time"), "SHORT", "{stdout}");
    assert_eq!(code, 1, "a SHORT line must give exit code 1:\n{stdout}");

    let (code, stdout) = run_check(&[("AEGIS_SYSCTL_CONF", "/nonexistent/aegis.conf")]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("UNKNOWN  sysctl file"), "{stdout}");
}

#[test]
fn env_example_documents_every_variable() {
    let env = read("env.example");
    for var in aegis_gateway::config::VARIABLES.iter().chain(&["RUST_LOG"]) {
        assert!(
            env.lines()
                .any(|l| l.trim_start_matches('#').starts_with(&format!("{var}="))),
            "env.example lacks {var}"
        );
    }
}

#[test]
fn sysctl_limits_and_unit_agree() {
    let conf = read("sysctl.d/90-aegis-gateway.conf");
    let lines: Vec<&str> = conf.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        if !line.trim().is_empty() && !line.starts_with('#') {
            let before = n.checked_sub(1).and_then(|p| lines.get(p)).unwrap_or(&"");
            assert!(before.starts_with('#'), "no comment explains {line:?}");
        }
    }
    let unit = read("aegis-gateway.service");
    for directive in [
        "LimitNOFILE=1048576",
        "AmbientCapabilities=\n",
        "CapabilityBoundingSet=\n",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/aegis-gateway",
        "StateDirectory=aegis-gateway",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "io_uring_setup io_uring_enter io_uring_register",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "Restart=on-failure",
        "EnvironmentFile=/etc/aegis-gateway/env",
    ] {
        assert!(unit.contains(directive), "unit lacks {directive:?}");
    }
    // LimitMEMLOCK=<n>M in the unit and memlock <KiB> in limits.d must be the same amount.
    let unit_mib: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitMEMLOCK="))
        .and_then(|v| v.strip_suffix('M'))
        .and_then(|v| v.parse().ok())
        .expect("LimitMEMLOCK=<n>M");
    let limits = read("limits.d/aegis-gateway.conf");
    let memlock_kib: Vec<u64> = limits
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, _, "memlock", value] => value.parse().ok(),
            _ => None,
        })
        .collect();
    assert_eq!(
        memlock_kib,
        [unit_mib * 1024, unit_mib * 1024],
        "soft and hard memlock"
    );
}

#[test]
fn the_nats_example_is_a_valid_three_node_jetstream_config() {
    let conf = read("nats/nats-server.conf");
    assert!(conf.contains("sync_interval: always"), "fsync before ack");
    assert_eq!(conf.matches("nats-route://").count(), 3, "three servers");
    // The server itself parses it (`-t`: test the configuration and exit).
    let out = Command::new(common::nats_server_bin())
        .args(["-t", "-c"])
        .arg(tuning("nats/nats-server.conf"))
        .output()
        .expect("nats-server runs (.ci/run installs it, or set NATS_SERVER)");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("is valid"), "{text}");
}
