//! The monitoring files in `tuning/` against the gateway's own table of metrics
//! (`aegis_gateway::metrics::METRICS`): the Prometheus alert rules and the Grafana dashboard name
//! only metrics the gateway registers, the dashboard shows every one of them, and the rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`) where promtool is
//! installed (Debian package `prometheus`).

use aegis_gateway::metrics;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tuning(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tuning")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(tuning(file)).unwrap_or_else(|e| panic!("reading tuning/{file}: {e}"))
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

/// Whether `name` is one of the exported series: a metric of the gateway's table, or a
/// histogram's `_bucket` / `_sum` / `_count`.
fn exported(name: &str) -> bool {
    metrics::lookup(name).is_some()
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
        "aegis_gateway_store_available",
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
                let def = metrics::lookup(&name)
                    .unwrap_or_else(|| panic!("unknown metric {name} in {expr:?}"));
                used.insert(def.name);
            }
        }
    }
    for metric in metrics::METRICS {
        assert!(used.contains(metric.name), "no panel shows {}", metric.name);
    }
}

/// Runs `promtool ARGS` in `tuning/prometheus`; `None` when promtool is not installed.
fn promtool(args: &[&str]) -> Option<(bool, String)> {
    let out = match Command::new("promtool")
        .args(args)
        .current_dir(tuning("prometheus"))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running promtool: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let Some((ok, text)) = promtool(&["check", "rules", "alerts.yml"]) else {
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
        return;
    };
    assert!(ok, "promtool check rules:\n{text}");
    let (ok, text) = promtool(&["test", "rules", "alerts_test.yml"]).expect("promtool runs");
    assert!(ok, "promtool test rules:\n{text}");
}

#[test]
fn every_critical_alert_has_a_unit_test() {
    let rules = read("prometheus/alerts.yml");
    let tests = read("prometheus/alerts_test.yml");
    let lines: Vec<&str> = rules.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let Some(name) = line.trim_start().strip_prefix("- alert:").map(str::trim) else {
            continue;
        };
        let critical = lines[n + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with("- alert:"))
            .any(|l| l.trim() == "severity: critical");
        if critical {
            assert!(
                tests.contains(&format!("alertname: {name}\n")),
                "critical alert {name} has no test in alerts_test.yml"
            );
        }
    }
}
