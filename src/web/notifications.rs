//! The notification rules on the settings page: which attempts and faults are told to whom, on
//! which channel. Checked as `config check` checks `[[notify.rules]]`, saved in the database in
//! their place, and handed to the running door at once.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::auth::{AdminForm, Button, Flash, User};
use super::views::{capitalised, csrf_field, post_button};
use super::{WebError, WebState, settings};
use crate::access::Reason;
use crate::driver::{Command, DoorLink};
use crate::notify::reason_in_words;
use crate::notify::rules::{NotifySections, Rule, Trigger};
use crate::notify::sms::SmsService;
use crate::store::Channel;

/// Where the page jumps to after a change.
const ANCHOR: &str = "/settings#notifications";

/// One row of the form as typed: a rule in force, or the empty row for a new one.
#[derive(Debug, Clone, Default, PartialEq)]
struct RuleRow {
    channel: String,
    on: Vec<String>,
    reasons: Vec<String>,
    /// The recipients as typed: one a line, or comma-separated.
    to: String,
    remove: bool,
}

impl RuleRow {
    fn of(rule: &Rule) -> Self {
        Self {
            channel: rule.channel.as_str().to_owned(),
            on: rule.on.iter().map(|on| on.as_str().to_owned()).collect(),
            reasons: rule.reasons.iter().map(|reason| reason.as_str().to_owned()).collect(),
            to: rule.to.join("\n"),
            remove: false,
        }
    }

    /// Nothing ticked or typed: the row for a new rule left empty.
    fn is_blank(&self) -> bool {
        self.on.is_empty() && self.reasons.is_empty() && self.to.trim().is_empty()
    }

    /// The rule this row asks for, or why it cannot be read.
    fn rule(&self) -> Result<Rule, Vec<String>> {
        let mut errors = Vec::new();
        let channel = Channel::ALL.into_iter().find(|channel| channel.as_str() == self.channel);
        if channel.is_none() {
            errors.push("choose e-mail or text message".to_owned());
        }
        let mut on = Vec::new();
        for text in &self.on {
            match text.parse::<Trigger>() {
                Ok(trigger) if !on.contains(&trigger) => on.push(trigger),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        let mut reasons = Vec::new();
        for text in &self.reasons {
            match text.parse::<Reason>() {
                Ok(reason) if !reason.denies() => errors.push(format!("{reason} is not a reason for a denial")),
                Ok(reason) if !reasons.contains(&reason) => reasons.push(reason),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        let mut to: Vec<String> = Vec::new();
        for recipient in self.to.split(['\n', ',']).map(str::trim).filter(|r| !r.is_empty()) {
            if !to.iter().any(|known| known == recipient) {
                to.push(recipient.to_owned());
            }
        }
        match channel {
            Some(channel) if errors.is_empty() => Ok(Rule { channel, on, reasons, to }),
            _ => Err(errors),
        }
    }
}

/// What cannot be saved, by row (the row for a new rule comes after the others).
type RowErrors = BTreeMap<usize, Vec<String>>;

/// The form: a row per rule, then the row for a new one.
#[derive(Debug, Clone, Default, PartialEq)]
struct RuleForm {
    rows: Vec<RuleRow>,
    added: RuleRow,
}

/// The prefix of the new row's field names; the others are `rule<row>.`.
const ADDED_ROW: &str = "new";

impl RuleForm {
    fn of(rules: &[Rule]) -> Self {
        Self { rows: rules.iter().map(RuleRow::of).collect(), added: RuleRow::default() }
    }

    /// The form as posted: fields named `rule<row>.<field>` and `new.<field>`; others are ignored.
    fn read(pairs: &[(String, String)]) -> Self {
        let mut rows: BTreeMap<usize, RuleRow> = BTreeMap::new();
        let mut added = RuleRow::default();
        for (key, value) in pairs {
            let Some((row, field)) = key.split_once('.') else { continue };
            let row = match row.strip_prefix("rule").map(str::parse::<usize>) {
                Some(Ok(index)) => rows.entry(index).or_default(),
                _ if row == ADDED_ROW => &mut added,
                _ => continue,
            };
            match field {
                "channel" => row.channel = value.clone(),
                "on" => row.on.push(value.clone()),
                "reason" => row.reasons.push(value.clone()),
                "to" => row.to = value.clone(),
                "remove" => row.remove = true,
                _ => {}
            }
        }
        Self { rows: rows.into_values().collect(), added }
    }

    /// The rules the form asks for, each with its row, and the rows that cannot be read.
    fn rules(&self) -> (Vec<(usize, Rule)>, RowErrors) {
        let mut rules = Vec::new();
        let mut errors = RowErrors::new();
        // Numbered as shown: rows by their place, the new one after them all.
        let kept = self.rows.iter().enumerate().filter(|(_, row)| !row.remove);
        let added = (!self.added.is_blank()).then_some((self.rows.len(), &self.added));
        for (at, row) in kept.chain(added) {
            match row.rule() {
                Ok(rule) => rules.push((at, rule)),
                Err(why) => {
                    errors.insert(at, why);
                }
            }
        }
        (rules, errors)
    }
}

/// The rule a problem of `config check` is about: `notify.rules[2].to` is about the third.
fn rule_of_problem(key: &str) -> Option<usize> {
    key.strip_prefix("notify.rules[")?.split(']').next()?.parse().ok()
}

fn field_name(row: Option<usize>, field: &str) -> String {
    match row {
        Some(at) => format!("rule{at}.{field}"),
        None => format!("{ADDED_ROW}.{field}"),
    }
}

fn channel_label(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "E-mail",
        Channel::Sms => "Text message",
    }
}

/// The fields of one rule; `row` is `None` for the new one.
fn rule_fields(row: Option<usize>, rule: &RuleRow, errors: Option<&Vec<String>>, admin: bool) -> Markup {
    let id = |field: &str| field_name(row, field).replace('.', "-");
    let legend = match row {
        Some(at) => format!("Rule {}", at + 1),
        None => "New rule".to_owned(),
    };
    html! {
        fieldset.rule.settings-grid.invalid[errors.is_some()] {
            legend { (legend) }
            @if let Some(errors) = errors {
                div.form-actions { @for error in errors { span.field-error { (capitalised(error)) } br; } }
            }
            div.field {
                label for=(id("channel")) { "Channel" }
                select id=(id("channel")) name=(field_name(row, "channel")) disabled[!admin] {
                    @for channel in Channel::ALL {
                        option value=(channel.as_str()) selected[rule.channel == channel.as_str()] { (channel_label(channel)) }
                    }
                }
            }
            div.field role="group" aria-label="On" {
                label { "On" }
                div.choices {
                    @for trigger in Trigger::ALL {
                        label {
                            input type="checkbox" name=(field_name(row, "on")) value=(trigger.as_str())
                                checked[rule.on.iter().any(|on| on == trigger.as_str())] disabled[!admin];
                            (trigger.as_str())
                        }
                    }
                }
            }
            div.field role="group" aria-label="Denials only for" {
                label { "Denials only for" }
                div.choices {
                    @for reason in Reason::ALL.iter().filter(|reason| reason.denies()) {
                        label {
                            input type="checkbox" name=(field_name(row, "reason")) value=(reason.as_str())
                                checked[rule.reasons.iter().any(|r| r == reason.as_str())] disabled[!admin];
                            (reason_in_words(*reason))
                        }
                    }
                }
                span.hint { "None ticked: every reason." }
            }
            div.field {
                label for=(id("to")) { "Recipients" }
                textarea id=(id("to")) name=(field_name(row, "to")) rows="2" disabled[!admin] { (rule.to) }
                span.hint { "One address or number a line, or comma-separated. Empty: the channel's own list." }
            }
            @if let (Some(_), true) = (row, admin) {
                div.field.choices {
                    label {
                        input type="checkbox" name=(field_name(row, "remove")) value="1" checked[rule.remove];
                        "Remove this rule"
                    }
                }
            }
        }
    }
}

/// Whether `channel` is on, with its switch and its own recipients.
fn channel_state(sections: &NotifySections, channel: Channel) -> Markup {
    let (switch, own) = match channel {
        Channel::Email => ("email.server", &sections.email.to),
        Channel::Sms if sections.sms.service == SmsService::Sns => ("sms.service = \"sns\"", &sections.sms.to),
        Channel::Sms => ("sms.url", &sections.sms.to),
    };
    html! {
        li {
            span {
                strong { (channel_label(channel)) } " "
                @if sections.channel_on(channel) { span.badge.granted { "on" } } @else { span.badge.warn { "off" } }
                " " span.muted { "(" code { (switch) } ")" }
            }
            span.muted {
                "Own list (" code { (channel.as_str()) ".to" } "): "
                @if own.is_empty() { "nobody" } @else { (own.join(", ")) }
            }
        }
    }
}

/// The notifications part of the settings page, showing `form` with `errors`.
fn view(user: &User, sections: &NotifySections, saved: bool, form: &RuleForm, errors: &RowErrors) -> Markup {
    let admin = user.is_admin();
    html! {
        section.card #notifications {
            h2 { "Notifications" }
            p.hint {
                "Which access attempts and faults are told to whom, by e-mail or text message. "
                @if saved {
                    "These rules were saved here: they replace the config file's " code { "[[notify.rules]]" } " until you go back to them."
                } @else {
                    "These are the config file's rules (" code { "[[notify.rules]]" } "; without any, every grant and fault is mailed to "
                    code { "email.to" } "). Saved changes replace them."
                }
                " Changes apply from the next attempt."
                @if !admin { " Your account can only look at them." }
            }
            ul.items {
                @for channel in Channel::ALL { (channel_state(sections, channel)) }
            }
            p.hint { "A rule for a channel that is off is refused; turn the channel on in the config file first." }
            form method="post" action="/settings/notifications" novalidate {
                (csrf_field(user))
                @for (at, row) in form.rows.iter().enumerate() {
                    (rule_fields(Some(at), row, errors.get(&at), admin))
                }
                @if form.rows.is_empty() { p.muted { "No rules: nobody is told by e-mail or text message." } }
                @if admin {
                    (rule_fields(None, &form.added, errors.get(&form.rows.len()), admin))
                    div.form-actions { button.primary type="submit" { "Save notification rules" } }
                }
            }
            @if admin && saved {
                (post_button(user, "/settings/notifications/reset", "Go back to the config file's rules", "secondary",
                    Some("Forget the rules saved here and use the config file's?")))
            }
        }
    }
}

/// The part as it stands: the rules in force.
pub fn current(state: &WebState, user: &User) -> Markup {
    let saved = state.0.saved_rules.read().expect("rules lock").clone();
    let sections = &state.0.notify_config;
    let rules = saved.clone().unwrap_or_else(|| sections.rules());
    view(user, sections, saved.is_some(), &RuleForm::of(&rules), &RowErrors::new())
}

/// Hands the rules of `sections` to the running door.
async fn reannounce(door: &DoorLink, sections: &NotifySections) -> Result<(), WebError> {
    let announcer = sections.announcer();
    door.control
        .command(|done| Command::Reannounce { announcer, done })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))
}

pub async fn save(
    State(state): State<WebState>,
    AdminForm(user, pairs): AdminForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let door = state.door()?;
    let form = RuleForm::read(&pairs);
    let (read, mut errors) = form.rules();
    let rules: Vec<Rule> = read.iter().map(|(_, rule)| rule.clone()).collect();
    // Rows that could not be read are left out, so the others are checked all the same.
    for problem in state.0.notify_config.rule_problems(&rules) {
        let row =
            rule_of_problem(&problem.key).and_then(|index| read.get(index)).map_or(form.rows.len(), |(at, _)| *at);
        errors.entry(row).or_default().push(problem.message);
    }
    if !errors.is_empty() {
        let saved = state.0.saved_rules.read().expect("rules lock").is_some();
        let part = view(&user, &state.0.notify_config, saved, &form, &errors);
        let flash = Flash::error("Nothing was saved: fix the rules marked below.");
        return settings::render_with(&state, &user, Some(flash), StatusCode::UNPROCESSABLE_ENTITY, part).await;
    }
    let json = serde_json::to_string(&rules).map_err(|e| WebError::Internal(e.to_string()))?;
    state.store().settings().set_setting(NotifySections::RULES_SETTING, &json).await?;
    reannounce(door, &state.0.notify_config.with_rules(rules.clone())).await?;
    tracing::info!(user = %user.username, rules = rules.len(), "notification rules changed from the web app");
    *state.0.saved_rules.write().expect("rules lock") = Some(rules);
    state.auth().set_flash(&user, Flash::ok("Notification rules saved; they apply from the next attempt."));
    Ok(Redirect::to(ANCHOR).into_response())
}

/// Forgets the saved rules: the config file's are in force again.
pub async fn reset(
    State(state): State<WebState>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let door = state.door()?;
    state.store().settings().remove_setting(NotifySections::RULES_SETTING).await?;
    reannounce(door, &state.0.notify_config).await?;
    tracing::info!(user = %user.username, "notification rules reset to the config file's from the web app");
    *state.0.saved_rules.write().expect("rules lock") = None;
    state.auth().set_flash(&user, Flash::ok("The config file's notification rules apply again."));
    Ok(Redirect::to(ANCHOR).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn rows_are_read_into_rules_in_their_order() {
        let form = RuleForm::read(&pairs(&[
            ("csrf", "token"),
            ("rule1.channel", "sms"),
            ("rule1.on", "granted"),
            ("rule0.channel", "email"),
            ("rule0.on", "denied"),
            ("rule0.on", "fault"),
            ("rule0.reason", "wrong_person"),
            ("rule0.to", " guard@example.com,\r\nowner@example.com\n\nguard@example.com "),
            ("new.channel", "email"),
        ]));
        assert_eq!(form.rows.len(), 2);
        assert!(form.added.is_blank());
        let (rules, errors) = form.rules();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rules.len(), 2, "the empty new row is left out");
        let (at, first) = &rules[0];
        assert_eq!(*at, 0);
        assert_eq!(first.channel, Channel::Email);
        assert_eq!(first.on, [Trigger::Denied, Trigger::Fault]);
        assert_eq!(first.reasons, [Reason::WrongPerson]);
        assert_eq!(first.to, ["guard@example.com", "owner@example.com"], "trimmed, split and told once");
        assert_eq!((rules[1].1.channel, rules[1].1.to.is_empty()), (Channel::Sms, true), "empty: the channel's own");
    }

    #[test]
    fn removed_rows_go_and_a_filled_new_row_comes_last() {
        let form = RuleForm::read(&pairs(&[
            ("rule0.channel", "email"),
            ("rule0.on", "granted"),
            ("rule0.remove", "1"),
            ("rule1.channel", "email"),
            ("rule1.on", "fault"),
            ("new.channel", "sms"),
            ("new.on", "denied"),
        ]));
        let (rules, errors) = form.rules();
        assert!(errors.is_empty());
        let kept: Vec<(usize, Channel)> = rules.iter().map(|(at, rule)| (*at, rule.channel)).collect();
        assert_eq!(kept, [(1, Channel::Email), (2, Channel::Sms)], "rows keep the numbers they are shown with");
    }

    #[test]
    fn what_cannot_be_read_is_said_by_row() {
        let form = RuleForm::read(&pairs(&[
            ("rule0.channel", "pigeon"),
            ("rule0.on", "granted"),
            ("rule1.channel", "email"),
            ("rule1.on", "sometimes"),
            ("rule1.reason", "card_and_face"),
            ("rule2.channel", "email"),
            ("rule2.on", "granted"),
        ]));
        let (rules, errors) = form.rules();
        assert_eq!(rules.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [2], "the readable row is still checked");
        assert_eq!(errors[&0], ["choose e-mail or text message"]);
        assert!(errors[&1][0].contains("\"sometimes\" is not one of"), "{:?}", errors[&1]);
        assert_eq!(errors[&1][1], "card_and_face is not a reason for a denial");
    }

    #[test]
    fn a_rule_shows_as_the_row_it_is_read_back_from() {
        let rule = Rule {
            channel: Channel::Sms,
            on: vec![Trigger::Denied],
            reasons: vec![Reason::NoFace, Reason::UnknownCard],
            to: vec!["+4915100000".into(), "+4915100001".into()],
        };
        let row = RuleRow::of(&rule);
        assert_eq!(row.rule(), Ok(rule));
    }

    #[test]
    fn problems_name_the_rule_they_are_about() {
        assert_eq!(rule_of_problem("notify.rules[2].to"), Some(2));
        assert_eq!(rule_of_problem("notify.rules[10]"), Some(10));
        assert_eq!(rule_of_problem("notify.fault_after"), None);
    }
}
