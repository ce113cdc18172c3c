//! Faults worth waking someone for: the card reader or the camera failing, the database away, notifications piling
//! up. A fault is told once it has lasted `notify.fault_after`, and told again when it is over.
//! These notices go straight to the channels, from memory, since the database may be the fault;
//! a notice that cannot go yet is tried again at the next look.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

use super::delivery::{Courier, Outcome, Story};
use crate::store::Recipient;

/// The longest time between two looks at the door's health.
const LOOK_EVERY: Duration = Duration::from_secs(15);
/// Tries of one notice before it is given up (about an hour at one look every 15 s).
const MAX_TRIES: u32 = 240;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Reader,
    Camera,
    Database,
    Backlog,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Reader => "reader",
            Fault::Camera => "camera",
            Fault::Database => "database",
            Fault::Backlog => "backlog",
        }
    }

    /// What is wrong, and what it is once it is over, at `door`.
    fn words(self, door: &str) -> (String, String) {
        match self {
            Fault::Reader => {
                (format!("the card reader at {door} does not answer"), format!("the card reader at {door} works again"))
            }
            Fault::Camera => (format!("the camera at {door} is failing"), format!("the camera at {door} works again")),
            Fault::Database => {
                (format!("the database of {door} cannot be reached"), format!("the database of {door} answers again"))
            }
            Fault::Backlog => {
                (format!("notifications from {door} are piling up"), format!("notifications from {door} go out again"))
            }
        }
    }
}

/// What a look at the door found: each fault there is now, with what it says.
pub type Findings = BTreeMap<Fault, String>;

/// A fault that lasted long enough to be told, or one that is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultNotice {
    pub fault: Fault,
    pub detail: String,
    /// When it was first seen.
    pub since: OffsetDateTime,
    pub over: bool,
}

impl FaultNotice {
    fn story(&self, door: &str, public_url: Option<&str>) -> Story {
        let (wrong, right) = self.fault.words(door);
        let since = self.since.format(&Rfc3339).unwrap_or_default();
        let (subject, sentence) = if self.over {
            (format!("FaceReko: {right}"), format!("FaceReko: {right} (the trouble began at {since})."))
        } else {
            (format!("FaceReko: {wrong}"), format!("FaceReko: {wrong} since {since}: {}.", self.detail))
        };
        Story { subject, sentence, link: public_url.map(|url| url.trim_end_matches('/').to_owned()) }
    }

    /// The same whenever this notice is sent again.
    fn id(&self) -> String {
        let end = if self.over { "-over" } else { "" };
        format!("fault-{}-{}{end}", self.fault.name(), self.since.unix_timestamp())
    }
}

/// When each fault began and whether it was told; driven by the looks the caller makes.
#[derive(Debug)]
pub struct FaultWatch {
    after: Duration,
    open: BTreeMap<Fault, Open>,
}

#[derive(Debug)]
struct Open {
    began: Instant,
    since: OffsetDateTime,
    detail: String,
    told: bool,
}

impl FaultWatch {
    /// Tells faults once they have lasted `after`.
    pub fn new(after: Duration) -> Self {
        Self { after, open: BTreeMap::new() }
    }

    /// What to tell after a look that found `findings` at `now` (`wall` on the calendar).
    pub fn look(&mut self, findings: &Findings, now: Instant, wall: OffsetDateTime) -> Vec<FaultNotice> {
        let mut notices = Vec::new();
        self.open.retain(|&fault, open| {
            let still = findings.contains_key(&fault);
            if !still && open.told {
                notices.push(FaultNotice { fault, detail: open.detail.clone(), since: open.since, over: true });
            }
            still
        });
        for (&fault, detail) in findings {
            let open = self.open.entry(fault).or_insert_with(|| Open {
                began: now,
                since: wall,
                detail: detail.clone(),
                told: false,
            });
            if !open.told && now.duration_since(open.began) >= self.after {
                open.told = true;
                notices.push(FaultNotice { fault, detail: detail.clone(), since: open.since, over: false });
            }
        }
        notices
    }
}

/// A notice on its way to one recipient.
struct Pending {
    courier: Arc<dyn Courier>,
    to: String,
    story: Story,
    id: String,
    tries: u32,
}

/// Looks at the door with `look` until the task is aborted and tells of its faults, through
/// `couriers`, whoever `recipients` names at the time (the rules can change while it runs).
pub async fn watch<F, L, R>(
    couriers: Vec<Arc<dyn Courier>>,
    mut recipients: R,
    door: String,
    public_url: Option<String>,
    after: Duration,
    mut look: L,
) where
    F: Future<Output = Findings>,
    L: FnMut() -> F,
    R: FnMut() -> Vec<Recipient>,
{
    let mut faults = FaultWatch::new(after);
    let mut pending: Vec<Pending> = Vec::new();
    let mut ticks = tokio::time::interval((after / 2).clamp(Duration::from_millis(200), LOOK_EVERY));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let findings = look().await;
        for notice in faults.look(&findings, Instant::now(), OffsetDateTime::now_utc()) {
            if notice.over {
                tracing::info!(fault = notice.fault.name(), "a fault is over");
            } else {
                tracing::warn!(fault = notice.fault.name(), detail = %notice.detail, "a fault has lasted; telling people");
            }
            let story = notice.story(&door, public_url.as_deref());
            let id = notice.id();
            for recipient in recipients() {
                let Some(courier) = couriers.iter().find(|c| c.channel() == recipient.channel) else { continue };
                let (courier, to) = (Arc::clone(courier), recipient.to.clone());
                pending.push(Pending { courier, to, story: story.clone(), id: id.clone(), tries: 0 });
            }
        }
        let mut waiting = Vec::new();
        for mut notice in pending.drain(..) {
            notice.tries += 1;
            match notice.courier.send(&notice.to, &notice.story, None, &notice.id).await {
                Outcome::Delivered(_) => {}
                Outcome::Failed(problem) => {
                    tracing::error!(to = %notice.to, %problem, "a fault notice was refused");
                }
                Outcome::Retry(problem) if notice.tries >= MAX_TRIES => {
                    tracing::error!(to = %notice.to, %problem, "giving up on a fault notice");
                }
                Outcome::Retry(_) => waiting.push(notice),
            }
        }
        pending = waiting;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fault_is_told_once_it_lasts_and_again_when_it_is_over() {
        let mut watch = FaultWatch::new(Duration::from_secs(60));
        let wall = OffsetDateTime::UNIX_EPOCH;
        let camera = Findings::from([(Fault::Camera, "no frames".to_owned())]);
        assert!(watch.look(&camera, Instant::now(), wall).is_empty(), "not at once");
        tokio::time::advance(Duration::from_secs(30)).await;
        // A hiccup of the database, over before it counted: nobody hears of it.
        let both = Findings::from([(Fault::Camera, "no frames".to_owned()), (Fault::Database, "away".to_owned())]);
        assert!(watch.look(&both, Instant::now(), wall).is_empty());
        tokio::time::advance(Duration::from_secs(30)).await;
        let told = watch.look(&camera, Instant::now(), wall);
        assert_eq!(told.len(), 1);
        assert_eq!((told[0].fault, told[0].over, told[0].detail.as_str()), (Fault::Camera, false, "no frames"));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(watch.look(&camera, Instant::now(), wall).is_empty(), "told once");
        let over = watch.look(&Findings::new(), Instant::now(), wall);
        assert_eq!((over.len(), over[0].over), (1, true));
        let story = over[0].story("front", Some("https://door.example.com/"));
        assert_eq!(story.subject, "FaceReko: the camera at front works again");
        assert_eq!(story.link.as_deref(), Some("https://door.example.com"));
        assert_ne!(over[0].id(), told[0].id(), "the two notices are told apart");
    }
}
