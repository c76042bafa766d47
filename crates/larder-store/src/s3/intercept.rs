//! Hooks into the SDK: the request meter (every request counted, and refused past a budget,
//! just before it is sent; every GET's body counted as it arrives), and requester-pays.

use super::*;

/// The kind of the request in flight, from `read_before_transmit` to `read_after_transmit`.
#[derive(Debug, Clone)]
pub(super) struct SentKind(crate::meter::RequestKind);

impl aws_smithy_types::config_bag::Storable for SentKind {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Feeds a [`crate::meter::RequestMeter`] every request just before it is sent (each retry
/// too), and stops the ones it refuses.
#[derive(Debug)]
pub(super) struct MeterInterceptor(pub(super) Arc<crate::meter::RequestMeter>);

impl aws_sdk_s3::config::Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "larder-request-meter"
    }

    fn read_before_transmit(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        let req = ctx.request();
        let kind = crate::meter::RequestKind::classify(req.method(), req.uri());
        cfg.interceptor_state().store_put(SentKind(kind));
        let body = req
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        self.0.admit(kind, body).map_err(|why| why.into())
    }

    fn read_after_transmit(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        let resp = ctx.response();
        // Only a GET's body is data out (a HEAD's Content-Length is the object's size).
        let get = cfg
            .load::<SentKind>()
            .is_some_and(|k| k.0 == crate::meter::RequestKind::Get);
        if get && resp.status().is_success() {
            if let Some(n) = resp
                .headers()
                .get("content-length")
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.0.downloaded(n);
            }
        }
        Ok(())
    }
}

/// Adds `x-amz-request-payer: requester` to every request (a requester-pays bucket refuses
/// requests without it from anybody but its owner).
#[derive(Debug)]
pub(super) struct RequestPayer;

impl aws_sdk_s3::config::Intercept for RequestPayer {
    fn name(&self) -> &'static str {
        "larder-request-payer"
    }

    fn modify_before_signing(
        &self,
        ctx: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _rc: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        ctx.request_mut()
            .headers_mut()
            .insert("x-amz-request-payer", "requester");
        Ok(())
    }
}
