//! Paging as streams: offset paging (`take`/`skip`) for the list operations and continuation
//! tokens for QueryPredictions. Both yield whole pages, so callers can batch; flatten them with
//! `TryStreamExt::try_flatten` (or [`items`]) for a stream of items.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::stream::{self, Stream, TryStreamExt};
use uuid::Uuid;

use super::error::Error;
use super::model::{PredictionQueryResult, PredictionQueryToken};
use super::Client;

/// Pages of an offset-paged operation: calls `fetch(skip, take)` with `take = page_size` until a
/// page comes back shorter than asked.
pub fn offset_pages<T, F, Fut>(page_size: u32, fetch: F) -> impl Stream<Item = Result<Vec<T>, Error>>
where
    F: FnMut(u32, u32) -> Fut,
    Fut: Future<Output = Result<Vec<T>, Error>>,
{
    let page_size = page_size.max(1);
    stream::try_unfold((0u32, false, fetch), move |(skip, done, mut fetch)| async move {
        if done {
            return Ok(None);
        }
        let page = fetch(skip, page_size).await?;
        let last = (page.len() as u32) < page_size;
        let next = skip.saturating_add(page.len() as u32);
        Ok(Some((page, (next, last, fetch))))
    })
    .try_filter(|page| futures::future::ready(!page.is_empty()))
}

/// Most pages one QueryPredictions listing reads: far past any real account (predictions are
/// kept 30 days, at most 10 stored per second on S0: about 26 million, or 100,000 pages of
/// 256), so it only stops a service that hands out continuations forever.
pub const MAX_CONTINUATION_PAGES: u64 = 1_000_000;

/// Most empty pages in a row, each with a new continuation, before a listing gives up. Empty
/// pages before the last are allowed (API-NOTES §7); how many the service may send is unknown,
/// so this bound is an assumption.
pub const MAX_EMPTY_PAGES: u64 = 100;

/// The `maxCount`s QueryPredictions tries, in order: each one the service refuses with
/// `BadRequestPredictionResultsExceededCount` (an error code of the v3.3 spec's
/// `CustomVisionError` enum) gives way to the next. The spec gives `maxCount` no maximum and no
/// recording shows a QueryPredictions request; 256 is the largest page of every other listing
/// (`take`, max 256), and 0 (the service's own page size) is the only value the spec material
/// shows (the v3.1 QuerySuggestedImages example's token).
pub const PREDICTION_MAX_COUNTS: [i64; 3] = [256, 64, 0];

/// A page of QueryPredictions with the token that asked for it: sending that token again reads
/// the page again, with fresh links.
#[derive(Debug, Clone)]
pub struct TokenPage {
    /// The token sent.
    pub sent: PredictionQueryToken,
    /// The service's answer.
    pub page: PredictionQueryResult,
}

impl TokenPage {
    /// The continuation the service returned, when it offered more.
    pub fn continuation(&self) -> Option<&str> {
        continuation_of(&self.page)
    }
}

fn continuation_of(page: &PredictionQueryResult) -> Option<&str> {
    page.token.as_ref().and_then(|t| t.continuation.as_deref()).filter(|c| !c.is_empty())
}

/// Pages of QueryPredictions: feeds the token back while its continuation is not empty. A short
/// or empty page before the last is normal for this operation, so only the token ends the
/// stream, or a bound: the service answering the continuation it was sent (no progress),
/// [`MAX_EMPTY_PAGES`] empty pages in a row, or [`MAX_CONTINUATION_PAGES`]. A stream cut by a
/// bound ends with a page whose [`TokenPage::continuation`] is still set, so the caller can
/// record what was not read.
pub fn token_pages<F, Fut>(first: PredictionQueryToken, fetch: F) -> impl Stream<Item = Result<TokenPage, Error>>
where
    F: FnMut(PredictionQueryToken) -> Fut,
    Fut: Future<Output = Result<TokenPage, Error>>,
{
    stream::try_unfold((Some(first), fetch, 0u64, 0u64), |(token, mut fetch, pages, empty_run)| async move {
        let Some(token) = token else { return Ok(None) };
        let sent_continuation = token.continuation.clone().filter(|c| !c.is_empty());
        let page = fetch(token).await?;
        let (pages, empty_run) = (pages + 1, if page.page.results.is_empty() { empty_run + 1 } else { 0 });
        let stuck = page.continuation().is_some_and(|c| Some(c) == sent_continuation.as_deref())
            || empty_run >= MAX_EMPTY_PAGES
            || pages >= MAX_CONTINUATION_PAGES;
        let next = match page.continuation() {
            Some(_) if !stuck => page.page.token.clone(),
            _ => None,
        };
        Ok(Some((page, (next, fetch, pages, empty_run))))
    })
}

/// Pages of QueryPredictions as [`token_pages`] reads them, without the tokens sent.
pub fn continuation_pages<F, Fut>(
    first: PredictionQueryToken,
    mut fetch: F,
) -> impl Stream<Item = Result<PredictionQueryResult, Error>>
where
    F: FnMut(PredictionQueryToken) -> Fut,
    Fut: Future<Output = Result<PredictionQueryResult, Error>>,
{
    token_pages(first, move |sent| {
        let call = fetch(sent.clone());
        async move { call.await.map(|page| TokenPage { sent, page }) }
    })
    .map_ok(|p| p.page)
}

/// Every page of a project's stored predictions: [`token_pages`] with `maxCount` chosen from
/// [`PREDICTION_MAX_COUNTS`], lowered whenever the service refuses it.
pub fn prediction_pages(
    client: &Client,
    project: Uuid,
    first: PredictionQueryToken,
) -> impl Stream<Item = Result<TokenPage, Error>> + '_ {
    let step = Arc::new(AtomicUsize::new(0));
    token_pages(first, move |token| {
        let step = step.clone();
        async move {
            loop {
                let at = step.load(Ordering::Relaxed);
                // The service's token may echo another maxCount; ours is the one it accepted.
                let sent = PredictionQueryToken { max_count: Some(PREDICTION_MAX_COUNTS[at]), ..token.clone() };
                match client.query_predictions(project, &sent).await {
                    Ok(page) => return Ok(TokenPage { sent, page }),
                    Err(e)
                        if e.code() == Some("BadRequestPredictionResultsExceededCount")
                            && at + 1 < PREDICTION_MAX_COUNTS.len() =>
                    {
                        tracing::debug!(project = %project, refused = PREDICTION_MAX_COUNTS[at], "lowering maxCount");
                        step.store(at + 1, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    })
}

/// Items of a stream of pages.
pub fn items<T, S>(pages: S) -> impl Stream<Item = Result<T, Error>>
where
    S: Stream<Item = Result<Vec<T>, Error>>,
{
    pages.map_ok(|page| stream::iter(page.into_iter().map(Ok))).try_flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offset_paging_stops_on_a_short_page() {
        let data: Vec<u32> = (0..600).collect();
        let calls = std::cell::Cell::new(0);
        let pages: Vec<Vec<u32>> = offset_pages(256, |skip, take| {
            calls.set(calls.get() + 1);
            let page = data.iter().skip(skip as usize).take(take as usize).copied().collect::<Vec<_>>();
            async move { Ok(page) }
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![256, 256, 88]);
        assert_eq!(calls.get(), 3);
        let all: Vec<u32> = items(stream::iter(pages.into_iter().map(Ok))).try_collect().await.unwrap();
        assert_eq!(all, data);
    }

    #[tokio::test]
    async fn exact_multiple_ends_with_an_empty_page() {
        let data: Vec<u32> = (0..512).collect();
        let pages: Vec<Vec<u32>> = offset_pages(256, |skip, take| {
            let page = data.iter().skip(skip as usize).take(take as usize).copied().collect::<Vec<_>>();
            async move { Ok(page) }
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(pages.len(), 2);
    }

    fn answer(continuation: Option<String>, results: usize) -> PredictionQueryResult {
        let result: crate::api::model::StoredImagePrediction =
            serde_json::from_value(serde_json::json!({"id": uuid::Uuid::new_v4()})).unwrap();
        PredictionQueryResult {
            token: Some(PredictionQueryToken { continuation, ..Default::default() }),
            results: vec![result; results],
        }
    }

    #[tokio::test]
    async fn continuation_follows_short_and_empty_pages_to_the_end() {
        // Pages 1 to 3 are empty and page 4 is short, but each carries a continuation.
        let pages: Vec<_> = continuation_pages(PredictionQueryToken::default(), |t| async move {
            let n: usize = t.continuation.as_deref().unwrap_or("0").parse().unwrap();
            let next = (n < 6).then(|| (n + 1).to_string());
            Ok(answer(next, [3, 0, 0, 0, 1, 3, 2][n]))
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(pages.iter().map(|p| p.results.len()).sum::<usize>(), 9);
        assert_eq!(pages.len(), 7);
        assert!(continuation_of(pages.last().unwrap()).is_none(), "read to the end");
    }

    #[tokio::test]
    async fn a_repeated_continuation_stops_the_listing_and_shows() {
        // Page "1" answers with its own continuation again: no progress is possible.
        let pages: Vec<_> =
            continuation_pages(PredictionQueryToken::default(), |_| async move { Ok(answer(Some("1".to_owned()), 2)) })
                .try_collect()
                .await
                .unwrap();
        assert_eq!(pages.len(), 2);
        assert_eq!(continuation_of(pages.last().unwrap()), Some("1"), "the cut shows on the last page");
    }

    #[tokio::test]
    async fn endless_empty_pages_are_bounded() {
        let pages: Vec<_> = continuation_pages(PredictionQueryToken::default(), |t| async move {
            let n: u64 = t.continuation.as_deref().unwrap_or("0").parse().unwrap();
            Ok(answer(Some((n + 1).to_string()), 0))
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(pages.len() as u64, MAX_EMPTY_PAGES);
        assert!(continuation_of(pages.last().unwrap()).is_some());
    }
}
