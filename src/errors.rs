//! Error text for people: errors from other crates often keep the useful part in their sources.

/// An error's message followed by each of its sources' (e.g. "client error (Connect): … connection
/// refused"), where the top message alone would say little.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
