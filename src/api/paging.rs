//! Paging as streams: offset paging (`take`/`skip`) for the list operations and continuation
//! tokens for QueryPredictions. Both yield whole pages, so callers can batch; flatten them with
//! `TryStreamExt::try_flatten` (or [`items`]) for a stream of items.

use std::future::Future;

use futures::stream::{self, Stream, TryStreamExt};

use super::error::Error;
use super::model::{PredictionQueryResult, PredictionQueryToken};

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

/// Pages of QueryPredictions: feeds the token back until its continuation is empty. A short or
/// empty page before the last is normal for this operation, so only the token ends the stream.
pub fn continuation_pages<F, Fut>(
    first: PredictionQueryToken,
    fetch: F,
) -> impl Stream<Item = Result<PredictionQueryResult, Error>>
where
    F: FnMut(PredictionQueryToken) -> Fut,
    Fut: Future<Output = Result<PredictionQueryResult, Error>>,
{
    stream::try_unfold((Some(first), fetch, 0u32), |(token, mut fetch, empty_run)| async move {
        let Some(token) = token else { return Ok(None) };
        let sent_continuation = token.continuation.clone();
        let page = fetch(token).await?;
        let next = page.token.clone().filter(|t| t.continuation.as_deref().is_some_and(|c| !c.is_empty()));
        // A service that keeps answering the same continuation with nothing would loop forever.
        let empty_run = if page.results.is_empty() { empty_run + 1 } else { 0 };
        let stuck = empty_run >= 3
            || (page.results.is_empty() && next.as_ref().and_then(|t| t.continuation.clone()) == sent_continuation);
        let next = if stuck { None } else { next };
        Ok(Some((page, (next, fetch, empty_run))))
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
    use futures::StreamExt;

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

    #[tokio::test]
    async fn continuation_follows_short_pages() {
        let pages = continuation_pages(PredictionQueryToken::default(), |t| async move {
            let n: u32 = t.continuation.as_deref().unwrap_or("0").parse().unwrap();
            let results = if n == 1 { vec![] } else { vec![] };
            let next = if n < 3 { Some((n + 1).to_string()) } else { None };
            Ok(PredictionQueryResult {
                token: Some(PredictionQueryToken { continuation: next, ..Default::default() }),
                results,
            })
        });
        let n = pages.collect::<Vec<_>>().await.len();
        assert_eq!(n, 3, "stops after three empty pages in a row");
    }
}
