//! Enrolment: people, their cards and faces, kept consistent between the store and the engine.
//! Shared by the CLI and the web app.
//!
//! A removal deletes the face from our database first, which is what stops it opening the door
//! (engines only match faces in our gallery), and then the engine's copy. A copy the engine cannot
//! delete now (the cloud is away) is noted in the store and deleted later by
//! [`delete_leftovers`], at start and by `facereko collection sync`.

use crate::access::{Person, PersonId};
use crate::engine::{EngineError, FaceEngine, FaceTemplate, StoredFace, hybrid};
use crate::frame::Frame;
use crate::photos::{PhotoError, Photos};
use crate::store::{EnrolledFace, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("no face found")]
    NoFace,
    #[error("{0} faces found; use a picture with exactly one face")]
    SeveralFaces(usize),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Photo(#[from] PhotoError),
    #[error(
        "the face engine could not delete its copy of {kept} removed face(s) yet ({error}); the door no longer \
         recognises them, and the copies are deleted when the daemon next starts or by `facereko collection sync`"
    )]
    KeptByEngine { kept: usize, error: EngineError },
}

const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("a person needs a name")]
    Empty,
    #[error("the name is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("the name has control characters (tabs, line breaks)")]
    ControlCharacters,
}

/// A person's name as we store it: trimmed, printable, at most 64 characters.
pub fn clean_name(name: &str) -> Result<&str, NameError> {
    let name = name.trim();
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.chars().count() > MAX_NAME_CHARS {
        Err(NameError::TooLong)
    } else if name.chars().any(char::is_control) {
        Err(NameError::ControlCharacters)
    } else {
        Ok(name)
    }
}

/// Adds a person after checking the name.
pub async fn add_person(store: &dyn Store, name: &str) -> Result<Person, EnrolError> {
    Ok(store.people().add_person(clean_name(name)?).await?)
}

/// The person called `name`, created if there is none yet; `true` when created now.
pub async fn person_named(store: &dyn Store, name: &str) -> Result<(Person, bool), EnrolError> {
    let name = clean_name(name)?;
    match store.people().person_by_name(name).await? {
        Some(person) => Ok((person, false)),
        None => Ok((store.people().add_person(name).await?, true)),
    }
}

/// Enrols the one face in `picture` for `person`; returns the new face's id. The picture is kept
/// (in `photos`) so that [`reindex`] can describe the face again with another embedder.
pub async fn enrol_face(
    store: &dyn Store,
    engine: &dyn FaceEngine,
    photos: &Photos,
    person: &Person,
    picture: &Frame,
) -> Result<i64, EnrolError> {
    match engine.detect(picture).await?.len() {
        0 => return Err(EnrolError::NoFace),
        1 => {}
        n => return Err(EnrolError::SeveralFaces(n)),
    }
    engine.check_enrolment(picture).await?;
    let template = engine.enroll(person.id, picture).await?;
    // Do not leave a face behind in the engine that our database does not know about.
    let forget = async || {
        if let Err(e) = engine.forget(&template).await {
            tracing::warn!(error = %e, "cannot remove the face from the engine after a failed save");
        }
    };
    let photo = match photos.save_face(picture) {
        Ok(photo) => photo,
        Err(e) => {
            forget().await;
            return Err(e.into());
        }
    };
    let id = match store.people().add_face(person.id, engine.template_kind(), &template).await {
        Ok(id) => id,
        Err(e) => {
            forget().await;
            remove_photo(photos, Some(&photo));
            return Err(e.into());
        }
    };
    if let Err(e) = store.people().set_face_photo(id, &photo).await {
        // The face works; only reindexing it later will need a new picture.
        tracing::warn!(face = id, error = %e, "cannot record the enrolment photo of the face");
        remove_photo(photos, Some(&photo));
    }
    Ok(id)
}

fn remove_photo(photos: &Photos, photo: Option<&str>) {
    if let Some(photo) = photo
        && let Err(e) = photos.remove(photo)
    {
        tracing::warn!(error = %e, "cannot remove an enrolment photo");
    }
}

/// A face that [`reindex`] could not describe again: it has no enrolment photo (enrolled before
/// photos were kept), or the photo could not be read or shows no face any more.
#[derive(Debug, Clone, PartialEq)]
pub struct NotReindexed {
    pub face: i64,
    pub person: PersonId,
    /// What made its template (`local/dlib`, …).
    pub kind: String,
    pub why: String,
}

/// What [`reindex`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reindexed {
    /// Faces described again with the engine's embedder.
    pub reindexed: usize,
    /// Faces that already were the engine's kind.
    pub current: usize,
    /// Faces to enrol again with a new picture.
    pub not_reindexed: Vec<NotReindexed>,
}

/// Faces of `engine`'s engine that another embedder described, the ones not yet the engine's kind.
pub async fn faces_to_reindex(
    store: &dyn Store,
    engine_name: &str,
    kind: &str,
) -> Result<Vec<EnrolledFace>, StoreError> {
    let mut faces = store.people().faces_of_engine(engine_name).await?;
    faces.retain(|face| face.kind != kind);
    Ok(faces)
}

/// Describes every face of the engine that another embedder described again, from its kept
/// enrolment photo, with the engine's embedder; `progress(done, total)` after each face.
pub async fn reindex(
    store: &dyn Store,
    engine: &dyn FaceEngine,
    photos: &Photos,
    mut progress: impl FnMut(usize, usize),
) -> Result<Reindexed, EnrolError> {
    let kind = engine.template_kind();
    let all = store.people().faces_of_engine(engine.name()).await?;
    let mut report = Reindexed { current: all.iter().filter(|f| f.kind == kind).count(), ..Reindexed::default() };
    let stale: Vec<EnrolledFace> = all.into_iter().filter(|f| f.kind != kind).collect();
    let Some(local) = engine.on_device() else {
        return Ok(report);
    };
    for (done, face) in stale.iter().enumerate() {
        let not_reindexed =
            |why: String| NotReindexed { face: face.face.id, person: face.face.person, kind: face.kind.clone(), why };
        let picture = match face.photo.as_deref().and_then(|photo| photos.path_of(photo)) {
            None => Err("enrolled before photos were kept".to_owned()),
            Some(path) => Frame::read(&path).map_err(|e| e.to_string()),
        };
        let described = match picture {
            Ok(picture) => local.descriptor(&picture).await.map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        match described {
            Ok(descriptor) => {
                let template = engine.with_descriptor(&face.face.template, descriptor);
                store.people().replace_template(face.face.id, kind, &template).await?;
                report.reindexed += 1;
            }
            Err(why) => report.not_reindexed.push(not_reindexed(why)),
        }
        progress(done + 1, stale.len());
    }
    Ok(report)
}

/// Removes a person with their cards and faces, in the engine too. Returns how many faces went.
/// Their enrolment photos go too.
pub async fn remove_person(
    store: &dyn Store,
    engine: &dyn FaceEngine,
    photos: &Photos,
    person: &Person,
) -> Result<usize, EnrolError> {
    let kept: Vec<String> =
        store.people().person_faces(person.id).await?.into_iter().filter_map(|face| face.photo).collect();
    let faces = store.removals().remove_person(person.id).await?;
    kept.iter().for_each(|photo| remove_photo(photos, Some(photo)));
    forget(store, engine, &faces).await?;
    Ok(faces.len())
}

/// Removes one enrolled face with its enrolment photo, in the engine too.
pub async fn remove_face(
    store: &dyn Store,
    engine: &dyn FaceEngine,
    photos: &Photos,
    face: i64,
) -> Result<(), EnrolError> {
    let photo = store.people().face_photo(face).await?;
    let removed = store.removals().remove_face(face).await?;
    remove_photo(photos, photo.as_deref());
    forget(store, engine, &[removed]).await
}

/// Deletes the engine's copies of faces just removed from the store. Once the engine fails, the
/// rest are not tried (each try would wait for the same timeout): they are all noted for later.
async fn forget(store: &dyn Store, engine: &dyn FaceEngine, faces: &[StoredFace]) -> Result<(), EnrolError> {
    let mut failed: Option<EngineError> = None;
    let mut kept = 0;
    for face in faces {
        if failed.is_none() {
            match engine.forget(&face.template).await {
                Ok(()) => continue,
                Err(e) => failed = Some(e),
            }
        }
        kept += 1;
        // Only a collection's FaceId is kept: a hybrid template also holds our descriptor.
        if let FaceTemplate::Remote(template) = &face.template
            && let Err(e) = store.leftovers().add_leftover(hybrid::cloud_face_id(template)).await
        {
            tracing::error!(face = face.id, error = %e, "cannot note the engine's copy of a removed face for deletion; \
                `facereko collection sync` deletes it");
        }
    }
    match failed {
        None => Ok(()),
        Some(error) => {
            tracing::warn!(kept, %error, "the face engine kept copies of removed faces; noted for deletion later");
            Err(EnrolError::KeptByEngine { kept, error })
        }
    }
}

/// Deletes the engine's copies that earlier removals could not; returns how many went. Stops at
/// the first failure (the engine is still away), leaving the rest noted for the next try.
pub async fn delete_leftovers(store: &dyn Store, engine: &dyn FaceEngine) -> Result<usize, EnrolError> {
    let mut deleted = 0;
    for face_id in store.leftovers().leftovers().await? {
        engine.forget(&FaceTemplate::Remote(face_id.clone())).await?;
        store.leftovers().remove_leftover(&face_id).await?;
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(clean_name("  Alice Smith ").unwrap(), "Alice Smith");
        assert!(matches!(clean_name("   "), Err(NameError::Empty)));
        assert!(matches!(clean_name("a\tb"), Err(NameError::ControlCharacters)));
        assert!(matches!(clean_name(&"x".repeat(65)), Err(NameError::TooLong)));
        assert!(clean_name(&"é".repeat(64)).is_ok(), "the limit counts characters, not bytes");
    }
}
