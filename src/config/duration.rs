//! Human durations for configuration values: `"24h"`, `"1h30m"`, `"500ms"`, or bare seconds.

use std::time::Duration;

/// Longest input accepted by [`parse_duration`]; longer strings are rejected before any work.
const MAX_INPUT_LEN: usize = 64;

/// Parses a configuration duration.
///
/// Grammar: one or more `<digits><unit>` terms, summed (`"1h30m"`, `"2m"`, `"1d"`, `"500ms"`),
/// where the unit is `d`, `h`, `m`, `s` or `ms` (ASCII case-insensitive); or a bare unsigned
/// integer, meaning seconds (`"300"`). Surrounding whitespace is ignored.
///
/// Rejects: empty input, signs (`"-5s"`), fractions (`"1.5h"`), unknown units (`"5x"`), a term
/// without a number (`"h"`) and totals that overflow [`Duration`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if s.len() > MAX_INPUT_LEN {
        return Err(format!("duration longer than {MAX_INPUT_LEN} characters"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs = parse_number(s)?;
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!("expected a number at {rest:?}"));
        }
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!(
                "missing unit after {digits:?} (use d, h, m, s or ms)"
            ));
        }
        let term = term_duration(parse_number(digits)?, unit)?;
        total = total
            .checked_add(term)
            .ok_or_else(|| "duration is too large".to_string())?;
        rest = next;
    }
    Ok(total)
}

/// Parses an unsigned decimal number, reporting overflow.
fn parse_number(digits: &str) -> Result<u64, String> {
    digits
        .parse::<u64>()
        .map_err(|_| format!("number {digits:?} is too large"))
}

/// Converts `n` units into a [`Duration`], reporting overflow and unknown units.
fn term_duration(n: u64, unit: &str) -> Result<Duration, String> {
    let seconds_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} (use d, h, m, s or ms)")),
    };
    n.checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| "duration is too large".to_string())
}

/// Formats a duration in the compact form [`parse_duration`] reads back, largest units first:
/// `"1d"`, `"1h30m"`, `"300s"` is written `"5m"`, `"1s500ms"`, `"0s"`.
///
/// Sub-millisecond parts are dropped (configuration durations are whole milliseconds).
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs == 0 && millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = secs / size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            secs %= size;
        }
    }
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_forms() {
        let cases = [
            ("24h", 24 * 3_600_000),
            ("30s", 30_000),
            ("500ms", 500),
            ("1h30m", 90 * 60_000),
            ("2m", 120_000),
            ("1d", 86_400_000),
            ("300", 300_000),
            ("0", 0),
            ("1m30s250ms", 90_250),
            (" 10s ", 10_000),
            ("1H", 3_600_000),
            ("1MS", 1),
        ];
        for (input, millis) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_millis(millis)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_input() {
        for input in [
            "", "   ", "-5s", "-5", "+5s", "5x", "1.5h", "h", "5 s", "1h 30m", "s5", "5sx", "1w",
            "10µs", "5s-", "ms",
        ] {
            assert!(
                parse_duration(input).is_err(),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_duration("18446744073709551616").is_err());
        assert!(parse_duration("18446744073709551616s").is_err());
        assert!(parse_duration("18446744073709551615d").is_err());
        let max = u64::MAX.to_string();
        assert!(parse_duration(&format!("{max}s1s")).is_err());
        assert!(parse_duration(&"9".repeat(200)).is_err());
    }

    #[test]
    fn error_names_the_unknown_unit() {
        let err = parse_duration("5x").unwrap_err();
        assert!(err.contains("\"x\""), "{err}");
    }

    #[test]
    fn format_round_trips() {
        for millis in [
            0u64, 1, 999, 1_000, 1_500, 59_000, 60_000, 90_000, 3_600_000, 86_400_000,
        ] {
            let d = Duration::from_millis(millis);
            let text = format_duration(d);
            assert_eq!(parse_duration(&text), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1s500ms");
    }
}
