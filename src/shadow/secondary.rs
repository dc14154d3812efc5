//! The call to the second instance of the primary (`secondary`), made
//! concurrently with the candidate's, with the request the primary got:
//! what it answers is compared with the primary's only to learn what the
//! old code differs in with itself (`noise`). Only requests to the primary
//! it is an instance of are paired with it. Its failure costs the sample
//! nothing but that lesson.

use http::HeaderMap;

use super::fetch::{fetch, Call};
use super::ShadowConfig;
use crate::budget::Claim;
use crate::config::BackendUrl;
use crate::exchange::RecordedResponse;

/// The secondary's response, when there is a secondary and it answered.
pub(super) async fn secondary_response(
    config: &ShadowConfig,
    primary: &BackendUrl,
    call: &Call<'_>,
    headers: HeaderMap,
) -> Option<(RecordedResponse, Claim)> {
    let base = config.noise.as_ref()?.secondary_for(primary)?;
    fetch(config, base, call, headers, config.timeout)
        .await
        .ok()
}
