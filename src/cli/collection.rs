//! `facereko collection create|list|delete|sync`: the Rekognition collection of the
//! `rekognition` engine (`[engine.rekognition]`), on AWS or on FaceReko's own API.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context, Result};
use facereko::config::Config;
use facereko::engine::FaceTemplate;
use facereko::engine::hybrid;
use facereko::engine::rekognition::{self, RekognitionEngine};
use facereko::{enrolment, store};

use super::CollectionCommand;

pub async fn collection(config: &Config, command: &CollectionCommand) -> Result<ExitCode> {
    let engine = RekognitionEngine::new(config.engine.rekognition.clone(), None);
    let client = engine.client().await;
    let id = engine.collection_id();
    match command {
        CollectionCommand::Create => {
            let created = client
                .create_collection()
                .collection_id(id)
                .send()
                .await
                .with_context(|| format!("cannot create the collection {id:?}"))?;
            println!("created {id} ({})", created.collection_arn().unwrap_or("no ARN given"));
        }
        CollectionCommand::List => {
            let mut pages = client.list_collections().into_paginator().items().send();
            while let Some(name) = pages.next().await {
                let name = name.context("cannot list the collections")?;
                println!("{name}{}", if name == id { "  (engine.rekognition.collection_id)" } else { "" });
            }
        }
        CollectionCommand::Delete => {
            client
                .delete_collection()
                .collection_id(id)
                .send()
                .await
                .with_context(|| format!("cannot delete the collection {id:?}"))?;
            println!("deleted {id} and every face in it");
        }
        CollectionCommand::Sync { dry_run } => return sync(config, &engine, *dry_run).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes faces in the collection that no enrolled person owns (first those that removals noted
/// for deletion), and reports enrolled faces the collection has lost (those people must be
/// enrolled again).
async fn sync(config: &Config, engine: &RekognitionEngine, dry_run: bool) -> Result<ExitCode> {
    let store = store::open(&config.database, &config.data_dir).await.context("cannot open the database")?;
    if !dry_run {
        let deleted = enrolment::delete_leftovers(store.as_ref(), engine)
            .await
            .context("cannot delete the faces that removals left in the collection")?;
        if deleted > 0 {
            println!("deleted {deleted} face(s) that removals had left in the collection");
        }
    }
    // The faces of whichever cloud engine is configured; `hybrid` keeps the same FaceIds.
    let engine_name = if config.engine.kind == hybrid::NAME { hybrid::NAME } else { rekognition::NAME };
    let (_, ours) = store.door().faces(engine_name).await?;
    let ours: BTreeSet<String> = ours
        .into_iter()
        .filter_map(|face| match face.template {
            FaceTemplate::Remote(template) => Some(hybrid::cloud_face_id(&template).to_owned()),
            FaceTemplate::Descriptor(_) => None,
        })
        .collect();
    let id = engine.collection_id();
    let mut theirs = BTreeSet::new();
    let mut pages = engine.client().await.list_faces().collection_id(id).into_paginator().items().send();
    while let Some(face) = pages.next().await {
        let face = face.with_context(|| format!("cannot list the faces of {id:?}"))?;
        if let Some(face_id) = face.face_id() {
            theirs.insert(face_id.to_owned());
        }
    }
    let orphans: Vec<String> = theirs.difference(&ours).cloned().collect();
    let lost: Vec<&String> = ours.difference(&theirs).collect();
    println!("{} face(s) enrolled here, {} in the collection {id}", ours.len(), theirs.len());
    if !orphans.is_empty() {
        if dry_run {
            println!("would delete {} face(s) that no enrolled person owns", orphans.len());
        } else {
            for chunk in orphans.chunks(1000) {
                engine
                    .client()
                    .await
                    .delete_faces()
                    .collection_id(id)
                    .set_face_ids(Some(chunk.to_vec()))
                    .send()
                    .await
                    .context("cannot delete faces")?;
            }
            println!("deleted {} face(s) that no enrolled person owns", orphans.len());
        }
    }
    if lost.is_empty() {
        println!("every enrolled face is in the collection");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} enrolled face(s) are missing from the collection; enrol those people again (`facereko person \
             list` shows them): {}",
            lost.len(),
            lost.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}
