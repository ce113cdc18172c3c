//! The integration tests, by feature area, in one binary: each test file of its own would link its
//! own copy of the crate. Run one area with `cargo test --test it store::`.
//!
//! The tests of all areas run in parallel threads of this one process, so none of them may touch
//! what the process shares: its environment (give a child `Command` its own instead), its working
//! folder, its signal handlers, or fixed ports and paths.

#[path = "../common/mod.rs"]
mod common;

mod antispoof;
mod browser;
mod camera;
mod cli;
mod daemon;
mod deb;
mod email;
mod engine;
mod face_cli;
mod faults;
mod install;
mod legacy_import;
mod liveness;
mod models;
mod mqtt;
mod mysql_outage;
mod reader;
mod rekognition_api;
mod rekognition_door;
mod site;
mod site_outage;
mod site_view;
mod sms;
mod sns;
mod store;
mod systemd;
mod tls;
mod voice;
mod web;
