//! Known visitors at the desk. A ring's photo is compared with the faces of visitors the owner
//! let in before: a recognised visitor is named in the owner's message, and one the owner marked
//! auto-pass is sent a passcode at once, the owner being told afterwards. Approving a visit keeps
//! its visitor for next time, with the face from the visit's photo; forgetting a visitor deletes
//! their faces and photos at once.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{Desk, MAX_NAME, RingKind, Sent, has_contact};
use crate::frame::Frame;
use crate::notify::delivery::Story;
use crate::store::{Channel, KnownVisitor, Visit, VisitStatus, VisitorDetails, VisitorId};
use crate::visitor::faces::KnownFaces;
use crate::visitor::{Contact, VisitorError, valid_email, valid_mobile};

/// Who decided a visit that a known visitor's standing approval let in.
pub const AUTO_PASS: &str = "auto-pass";
/// The longest a ring waits for the visitor's face to be described and searched: a slow engine
/// must not hold up the ring, so the owner is then told of an unknown visitor.
const RECOGNITION_TIME_LIMIT: Duration = Duration::from_secs(3);
/// Faces kept per visitor, the newest: looks change, and a few views recognise better than one.
const FACES_KEPT: u32 = 5;
/// A visitor's name when their visit gave none.
const NO_NAME: &str = "Unnamed visitor";

/// A known visitor found in a ring's photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognised {
    /// As kept before this ring: their last visit is the one before.
    pub visitor: KnownVisitor,
    pub similarity: f32,
}

/// What the owner's message about a ring says besides who rang.
pub(super) enum Told<'a> {
    /// Nobody the door knows: the owner decides.
    Stranger,
    /// A known visitor: the owner decides.
    Known(&'a Recognised),
    /// A known visitor marked auto-pass, who was sent a passcode: nothing to decide.
    AutoPassed { known: &'a Recognised, channel: Channel, to: &'a str },
    /// A known visitor marked auto-pass whose passcode could not be sent: the owner decides.
    AutoPassFailed { known: &'a Recognised, problem: &'a str },
}

impl Told<'_> {
    pub(super) fn known(&self) -> Option<&Recognised> {
        match self {
            Told::Stranger => None,
            Told::Known(known) | Told::AutoPassed { known, .. } | Told::AutoPassFailed { known, .. } => Some(known),
        }
    }

    /// The owner's message: who is known, who rang (and how) and what they wrote, then what there
    /// is to do with the link (valid `minutes`).
    pub(super) fn story(
        &self,
        visit: &Visit,
        kind: &RingKind,
        minutes: u64,
        link: Option<String>,
        now: OffsetDateTime,
    ) -> Story {
        let door = &visit.door;
        let said = visit.message.as_deref().map(|text| format!(" They wrote: \"{text}\".")).unwrap_or_default();
        let (stranger_subject, rang) = match kind {
            RingKind::VisitPage => (format!("FaceReko: {} is at {door}", visit.name), format!("{} rang", visit.name)),
            RingKind::Bell => (format!("FaceReko: someone rang the bell at {door}"), "Someone rang the bell".into()),
            RingKind::UnknownCard(card) => (
                format!("FaceReko: someone with an unknown card is at {door}"),
                format!("Someone tapped the unknown card {}", card.masked()),
            ),
        };
        let rang = format!("{rang} at {door}.{said}");
        // A passcode needs a way to reach the visitor.
        let choices = if has_contact(visit) {
            "let them in, send a passcode or turn them away"
        } else {
            "let them in or turn them away"
        };
        let decide = format!("Open the link within {minutes} minutes to {choices}.");
        let introduced = |known: &Recognised| {
            format!("Known visitor: {}, last here {}.", known.visitor.name, ago(known.visitor.last_visit, now))
        };
        let (subject, sentence) = match self {
            Told::Stranger => (stranger_subject, format!("{rang} {decide}")),
            Told::Known(known) => (
                format!("FaceReko: {} is at {door}", known.visitor.name),
                format!("{} {rang} {decide}", introduced(known)),
            ),
            Told::AutoPassed { known, channel, to } => (
                format!("FaceReko: {} is at {door} and was sent a passcode", known.visitor.name),
                format!(
                    "{} {rang} You marked them auto-pass, so a passcode was sent to {to} by {channel}: there is \
                     nothing to decide. The link shows the visit.",
                    introduced(known)
                ),
            ),
            Told::AutoPassFailed { known, problem } => (
                format!("FaceReko: {} is at {door}", known.visitor.name),
                format!(
                    "{} {rang} You marked them auto-pass, but the passcode could not be sent ({problem}). {decide}",
                    introduced(known)
                ),
            ),
        };
        Story { subject, sentence, link }
    }
}

/// How long before `now` `then` was, in words: "just now", "5 minutes ago", "3 days ago".
fn ago(then: OffsetDateTime, now: OffsetDateTime) -> String {
    let elapsed = now - then;
    let (count, unit) = match (elapsed.whole_minutes(), elapsed.whole_hours(), elapsed.whole_days()) {
        (..=0, _, _) => return "just now".to_owned(),
        (minutes, 0, _) => (minutes, "minute"),
        (_, hours, 0) => (hours, "hour"),
        (_, _, days) => (days, "day"),
    };
    format!("{count} {unit}{} ago", if count == 1 { "" } else { "s" })
}

/// The visitor as an approved visit describes them: its name and contact, where it gave them,
/// else what `kept` had.
fn details(visit: &Visit, kept: Option<&KnownVisitor>) -> VisitorDetails {
    let name = Some(visit.name.trim()).filter(|name| !name.is_empty()).map(str::to_owned);
    VisitorDetails {
        name: name.or_else(|| kept.map(|known| known.name.clone())).unwrap_or_else(|| NO_NAME.to_owned()),
        email: visit.email.clone().or_else(|| kept.and_then(|known| known.email.clone())),
        mobile: visit.mobile.clone().or_else(|| kept.and_then(|known| known.mobile.clone())),
    }
}

/// A visitor's name and contact as typed (by the visitor when ringing, by the owner when editing
/// a known visitor), tidied; the error says what to change. No contact is needed here: a ring
/// asks for one, while a known visitor without one makes auto-pass fall back to asking.
pub fn edited_details(name: &str, email: &str, mobile: &str) -> Result<VisitorDetails, String> {
    let typed = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
    let fits = |name: &String| name.chars().count() <= MAX_NAME && !name.chars().any(char::is_control);
    let name = typed(name).filter(fits).ok_or_else(|| format!("Please give a name (up to {MAX_NAME} characters)."))?;
    let email = match typed(email) {
        Some(email) if !valid_email(&email) => return Err("That e-mail address does not look right.".into()),
        email => email,
    };
    let mobile = match typed(mobile).map(|number| number.replace([' ', '-'], "")) {
        Some(number) if !valid_mobile(&number) => {
            return Err("Please give the mobile number with its country code, e.g. +44 7700 900123.".into());
        }
        mobile => mobile,
    };
    Ok(VisitorDetails { name, email, mobile })
}

impl Desk {
    /// Recognises a known visitor in the ring's `frame`, then tells the owner, or for one marked
    /// auto-pass sends the passcode first.
    pub(super) async fn welcome(
        &self,
        visit: &mut Visit,
        kind: &RingKind,
        frame: Option<&Frame>,
        now: OffsetDateTime,
    ) -> Result<(), VisitorError> {
        let known = match (&self.faces, frame) {
            (Some(faces), Some(frame)) => self.recognise(faces, visit, frame).await,
            _ => None,
        };
        match &known {
            None => self.tell_owners(visit, kind, &Told::Stranger, now).await,
            Some(known) if known.visitor.auto_pass => self.auto_pass(visit, kind, known, now).await,
            Some(known) => self.tell_owners(visit, kind, &Told::Known(known), now).await,
        }
    }

    /// The known visitor in `frame`, the visit linked to them; `None` for a stranger, and when
    /// the search fails or takes too long (logged), so that the ring goes on.
    async fn recognise(&self, faces: &KnownFaces, visit: &mut Visit, frame: &Frame) -> Option<Recognised> {
        let started = Instant::now();
        let search = async {
            let Some(descriptor) = faces.describe(frame).await? else { return Ok(None) };
            Ok::<_, VisitorError>(faces.recognise(self.store().known_visitors(), &descriptor).await?)
        };
        let found = match tokio::time::timeout(RECOGNITION_TIME_LIMIT, search).await {
            Ok(found) => found,
            Err(_) => {
                let limit = RECOGNITION_TIME_LIMIT.as_secs();
                tracing::warn!(visit = %visit.id, limit, "recognising the visitor took too long; told as unknown");
                return None;
            }
        };
        let linked = match found {
            Ok(Some((id, similarity))) => self.link_known(visit, id, similarity).await,
            other => other.map(|_| None),
        };
        let match_ms = started.elapsed().as_millis() as u64;
        match linked {
            Ok(Some(known)) => {
                let (visitor, similarity) = (known.visitor.id, known.similarity);
                tracing::info!(visit = %visit.id, %visitor, similarity, match_ms, "a known visitor rang");
                Some(known)
            }
            Ok(None) => {
                tracing::debug!(visit = %visit.id, match_ms, "the visitor is not a known visitor");
                None
            }
            Err(e) => {
                let visit = visit.id;
                tracing::warn!(%visit, error = %e, "cannot tell whether the visitor is known; told as unknown");
                None
            }
        }
    }

    /// Makes `visit` known visitor `id`'s; `None` if they were forgotten meanwhile.
    async fn link_known(
        &self,
        visit: &mut Visit,
        id: VisitorId,
        similarity: f32,
    ) -> Result<Option<Recognised>, VisitorError> {
        let visitors = self.store().known_visitors();
        let Some(visitor) = visitors.known_visitor(id).await? else { return Ok(None) };
        visitors.link_visit(visit.id, id, visit.at).await?;
        visit.visitor = Some(id);
        if !has_contact(visit) {
            // As the store did: a passcode can now reach them.
            (visit.email, visit.mobile) = (visitor.email.clone(), visitor.mobile.clone());
        }
        Ok(Some(Recognised { visitor, similarity }))
    }

    /// Approves the visit of a known visitor marked auto-pass and sends a passcode to the contact
    /// kept for them (not what the ring says: a look-alike must not receive it), then tells the
    /// owner. When it cannot be sent, the visit is undecided again and the owner decides.
    async fn auto_pass(
        &self,
        visit: &Visit,
        kind: &RingKind,
        known: &Recognised,
        now: OffsetDateTime,
    ) -> Result<(), VisitorError> {
        if !self.claim(visit.id, VisitStatus::Approved, AUTO_PASS, now).await? {
            return self.tell_owners(visit, kind, &Told::Known(known), now).await;
        }
        let kept = &known.visitor;
        let contacts = [kept.mobile.clone().map(Contact::Sms), kept.email.clone().map(Contact::Email)];
        match self.send_passcode_to(visit, contacts.into_iter().flatten(), now).await? {
            Sent::Delivered { channel, to } => {
                tracing::info!(visit = %visit.id, visitor = %kept.id, %channel, "auto-pass: a passcode was sent");
                self.tell_owners(visit, kind, &Told::AutoPassed { known, channel, to: &to }, now).await
            }
            Sent::NotSent { problem, .. } => {
                self.unclaim(visit.id, VisitStatus::Approved, AUTO_PASS, now).await?;
                self.tell_owners(visit, kind, &Told::AutoPassFailed { known, problem: &problem }, now).await
            }
        }
    }

    /// Keeps the visitor of a visit the owner approved for next time: a new known visitor, or
    /// the one it was recognised as, updated with the visit's name and contact; the visit becomes
    /// theirs, and the face in its photo (if one is found) joins their faces.
    pub async fn keep_visitor(&self, visit: &Visit, now: OffsetDateTime) -> Result<VisitorId, VisitorError> {
        let visitors = self.store().known_visitors();
        let kept = match visit.visitor {
            Some(id) => visitors.known_visitor(id).await?,
            None => None,
        };
        let details = details(visit, kept.as_ref());
        let id = match kept {
            Some(kept) => {
                visitors.update_known_visitor(kept.id, &details).await?;
                kept.id
            }
            None => visitors.add_known_visitor(&details, visit.at).await?.id,
        };
        visitors.link_visit(visit.id, id, visit.at).await?;
        let face = match (&self.faces, self.photo_descriptor(visit).await?) {
            (Some(faces), Some(descriptor)) => {
                Some(visitors.add_visitor_face(id, faces.kind(), &descriptor, now, FACES_KEPT).await?)
            }
            _ => None,
        };
        tracing::info!(visit = %visit.id, visitor = %id, face = ?face, "the visitor is kept for next time");
        Ok(id)
    }

    /// The descriptor of the face in the visit's photo, if there is a photo and a face in it.
    async fn photo_descriptor(&self, visit: &Visit) -> Result<Option<Vec<f32>>, VisitorError> {
        let Some(faces) = &self.faces else { return Ok(None) };
        let Some(path) = visit.photo.as_deref().and_then(|name| self.photos.path_of(name)) else { return Ok(None) };
        let photo = match Frame::read(&path) {
            Ok(photo) => photo,
            Err(e) => {
                let visit = visit.id;
                tracing::warn!(%visit, error = %e, "cannot read the visit's photo; the visitor is kept without a face");
                return Ok(None);
            }
        };
        Ok(faces.describe(&photo).await?)
    }

    /// Deletes a known visitor, their faces, their visits and those visits' photos at once;
    /// returns how many photos went.
    pub async fn forget_visitor(&self, id: VisitorId) -> Result<usize, VisitorError> {
        let photos = self.store().known_visitors().forget_known_visitor(id).await?;
        for photo in &photos {
            self.remove_photo(photo);
        }
        Ok(photos.len())
    }

    /// Follows a new `engine.match_threshold` from the settings page.
    pub fn set_match_threshold(&self, threshold: f32) {
        if let Some(faces) = &self.faces {
            faces.set_threshold(threshold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::VisitId;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    fn visit(name: &str, email: Option<&str>, mobile: Option<&str>) -> Visit {
        Visit {
            id: VisitId(7),
            door: "front".into(),
            at: at(0),
            name: name.into(),
            email: email.map(Into::into),
            mobile: mobile.map(Into::into),
            message: Some("Parcel".into()),
            photo: None,
            status: VisitStatus::Pending,
            decided_by: None,
            decided_at: None,
            visitor: None,
        }
    }

    fn alice(auto_pass: bool) -> Recognised {
        let visitor = KnownVisitor {
            id: VisitorId(3),
            name: "Alice".into(),
            email: Some("alice@example.com".into()),
            mobile: Some("+4915100000001".into()),
            auto_pass,
            last_visit: at(-3 * 86_400 - 600),
            visits: 2,
            faces: 1,
        };
        Recognised { visitor, similarity: 91.0 }
    }

    #[test]
    fn time_since_the_last_visit_reads_as_words() {
        let now = at(0);
        assert_eq!(ago(at(-30), now), "just now");
        assert_eq!(ago(at(60), now), "just now", "a clock a little ahead");
        assert_eq!(ago(at(-60), now), "1 minute ago");
        assert_eq!(ago(at(-59 * 60), now), "59 minutes ago");
        assert_eq!(ago(at(-2 * 3600 - 5), now), "2 hours ago");
        assert_eq!(ago(at(-86_400), now), "1 day ago");
        assert_eq!(ago(at(-45 * 86_400), now), "45 days ago");
    }

    #[test]
    fn the_owner_is_told_who_is_known_and_whether_there_is_anything_to_decide() {
        let bob = visit("Bob", None, Some("+4915100000002"));
        let link = Some("https://door.example.com/visits/7?until=1&sig=00".to_owned());
        let stranger = Told::Stranger.story(&bob, &RingKind::VisitPage, 10, link.clone(), at(0));
        assert_eq!(stranger.subject, "FaceReko: Bob is at front");
        assert!(stranger.sentence.starts_with("Bob rang at front. They wrote: \"Parcel\". Open the link within 10"));

        let known = alice(false);
        let named = Told::Known(&known).story(&bob, &RingKind::VisitPage, 10, link.clone(), at(0));
        assert_eq!(named.subject, "FaceReko: Alice is at front");
        assert!(named.sentence.starts_with("Known visitor: Alice, last here 3 days ago. Bob rang at front."));
        assert!(named.sentence.contains("Open the link within 10 minutes"), "{}", named.sentence);

        let passed = Told::AutoPassed { known: &known, channel: Channel::Sms, to: "+4915100000001" };
        let passed = passed.story(&bob, &RingKind::VisitPage, 10, link.clone(), at(0));
        assert_eq!(passed.subject, "FaceReko: Alice is at front and was sent a passcode");
        assert!(passed.sentence.contains("a passcode was sent to +4915100000001 by sms"), "{}", passed.sentence);
        assert!(!passed.sentence.contains("within 10 minutes"), "nothing to decide: {}", passed.sentence);
        assert_eq!(passed.link, link, "the link still shows the visit");

        let failed = Told::AutoPassFailed { known: &known, problem: "sms is not set up" };
        let failed = failed.story(&bob, &RingKind::VisitPage, 10, None, at(0));
        assert!(
            failed.sentence.contains("could not be sent (sms is not set up). Open the link"),
            "{}",
            failed.sentence
        );
    }

    #[test]
    fn the_owner_may_leave_a_known_visitor_without_contact_but_not_without_a_name() {
        let edited = edited_details(" Alice ", "", " +44 7700 900-123 ").unwrap();
        assert_eq!(edited, VisitorDetails { name: "Alice".into(), email: None, mobile: Some("+447700900123".into()) });
        assert_eq!(edited_details("Alice", "", "").unwrap().mobile, None);
        assert!(edited_details(" ", "", "").unwrap_err().contains("name"));
        assert!(edited_details("Alice", "alice", "").unwrap_err().contains("e-mail"));
        assert!(edited_details("Alice", "", "07700900123").unwrap_err().contains("country code"));
        assert!(edited_details(&"A".repeat(81), "", "").is_err());
    }

    #[test]
    fn an_approved_visit_fills_in_what_it_gives_and_keeps_the_rest() {
        let kept = alice(false).visitor;
        let fresh = details(&visit("Alice B", Some("ab@example.com"), None), Some(&kept));
        assert_eq!(fresh.name, "Alice B");
        assert_eq!(fresh.email.as_deref(), Some("ab@example.com"));
        assert_eq!(fresh.mobile, kept.mobile, "a visit without a number keeps the number kept");
        let nameless = details(&visit("  ", None, None), Some(&kept));
        assert_eq!((nameless.name.as_str(), nameless.email), ("Alice", kept.email.clone()));
        assert_eq!(details(&visit("", None, None), None).name, NO_NAME);
    }
}
