//! What a rollout reads of its CloudWatch alarms, without the SDK: an alarm's state,
//! the names that have no alarm, and the error that names them.

use aws_sdk_cloudwatch::types::StateValue;

use super::errors::ApiError;

/// An alarm's state as DescribeAlarms gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub reason: String,
}

impl AlarmState {
    pub fn in_alarm(&self) -> bool {
        self.state == StateValue::Alarm.as_str()
    }
}

/// The names of `wanted` that `found` lacks, in `wanted`'s order, once each.
pub(crate) fn missing_names(wanted: &[String], found: &[AlarmState]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in wanted {
        if !found.iter().any(|f| &f.name == w) && !out.contains(w) {
            out.push(w.clone());
        }
    }
    out
}

/// The error for alarms that do not exist: names them, the region, and where the
/// names come from.
pub(crate) fn missing_error(missing: &[String], region: &str) -> ApiError {
    let list = missing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let (noun, verb) = if missing.len() == 1 { ("alarm", "does") } else { ("alarms", "do") };
    ApiError::Other {
        code: "AlarmNotFound".into(),
        status: None,
        message: format!(
            "the CloudWatch {noun} {list} {verb} not exist in {region}; `[rollout] alarms` in stamp.toml names the alarms \
             a rollout watches ({{{{customer}}}} is replaced by each customer's name): create them, or correct the names"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str, state: &str) -> AlarmState {
        AlarmState { name: name.into(), state: state.into(), reason: String::new() }
    }

    #[test]
    fn a_name_without_an_alarm_is_named_once_in_order() {
        let wanted: Vec<String> = ["a", "b", "c", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(missing_names(&wanted, &[st("a", "OK")]), ["b", "c"]);
        assert!(missing_names(&wanted, &[st("a", "OK"), st("b", "ALARM"), st("c", "INSUFFICIENT_DATA")]).is_empty());
        let e = missing_error(&["acme-5xx".into()], "eu-west-1").to_string();
        assert!(e.contains("alarm `acme-5xx` does not exist in eu-west-1"), "{e}");
        assert!(e.contains("`[rollout] alarms`") && e.contains("{{customer}}"), "{e}");
        let e = missing_error(&["x".into(), "y".into()], "us-east-1").to_string();
        assert!(e.contains("alarms `x`, `y` do not exist"), "{e}");
    }

    #[test]
    fn only_the_alarm_state_is_in_alarm() {
        assert!(st("a", "ALARM").in_alarm());
        assert!(!st("a", "OK").in_alarm() && !st("a", "INSUFFICIENT_DATA").in_alarm());
    }
}
