//! The operator files in `tuning/`: `check.sh` runs on this host and reports every setting, the
//! Prometheus rules and the Grafana dashboard name only metrics the gateway exports, and the
//! env file, sysctl file, limits and systemd unit stay consistent with the code and each other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The metrics the gateway exports (without the `aegis_gateway_` prefix).
#[rustfmt::skip]
const METRICS: &[&str] = &[
    "connections", "legacy_sessions", "handshakes_total", "messages_in_total",
    "messages_out_total", "verify_batch_size", "verify_seconds", "decrypt_seconds",
    "route_seconds", "queue_depth", "deliveries_total", "errors_total", "fsync_seconds",
    "enqueues_total", "rejected_connections_total", "handoffs_total", "ready",
];

/// The histograms among [`METRICS`]: they also export `_bucket`, `_sum` and `_count` series.
#[rustfmt::skip]
const HISTOGRAMS: &[&str] = &[
    "verify_batch_size", "verify_seconds", "decrypt_seconds", "route_seconds", "fsync_seconds",
];

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

/// PromQL words that are never metric names: aggregations, keywords and binary operators.
#[rustfmt::skip]
const PROMQL_WORDS: &[&str] = &[
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio", "inf", "nan",
];

/// PromQL words followed by a parenthesised list of label names.
#[rustfmt::skip]
const PROMQL_LABEL_LISTS: &[&str] = &[
    "by", "without", "on", "ignoring", "group_left", "group_right",
];

/// Index just past the string literal opening at `from` (escapes honoured except in backticks).
fn skip_string(chars: &[char], from: usize) -> usize {
    let quote = chars.get(from).copied().unwrap_or('"');
    let mut j = from + 1;
    while let Some(&c) = chars.get(j) {
        if c == '\\' && quote != '`' {
            j += 2;
            continue;
        }
        if c == quote {
            return j + 1;
        }
        j += 1;
    }
    j
}

/// Index just past the `close` that ends the group opening at `from`, skipping strings inside.
fn skip_group(chars: &[char], from: usize, close: char) -> usize {
    let mut j = from + 1;
    while let Some(&c) = chars.get(j) {
        match c {
            '"' | '\'' | '`' => j = skip_string(chars, j),
            c if c == close => return j + 1,
            _ => j += 1,
        }
    }
    j
}

/// Metric names used by a PromQL expression: identifiers outside label matchers, ranges and
/// strings that are not functions, aggregations or keywords.
fn promql_metrics(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: &char| c.is_ascii_alphanumeric() || *c == '_' || *c == ':';
    let mut names = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_group(&chars, i, '}'),
            '[' => i = skip_group(&chars, i, ']'),
            // Numbers and durations (0.99, 5m, 1e3).
            c if c.is_ascii_digit() || c == '.' => {
                while chars.get(i).is_some_and(|c| ident(c) || *c == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while chars.get(i).is_some_and(ident) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while chars.get(next).is_some_and(|c| c.is_whitespace()) {
                    next += 1;
                }
                let call = chars.get(next) == Some(&'(');
                if call && PROMQL_LABEL_LISTS.contains(&word.as_str()) {
                    i = skip_group(&chars, next, ')');
                } else if !call && !PROMQL_WORDS.contains(&word.as_str()) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Whether `name` is one of the exported series: a listed metric, or a histogram's
/// `_bucket` / `_sum` / `_count`.
fn exported(name: &str) -> bool {
    let Some(short) = name.strip_prefix("aegis_gateway_") else {
        return false;
    };
    METRICS.contains(&short)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            short
                .strip_suffix(suffix)
                .is_some_and(|base| HISTOGRAMS.contains(&base))
        })
}

#[test]
fn promql_metrics_finds_only_metric_names() {
    let expr = r#"histogram_quantile(0.99, sum by (instance, le) (rate(aegis_gateway_fsync_seconds_bucket{le!="x{y}",job=~"a|b"}[5m:30s]))) > 0.05 and on (instance) absent(up{job="gw"}) or foo_bar offset 1h"#;
    assert_eq!(
        promql_metrics(expr),
        ["aegis_gateway_fsync_seconds_bucket", "up", "foo_bar"]
    );
    let expr = r#"label_replace(aegis_gateway_ready, "x y", "$1", "instance", "(.*)\"z") * on(instance) group_left(kind) x:y:rate5m"#;
    assert_eq!(promql_metrics(expr), ["aegis_gateway_ready", "x:y:rate5m"]);
    assert!(exported("aegis_gateway_route_seconds_count"));
    assert!(exported("aegis_gateway_ready"));
    assert!(!exported("aegis_gateway_ready_bucket"));
    assert!(!exported("aegis_gateway_connection"));
}

/// The `expr:` values of a rule file: inline, or a block scalar (`|`, `>`) of deeper lines.
fn yaml_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            exprs.push(block.join("\n"));
        } else {
            exprs.push(value.trim_matches('\'').to_string());
        }
    }
    exprs
}

#[test]
fn alert_rules_use_only_exported_metrics() {
    let yaml = read("prometheus/alerts.yml");
    assert!(yaml.lines().any(|l| l == "groups:"), "not a rule file");
    let exprs = yaml_exprs(&yaml);
    let alerts: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert_eq!(exprs.len(), alerts.len(), "one expr per alert");
    assert_eq!(
        alerts.iter().collect::<BTreeSet<_>>().len(),
        alerts.len(),
        "duplicate alert names"
    );
    let severities = yaml
        .lines()
        .filter(|l| l.trim_start().starts_with("severity:"))
        .count();
    assert_eq!(severities, alerts.len(), "every alert has a severity");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = promql_metrics(expr);
        assert!(!names.is_empty(), "no metric in {expr:?}");
        for name in names {
            assert!(
                name == "up" || exported(&name),
                "unknown metric {name} in {expr:?}"
            );
            used.insert(name);
        }
    }
    for needed in [
        "up",
        "aegis_gateway_ready",
        "aegis_gateway_connections",
        "aegis_gateway_handshakes_total",
        "aegis_gateway_queue_depth",
        "aegis_gateway_deliveries_total",
        "aegis_gateway_fsync_seconds_bucket",
        "aegis_gateway_errors_total",
        "aegis_gateway_legacy_sessions",
    ] {
        assert!(used.contains(needed), "no alert on {needed}");
    }
}

#[test]
fn dashboard_parses_and_shows_every_metric() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/aegis-gateway.json")).expect("dashboard is JSON");
    assert!(dash["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    let vars = dash["templating"]["list"].as_array().expect("templating");
    let ds_var = vars
        .iter()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .expect("a Prometheus datasource variable");
    let ds_uid = format!("${{{}}}", ds_var["name"].as_str().unwrap_or_default());
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        let grid = &panel["gridPos"];
        let right = grid["x"].as_u64().unwrap_or(99) + grid["w"].as_u64().unwrap_or(99);
        assert!(right <= 24, "panel {} overflows the grid", panel["title"]);
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"],
            ds_uid.as_str(),
            "{}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            for name in promql_metrics(expr) {
                assert!(exported(&name), "unknown metric {name} in {expr:?}");
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| exported(b)))
                    .unwrap_or(&name);
                used.insert(base.trim_start_matches("aegis_gateway_").to_string());
            }
        }
    }
    for metric in METRICS {
        assert!(
            used.contains(*metric),
            "no panel shows aegis_gateway_{metric}"
        );
    }
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
