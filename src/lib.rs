//! FaceReko: a door-access daemon for the Raspberry Pi. A card tap starts an attempt; the face in
//! front of the camera must belong to the card's holder; LEDs, buzzer and lock relay give the
//! verdict; every attempt is logged with its photo.

pub mod access;
pub mod accounts;
pub mod api;
pub mod app;
pub mod aws;
pub mod capture;
pub mod card;
pub mod checks;
pub mod config;
pub mod control;
pub mod door;
pub mod doorbell;
pub mod driver;
pub mod engine;
pub mod enrolment;
mod errors;
pub mod eval;
pub mod frame;
pub mod hw;
pub mod liveness;
pub mod models;
mod names;
pub mod notify;
pub mod photos;
pub mod qr_scan;
pub mod schedule;
pub mod serving;
pub mod site;
pub mod site_link;
pub mod store;
pub mod tls;
pub mod visitor;
pub mod voice;
pub mod web;
