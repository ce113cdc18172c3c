//! The visitor's side of the door: a ring is kept with the door camera's photo and the owner is
//! told with a signed link; the owner's decision is taken once, and a passcode or a QR pass goes
//! to the visitor. Visitors the owner let in are kept for next time ([`known`]).

mod known;

use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::broadcast;

use super::faces::KnownFaces;
use super::{Contact, Passes, VisitorError, qr_png};
use crate::card::CardUid;
use crate::frame::Frame;
use crate::notify::VisitorNotice;
use crate::notify::delivery::{Courier, Outcome, Story};
use crate::photos::Photos;
use crate::store::{Channel, NewVisit, Visit, VisitId, VisitStatus, VisitorDetails};

use known::Told;
pub use known::{Recognised, edited_details};

/// What the approve link allows.
const DECIDE: &str = "decide";
/// Longest name and message a visitor may leave.
const MAX_NAME: usize = 80;
const MAX_MESSAGE: usize = 500;

/// How a ring came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingKind {
    /// On the visitor page, with a name and a way to reach the visitor.
    VisitPage,
    /// The doorbell button: nobody said who they are, nor how to reach them.
    Bell,
    /// A card nobody enrolled, tapped while the door camera saw a face.
    UnknownCard(CardUid),
}

impl RingKind {
    /// How MQTT notices name it.
    pub fn as_str(&self) -> &'static str {
        match self {
            RingKind::VisitPage => "visit_page",
            RingKind::Bell => "bell",
            RingKind::UnknownCard(_) => "unknown_card",
        }
    }
}

/// What a visitor says about themselves when they ring, checked; or what the door knows of a
/// ring without words (the bell, an unknown card).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub message: Option<String>,
    pub kind: RingKind,
}

impl Ring {
    /// A press of the doorbell button.
    pub fn bell() -> Self {
        Self::without_words("Someone at the door".into(), RingKind::Bell)
    }

    /// An unknown card tapped with a face in view. The owner's messages show it masked, as they
    /// show cards in access notifications; the history has the whole number.
    pub fn unknown_card(card: CardUid) -> Self {
        Self::without_words(format!("Unknown card {}", card.masked()), RingKind::UnknownCard(card))
    }

    /// A ring with no contact: the owner can open or turn away, but no passcode can reach anyone.
    fn without_words(name: String, kind: RingKind) -> Self {
        Self { name, email: None, mobile: None, message: None, kind }
    }

    /// The visitor's words, tidied; the error says what to change.
    pub fn new(name: &str, email: &str, mobile: &str, message: &str) -> Result<Self, String> {
        let VisitorDetails { name, email, mobile } = edited_details(name, email, mobile)?;
        if email.is_none() && mobile.is_none() {
            return Err("Please give an e-mail address or a mobile number, so a passcode can reach you.".into());
        }
        let message = Some(message.trim().to_owned()).filter(|text| !text.is_empty());
        if message.as_deref().is_some_and(|text| text.chars().count() > MAX_MESSAGE) {
            return Err(format!("Please keep the message under {MAX_MESSAGE} characters."));
        }
        Ok(Self { name, email, mobile, message, kind: RingKind::VisitPage })
    }
}

/// Whether the visitor left a way to reach them: without one, no passcode or pass can be sent.
pub fn has_contact(visit: &Visit) -> bool {
    visit.email.is_some() || visit.mobile.is_some()
}

/// How a passcode or a QR pass reached the visitor, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Sent on `channel` to `to`.
    Delivered { channel: Channel, to: String },
    /// It could not be sent; the owner may pass the code (a passcode, or a QR pass's token) on
    /// themselves.
    NotSent { code: String, problem: String },
}

/// What the hourly tidy-up deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tidied {
    /// Known visitors past their retention period, with their faces.
    pub visitors: u64,
    /// Photos of the visits deleted with them or for their own age.
    pub photos: usize,
}

/// Takes rings, tells the owner and carries out the owner's decisions.
#[derive(Clone)]
pub struct Desk {
    passes: Passes,
    couriers: Vec<Arc<dyn Courier>>,
    photos: Photos,
    public_url: Option<String>,
    /// Rings, for the MQTT publisher.
    notices: broadcast::Sender<VisitorNotice>,
    /// Recognises known visitors when they ring; without the on-device engine, nobody is.
    faces: Option<KnownFaces>,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channels: Vec<Channel> = self.couriers.iter().map(|courier| courier.channel()).collect();
        f.debug_struct("Desk").field("door", &self.passes.door).field("channels", &channels).finish()
    }
}

impl Desk {
    pub fn new(passes: Passes, couriers: Vec<Arc<dyn Courier>>, photos: Photos, public_url: Option<String>) -> Self {
        let public_url = public_url.map(|url| url.trim_end_matches('/').to_owned());
        let notices = broadcast::Sender::new(16);
        Self { passes, couriers, photos, public_url, notices, faces: None }
    }

    /// This desk, recognising known visitors with `faces`.
    pub fn with_known_faces(self, faces: KnownFaces) -> Self {
        Self { faces: Some(faces), ..self }
    }

    /// The notices of rings as they come, for the MQTT publisher.
    pub fn notices(&self) -> broadcast::Receiver<VisitorNotice> {
        self.notices.subscribe()
    }

    pub fn passes(&self) -> &Passes {
        &self.passes
    }

    fn store(&self) -> &dyn crate::store::Store {
        self.passes.store.as_ref()
    }

    /// Keeps the ring with its photo, recognises a known visitor in it and tells the owner (or,
    /// for a known visitor marked auto-pass, sends a passcode first). Only the photo failing to
    /// save or the visit failing to be stored is an error: a message that did not go is logged.
    pub async fn ring(&self, ring: Ring, frame: Option<&Frame>, now: OffsetDateTime) -> Result<Visit, VisitorError> {
        let photo = match frame.map(|frame| self.photos.save(frame, now)) {
            Some(Ok(name)) => Some(name),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot keep the visitor's photo; the visit is kept without it");
                None
            }
            None => None,
        };
        let Ring { name, email, mobile, message, kind } = ring;
        let new = NewVisit { door: self.passes.door.clone(), at: now, name, email, mobile, message, photo };
        let mut visit = self.store().visits().add_visit(&new).await?;
        tracing::info!(visit = %visit.id, door = %visit.door, rang = kind.as_str(), "a visitor rang");
        self.welcome(&mut visit, &kind, frame, now).await?;
        Ok(visit)
    }

    /// The signed link that decides `visit`, valid for the approve-link lifetime from `now`.
    pub async fn decide_link(&self, visit: VisitId, now: OffsetDateTime) -> Result<Option<String>, VisitorError> {
        let Some(url) = &self.public_url else { return Ok(None) };
        Ok(Some(format!("{url}{}", self.decide_path(visit, now).await?)))
    }

    /// The path and signed query that decide `visit`.
    pub async fn decide_path(&self, visit: VisitId, now: OffsetDateTime) -> Result<String, VisitorError> {
        let until = (now + self.passes.config.approve_link_lifetime).unix_timestamp();
        let signature = self.passes.key().await?.sign_link(visit, DECIDE, until);
        Ok(format!("/visits/{visit}?until={until}&sig={signature}"))
    }

    /// Whether a link's `until` and `sig` allow deciding `visit` now.
    pub async fn link_holds(&self, visit: VisitId, until: i64, signature: &str, now: OffsetDateTime) -> bool {
        match self.passes.key().await {
            Ok(key) => key.link_holds(visit, DECIDE, until, signature, now),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check an approve link");
                false
            }
        }
    }

    async fn tell_owners(
        &self,
        visit: &Visit,
        kind: &RingKind,
        told: &Told<'_>,
        now: OffsetDateTime,
    ) -> Result<(), VisitorError> {
        let link = self.decide_link(visit.id, now).await?;
        let minutes = self.passes.config.approve_link_lifetime.as_secs() / 60;
        let story = told.story(visit, kind, minutes, link, now);
        let notice = VisitorNotice {
            visit: visit.id.0,
            time: visit.at.format(&Rfc3339).unwrap_or_default(),
            door: visit.door.clone(),
            name: visit.name.clone(),
            message: visit.message.clone(),
            photo: visit.photo.clone(),
            link: story.link.clone(),
            kind: kind.as_str().to_owned(),
            known_visitor: told.known().map(|known| known.visitor.name.clone()),
            passcode_sent: matches!(told, Told::AutoPassed { .. }),
        };
        // Nobody listening (MQTT off) is the usual case.
        let _ = self.notices.send(notice);
        let photo = visit.photo.as_deref().and_then(|name| self.photos.path_of(name));
        for owner in self.passes.config.owners() {
            let id = format!("visit-{}-{}", visit.id, now.unix_timestamp());
            if let Err(problem) = self.send(&owner, &story, photo.as_deref(), &id).await {
                tracing::warn!(visit = %visit.id, %problem, "cannot tell the owner of a visitor");
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        to: &Contact,
        story: &Story,
        photo: Option<&std::path::Path>,
        id: &str,
    ) -> Result<Channel, String> {
        let (channel, address) = match to {
            Contact::Email(address) => (Channel::Email, address),
            Contact::Sms(number) => (Channel::Sms, number),
        };
        let Some(courier) = self.couriers.iter().find(|courier| courier.channel() == channel) else {
            return Err(format!("{channel} is not set up"));
        };
        match courier.send(address, story, photo, id).await {
            Outcome::Delivered(_) => Ok(channel),
            Outcome::Retry(problem) | Outcome::Failed(problem) => Err(problem),
        }
    }

    /// Takes the owner's decision on a pending visit; `false` when it was already decided.
    pub async fn claim(
        &self,
        visit: VisitId,
        to: VisitStatus,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<bool, VisitorError> {
        Ok(self.store().visits().move_visit(visit, VisitStatus::Pending, to, by, now).await?)
    }

    /// Gives a claimed decision back, when carrying it out failed (the door was busy).
    pub async fn unclaim(
        &self,
        visit: VisitId,
        from: VisitStatus,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<(), VisitorError> {
        self.store().visits().move_visit(visit, from, VisitStatus::Pending, by, now).await?;
        Ok(())
    }

    /// Sends a new passcode to the visitor of an approved visit: by text message when they gave a
    /// mobile number and text messages are set up, else by e-mail.
    pub async fn send_passcode(&self, visit: &Visit, now: OffsetDateTime) -> Result<Sent, VisitorError> {
        let contacts = [visit.mobile.clone().map(Contact::Sms), visit.email.clone().map(Contact::Email)];
        self.send_passcode_to(visit, contacts.into_iter().flatten(), now).await
    }

    /// Sends a new passcode for `visit` to the first of `contacts` it reaches.
    async fn send_passcode_to(
        &self,
        visit: &Visit,
        contacts: impl IntoIterator<Item = Contact>,
        now: OffsetDateTime,
    ) -> Result<Sent, VisitorError> {
        let code = self.passes.issue_passcode(visit, now).await?;
        let until = now + self.passes.config.passcode_lifetime;
        let door_page = self.public_url.as_deref().map(|url| format!("{url}/door"));
        let story = Story {
            subject: format!("Your passcode for {}", visit.door),
            sentence: format!(
                "Your passcode for {} is {code}. It opens the door once, until {:02}:{:02} UTC, on the door page.",
                visit.door,
                until.hour(),
                until.minute()
            ),
            link: door_page,
        };
        let mut problems = Vec::new();
        for contact in contacts {
            let id = format!("pass-{}-{}", visit.id, now.unix_timestamp_nanos());
            match self.send(&contact, &story, None, &id).await {
                Ok(channel) => {
                    let to = match contact {
                        Contact::Email(to) | Contact::Sms(to) => to,
                    };
                    tracing::info!(visit = %visit.id, %channel, "passcode sent to the visitor");
                    return Ok(Sent::Delivered { channel, to });
                }
                Err(problem) => problems.push(problem),
            }
        }
        let problem =
            if problems.is_empty() { "the visitor left no way to reach them".into() } else { problems.join("; ") };
        tracing::warn!(visit = %visit.id, %problem, "cannot send the passcode to the visitor");
        Ok(Sent::NotSent { code, problem })
    }

    /// E-mails the visitor of an approved visit a QR pass to show to the door camera, good
    /// `visitors.qr_uses` times within `visitors.qr_lifetime`.
    pub async fn send_qr_pass(&self, visit: &Visit, now: OffsetDateTime) -> Result<Sent, VisitorError> {
        let config = &self.passes.config;
        let Some(email) = visit.email.clone() else {
            tracing::warn!(visit = %visit.id, "cannot send a QR pass: the visitor left no e-mail address");
            let problem = "the visitor left no e-mail address".to_owned();
            return Ok(Sent::NotSent { code: String::new(), problem });
        };
        let token = self.passes.issue_qr(visit, config.qr_lifetime, config.qr_uses, now).await?;
        let until = now + config.qr_lifetime;
        let times = match config.qr_uses {
            1 => "once".to_owned(),
            uses => format!("up to {uses} times"),
        };
        let story = Story {
            subject: format!("Your QR pass for {}", visit.door),
            sentence: format!(
                "Show this QR code to the door camera at {}, with your screen bright: it opens the door {times}, \
                 until {} {:02}:{:02} UTC.",
                visit.door,
                until.date(),
                until.hour(),
                until.minute()
            ),
            link: None,
        };
        // The mail takes its picture from a file: one in the photos folder, deleted once sent.
        let png = qr_png(&token)?;
        let frame = Frame::from_bytes(png, "QR pass").map_err(|e| VisitorError::QrImage(e.to_string()))?;
        let name = self.photos.save(&frame, now).map_err(|e| VisitorError::QrImage(e.to_string()))?;
        let id = format!("qr-{}-{}", visit.id, now.unix_timestamp_nanos());
        let contact = Contact::Email(email.clone());
        let sent = self.send(&contact, &story, self.photos.path_of(&name).as_deref(), &id).await;
        self.remove_photo(&name);
        match sent {
            Ok(channel) => {
                tracing::info!(visit = %visit.id, "QR pass e-mailed to the visitor");
                Ok(Sent::Delivered { channel, to: email })
            }
            Err(problem) => {
                tracing::warn!(visit = %visit.id, %problem, "cannot send the QR pass to the visitor");
                Ok(Sent::NotSent { code: token.to_string(), problem })
            }
        }
    }

    /// Deletes a visit, its passes and its photo at once.
    pub async fn forget(&self, visit: VisitId) -> Result<(), VisitorError> {
        if let Some(photo) = self.store().visits().forget_visit(visit).await? {
            self.remove_photo(&photo);
        }
        Ok(())
    }

    /// Marks expired the visits nobody decided while their link held, and the approved ones whose
    /// passes can no longer open; returns how many.
    pub async fn expire(&self, now: OffsetDateTime) -> Result<u64, VisitorError> {
        let undecided_before = now - self.passes.config.approve_link_lifetime;
        Ok(self.store().visits().expire_visits(undecided_before, now).await?)
    }

    /// Deletes known visitors last here before the retention period, with their faces, visits
    /// and photos, and every other visit older than that with its photo.
    pub async fn forget_old(&self, now: OffsetDateTime) -> Result<Tidied, VisitorError> {
        let cutoff = now - self.passes.config.retention;
        let (visitors, mut photos) = self.store().known_visitors().forget_visitors_before(cutoff).await?;
        photos.extend(self.store().visits().forget_visits_before(cutoff).await?);
        for photo in &photos {
            self.remove_photo(photo);
        }
        Ok(Tidied { visitors, photos: photos.len() })
    }

    fn remove_photo(&self, photo: &str) {
        if let Err(e) = self.photos.remove(photo) {
            tracing::warn!(error = %e, "cannot delete a visitor's photo");
        }
    }

    pub fn photos(&self) -> &Photos {
        &self.photos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_needs_a_name_and_a_way_to_reach_the_visitor() {
        let ring = Ring::new("  Bob  ", "bob@example.com", "+44 7700 900-123", " Parcel ").unwrap();
        assert_eq!(ring.name, "Bob");
        assert_eq!(ring.mobile.as_deref(), Some("+447700900123"));
        assert_eq!(ring.message.as_deref(), Some("Parcel"));
        assert!(Ring::new("", "bob@example.com", "", "").unwrap_err().contains("name"));
        assert!(Ring::new("Bob", "", "", "").unwrap_err().contains("e-mail address or a mobile number"));
        assert!(Ring::new("Bob", "bob", "", "").unwrap_err().contains("e-mail"));
        assert!(Ring::new("Bob", "", "07700900123", "").unwrap_err().contains("country code"));
        assert!(Ring::new(&"B".repeat(81), "bob@example.com", "", "").is_err());
        assert!(Ring::new("Bob", "bob@example.com", "", &"x".repeat(501)).is_err());
        assert!(Ring::new("Bob\u{7}", "bob@example.com", "", "").is_err());
        assert_eq!(ring.kind, RingKind::VisitPage);
    }

    #[test]
    fn the_bell_and_an_unknown_card_ring_without_a_contact() {
        let bell = Ring::bell();
        assert_eq!(
            (bell.name.as_str(), bell.email.as_deref(), bell.mobile.as_deref()),
            ("Someone at the door", None, None)
        );
        let card: CardUid = "04a1b2c3".parse().unwrap();
        let tapped = Ring::unknown_card(card.clone());
        assert_eq!(tapped.name, "Unknown card ****B2C3", "masked, as in access notifications");
        assert_eq!(tapped.kind, RingKind::UnknownCard(card));
        assert_eq!((tapped.kind.as_str(), bell.kind.as_str()), ("unknown_card", "bell"));
    }
}
