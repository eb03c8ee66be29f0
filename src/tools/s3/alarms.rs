//! CloudWatch alarms through the SDK, on `AwsApi`'s base config, HTTPS client and
//! retries: which of the alarms a rollout watches are in ALARM (DescribeAlarms by
//! name, metric and composite alarms alike). A name with no alarm behind it is an
//! error naming it, never a silent "not in ALARM": an alarm nobody can see fire
//! would let a bad wave through.

use std::cell::RefCell;

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use super::alarm_states::{AlarmState, missing_error, missing_names};
use super::{ApiError, AwsApi, log_call};
use crate::tools::process::StageLog;

/// DescribeAlarms takes at most 100 names a call.
const NAMES_PER_CALL: usize = 100;

impl AwsApi {
    async fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        if let Some(c) = self.cloudwatch.borrow().get(region) {
            return c.clone();
        }
        let conf = aws_sdk_cloudwatch::config::Builder::from(self.base().await)
            .region(aws_sdk_cloudwatch::config::Region::new(region.to_owned()))
            .build();
        let c = aws_sdk_cloudwatch::Client::from_conf(conf);
        self.cloudwatch.borrow_mut().insert(region.to_owned(), c.clone());
        c
    }

    /// The state of each alarm named that exists (DescribeAlarms by name, metric
    /// and composite alarms, every page), in the order named; a name without an
    /// alarm is left out (`missing_names` finds them).
    pub async fn alarm_states(&self, log: &mut StageLog, region: &str, names: &[String]) -> Result<Vec<AlarmState>, ApiError> {
        let cw = self.cloudwatch(region).await;
        let mut found: Vec<AlarmState> = Vec::new();
        for chunk in names.chunks(NAMES_PER_CALL) {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .call(&RefCell::new(&mut *log), "DescribeAlarms", "CloudWatch", None, async || {
                        cw.describe_alarms()
                            .set_alarm_names(Some(chunk.to_vec()))
                            // Without the types, AWS answers metric alarms only.
                            .alarm_types(AlarmType::MetricAlarm)
                            .alarm_types(AlarmType::CompositeAlarm)
                            .set_next_token(token.clone())
                            .send()
                            .await
                            .map_err(ApiError::from_sdk)
                    })
                    .await;
                log_call(log, &format!("cloudwatch DescribeAlarms {} in {region}", chunk.join(", ")), &page);
                let page = page?;
                let state = |s: Option<&StateValue>| s.map(|v| v.as_str().to_owned()).unwrap_or_default();
                found.extend(page.metric_alarms().iter().map(|a| AlarmState {
                    name: a.alarm_name().unwrap_or_default().to_owned(),
                    state: state(a.state_value()),
                    reason: a.state_reason().unwrap_or_default().to_owned(),
                }));
                found.extend(page.composite_alarms().iter().map(|a| AlarmState {
                    name: a.alarm_name().unwrap_or_default().to_owned(),
                    state: state(a.state_value()),
                    reason: a.state_reason().unwrap_or_default().to_owned(),
                }));
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(names.iter().filter_map(|n| found.iter().find(|f| &f.name == n).cloned()).collect())
    }

    /// The alarms named that are in ALARM, with the reason CloudWatch gives. A name
    /// without an alarm is an error naming it and `[rollout] alarms` (`missing_error`).
    pub async fn alarms_in_alarm(&self, log: &mut StageLog, region: &str, names: &[String]) -> Result<Vec<(String, String)>, ApiError> {
        let states = self.alarm_states(log, region, names).await?;
        let missing = missing_names(names, &states);
        if !missing.is_empty() {
            let e = missing_error(&missing, region);
            log.note(&format!("cloudwatch: {e}"));
            return Err(e);
        }
        Ok(states.into_iter().filter(AlarmState::in_alarm).map(|a| (a.name, a.reason)).collect())
    }
}
