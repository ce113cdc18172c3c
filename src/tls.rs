//! TLS set-up shared by every client that speaks TLS (MQTT, the AWS SDK).

/// Installs the process-wide TLS crypto provider once; rustls cannot pick one by itself when
/// more than one is compiled in, and rumqttc's TLS connect fails without one.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
