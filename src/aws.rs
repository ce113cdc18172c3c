//! The AWS SDK set-up that the Rekognition engine and text messages through Amazon SNS share:
//! the SDK's own credential chain and region lookup (environment, profile, instance role), with
//! our endpoint, timeouts and retries.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

use crate::checks::Checks;

/// Where and how patiently one AWS service is called.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// Empty: the SDK's default (AWS_REGION, the profile).
    pub region: &'a str,
    /// Empty: AWS itself; otherwise a server that speaks the service's protocol.
    pub endpoint_url: &'a str,
    pub connect_timeout: Duration,
    /// Longest wait for one attempt of a call (a retry gets its own).
    pub attempt_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
}

impl Reach<'_> {
    /// The SDK configuration for clients of any service.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        // TLS to AWS uses rustls with aws-lc-rs, the provider the whole process shares.
        crate::tls::ensure_crypto_provider();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts));
        if !self.region.is_empty() {
            loader = loader.region(aws_config::Region::new(self.region.to_owned()));
        }
        if !self.endpoint_url.is_empty() {
            loader = loader.endpoint_url(self.endpoint_url.to_owned());
        }
        loader.load().await
    }
}

/// Notes a problem unless `url` is empty (AWS itself) or an http(s) URL.
pub fn check_endpoint_url(checks: &mut Checks, key: &str, url: &str) {
    checks.check(
        url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
        key,
        format!("{url:?} must start with http:// or https:// (empty: AWS)"),
    );
}
