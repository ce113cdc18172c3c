//! Which attempts are told to whom, on which channel: the `[[notify.rules]]` of the config.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::email::{self, EmailConfig};
use super::sms::SmsConfig;
use crate::access::{AccessEvent, Decision, Reason};
use crate::checks::{Checks, Problem};
use crate::names::named_enum;
use crate::store::{Channel, Notices, Recipient};

named_enum! {
    /// What a rule is about.
    pub enum Trigger {
        /// An attempt that opened the door.
        Granted = "granted",
        /// An attempt that did not.
        Denied = "denied",
        /// A fault worth waking someone for (the card reader or the camera failing, the database
        /// away, notices piling up), once it has lasted `notify.fault_after`, and again when it
        /// is over.
        Fault = "fault",
    }
}

/// One rule: what `on` names (for denials, only for one of `reasons`) goes to `to` on `channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub channel: Channel,
    /// `granted`, `denied` and/or `fault`.
    pub on: Vec<Trigger>,
    /// Denials only for these reasons; empty: for every reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// Empty: the channel's own recipients (`email.to`, `sms.to`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
}

impl Rule {
    fn covers(&self, event: &AccessEvent) -> bool {
        let trigger = match event.decision {
            Decision::Granted => Trigger::Granted,
            Decision::Denied => Trigger::Denied,
            // Taps while disarmed are only logged.
            Decision::Disarmed => return false,
        };
        self.on.contains(&trigger)
            && (trigger != Trigger::Denied || self.reasons.is_empty() || self.reasons.contains(&event.reason))
    }
}

/// The `[notify]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyConfig {
    /// Unset: an e-mail to `email.to` for every grant, as the original FaceReko's SNS mail did,
    /// and for every fault.
    pub rules: Option<Vec<Rule>>,
    /// How long a fault lasts before anyone is told: a passing hiccup wakes no one.
    #[serde(with = "humantime_serde")]
    pub fault_after: Duration,
    /// Notifications waiting (MQTT outbox and messages together) beyond which that is a fault.
    pub backlog_over: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self { rules: None, fault_after: Duration::from_secs(5 * 60), backlog_over: 100 }
    }
}

impl NotifyConfig {
    /// The rules in force: the configured ones, or the default while e-mail is on.
    fn rules(&self, email: &EmailConfig) -> Vec<Rule> {
        match &self.rules {
            Some(rules) => rules.clone(),
            None if email.enabled() => [Trigger::Granted, Trigger::Fault]
                .map(|on| Rule { channel: Channel::Email, on: vec![on], reasons: Vec::new(), to: Vec::new() })
                .to_vec(),
            None => Vec::new(),
        }
    }

    pub fn check(&self, email: &EmailConfig, sms: &SmsConfig, checks: &mut Checks) {
        for (index, rule) in self.rules.iter().flatten().enumerate() {
            let key = format!("notify.rules[{index}]");
            let (enabled, own, switch) = match rule.channel {
                Channel::Email => (email.enabled(), &email.to, "email.server"),
                Channel::Sms => (sms.enabled(), &sms.to, "sms.url (or sms.service = \"sns\")"),
            };
            checks.check(enabled, &key, format!("sends {} but {switch} is not set", rule.channel));
            checks.check(!rule.on.is_empty(), &key, "`on` must list \"granted\", \"denied\" and/or \"fault\"");
            checks.check(
                !rule.to.is_empty() || !own.is_empty(),
                &key,
                format!("has no recipients: give it `to` or set {}.to", rule.channel),
            );
            for to in &rule.to {
                match rule.channel {
                    Channel::Email => email::check_address(checks, &format!("{key}.to"), to),
                    Channel::Sms => sms.check_recipient(checks, &format!("{key}.to"), to),
                }
            }
        }
        checks.duration("notify.fault_after", self.fault_after, Duration::from_secs(1), Duration::from_secs(86_400));
        checks.check(
            self.backlog_over >= 1,
            "notify.backlog_over",
            "0 would make every notice a fault; use at least 1",
        );
        if self.rules.is_none() && email.enabled() {
            checks.check(
                !email.to.is_empty(),
                "email.to",
                "e-mail is on but goes to no one; list the owner's address in email.to",
            );
        }
    }
}

/// The sections the rules are checked against and resolved with: `[notify]`, `[email]`, `[sms]`,
/// and whether MQTT is on. The web app edits the rules while the door runs.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySections {
    pub mqtt: bool,
    pub notify: NotifyConfig,
    pub email: EmailConfig,
    pub sms: SmsConfig,
}

impl NotifySections {
    /// Where the web app saves the rules (the `settings` table), as JSON; they replace
    /// `[[notify.rules]]` until removed.
    pub const RULES_SETTING: &str = "notify_rules";

    /// The rules in force, recipients as written: the configured ones, or the default.
    pub fn rules(&self) -> Vec<Rule> {
        self.notify.rules(&self.email)
    }

    /// These sections with `rules` in place of `[[notify.rules]]`.
    pub fn with_rules(&self, rules: Vec<Rule>) -> Self {
        let mut changed = self.clone();
        changed.notify.rules = Some(rules);
        changed
    }

    /// What is wrong with `rules` here, keyed `notify.rules[<index>]` as `config check` says it.
    pub fn rule_problems(&self, rules: &[Rule]) -> Vec<Problem> {
        let mut checks = Checks::default();
        self.with_rules(rules.to_vec()).notify.check(&self.email, &self.sms, &mut checks);
        let mut problems = checks.into_problems();
        problems.retain(|problem| problem.key.starts_with("notify.rules"));
        problems
    }

    /// Whether `channel` is switched on (`email.server`, `sms.url`).
    pub fn channel_on(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email.enabled(),
            Channel::Sms => self.sms.enabled(),
        }
    }

    /// Who is told of each attempt, and how.
    pub fn announcer(&self) -> Announcer {
        Announcer::new(self.mqtt, &self.notify, &self.email, &self.sms)
    }
}

/// Who is told of an attempt: the rules with their recipients resolved, and whether MQTT is on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Announcer {
    mqtt: bool,
    rules: Vec<Rule>,
}

impl Announcer {
    pub fn new(mqtt: bool, notify: &NotifyConfig, email: &EmailConfig, sms: &SmsConfig) -> Self {
        let rules = notify
            .rules(email)
            .into_iter()
            .map(|mut rule| {
                if rule.to.is_empty() {
                    rule.to = match rule.channel {
                        Channel::Email => email.to.clone(),
                        Channel::Sms => sms.to.clone(),
                    };
                }
                rule
            })
            .collect();
        Self { mqtt, rules }
    }

    /// The message channels the rules use.
    pub fn channels(&self) -> Vec<Channel> {
        let mut channels: Vec<Channel> = self.rules.iter().map(|rule| rule.channel).collect();
        channels.sort();
        channels.dedup();
        channels
    }

    /// Who is told of faults.
    pub fn fault_recipients(&self) -> Vec<Recipient> {
        let mut recipients: Vec<Recipient> = Vec::new();
        for rule in self.rules.iter().filter(|rule| rule.on.contains(&Trigger::Fault)) {
            for to in &rule.to {
                let recipient = Recipient { channel: rule.channel, to: to.clone() };
                if !recipients.contains(&recipient) {
                    recipients.push(recipient);
                }
            }
        }
        recipients
    }

    /// The notices `event` gets: the MQTT outbox, and one message per recipient the rules name.
    pub fn notices_for(&self, event: &AccessEvent) -> Notices {
        let mut messages: Vec<Recipient> = Vec::new();
        for rule in self.rules.iter().filter(|rule| rule.covers(event)) {
            for to in &rule.to {
                let recipient = Recipient { channel: rule.channel, to: to.clone() };
                if !messages.contains(&recipient) {
                    messages.push(recipient);
                }
            }
        }
        Notices { mqtt: self.mqtt, messages }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_event;

    fn email() -> EmailConfig {
        EmailConfig {
            server: "smtp.example.com".into(),
            from: "door@example.com".into(),
            to: vec!["owner@example.com".into()],
            ..EmailConfig::default()
        }
    }

    fn event(decision: Decision, reason: Reason) -> AccessEvent {
        AccessEvent { decision, reason, ..test_event("front") }
    }

    #[test]
    fn by_default_grants_are_mailed_to_the_owner() {
        let announcer = Announcer::new(false, &NotifyConfig::default(), &email(), &SmsConfig::default());
        let owner = Recipient { channel: Channel::Email, to: "owner@example.com".into() };
        let granted = announcer.notices_for(&event(Decision::Granted, Reason::CardAndFace));
        assert_eq!(granted.messages, std::slice::from_ref(&owner));
        assert_eq!(announcer.fault_recipients(), [owner], "and faults");
        assert!(announcer.notices_for(&event(Decision::Denied, Reason::WrongPerson)).is_empty());
        let off = Announcer::new(true, &NotifyConfig::default(), &EmailConfig::default(), &SmsConfig::default());
        assert_eq!(off.notices_for(&event(Decision::Granted, Reason::CardAndFace)), Notices::MQTT);
    }

    #[test]
    fn denials_can_be_narrowed_to_some_reasons_and_recipients_are_told_once() {
        let sms =
            SmsConfig { url: "https://sms.example.com".into(), to: vec!["+4915100000".into()], ..SmsConfig::default() };
        let rules: NotifyConfig = toml::from_str(
            r#"
            [[rules]]
            channel = "sms"
            on = ["denied"]
            reasons = ["wrong_person"]
            [[rules]]
            channel = "sms"
            on = ["denied", "granted"]
            [[rules]]
            channel = "email"
            on = ["denied", "fault"]
            to = ["guard@example.com"]
            "#,
        )
        .unwrap();
        let mut checks = Checks::default();
        rules.check(&email(), &sms, &mut checks);
        assert!(checks.into_problems().is_empty());
        let announcer = Announcer::new(false, &rules, &email(), &sms);
        let told = announcer.notices_for(&event(Decision::Denied, Reason::WrongPerson)).messages;
        let to: Vec<&str> = told.iter().map(|r| r.to.as_str()).collect();
        assert_eq!(to, ["+4915100000", "guard@example.com"]);
        assert_eq!(
            announcer.fault_recipients(),
            [Recipient { channel: Channel::Email, to: "guard@example.com".into() }]
        );
    }

    #[test]
    fn rules_for_channels_that_are_off_or_reach_no_one_are_refused() {
        let rules: NotifyConfig = toml::from_str("[[rules]]\nchannel = \"sms\"\non = [\"granted\"]\n").unwrap();
        let mut checks = Checks::default();
        rules.check(&email(), &SmsConfig::default(), &mut checks);
        let problems = checks.into_problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("sms.url"), "{}", problems[0].message);
    }
}
