//! Enrolment: people, their cards and faces, kept consistent between the store and the engine.
//! Shared by the CLI and (later) the web app.

use crate::access::Person;
use crate::engine::{EngineError, FaceEngine};
use crate::frame::Frame;
use crate::store::{Store, StoreError};

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

/// Enrols the one face in `picture` for `person`; returns the new face's id.
pub async fn enrol_face(
    store: &dyn Store,
    engine: &dyn FaceEngine,
    person: &Person,
    picture: &Frame,
) -> Result<i64, EnrolError> {
    match engine.detect(picture).await?.len() {
        0 => return Err(EnrolError::NoFace),
        1 => {}
        n => return Err(EnrolError::SeveralFaces(n)),
    }
    let template = engine.enroll(person.id, picture).await?;
    match store.people().add_face(person.id, engine.name(), &template).await {
        Ok(id) => Ok(id),
        Err(e) => {
            // Do not leave a face behind in the engine that our database does not know about.
            if let Err(forget) = engine.forget(&template).await {
                tracing::warn!(error = %forget, "cannot remove the face from the engine after a failed save");
            }
            Err(e.into())
        }
    }
}

/// Removes a person with their cards and faces, in the engine too. Returns how many faces went.
pub async fn remove_person(store: &dyn Store, engine: &dyn FaceEngine, person: &Person) -> Result<usize, EnrolError> {
    let faces = store.people().remove_person(person.id).await?;
    for face in &faces {
        engine.forget(&face.template).await?;
    }
    Ok(faces.len())
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
