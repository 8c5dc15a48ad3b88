//! Where a list's Okta pages start, by position, so a client paging through a list with
//! `startIndex` resumes the walk near its page instead of walking from the first page each
//! time: paging through N users costs about one Okta call per page asked for, where walking
//! from the start each time cost about N² / (400 × count).
//!
//! A bookmark is the page token that starts an Okta page, with how many resources came
//! before it and how many of them matched the filter. Bookmarks are kept per listing: the
//! caller (a digest of the credentials it sent, since a group-scoped caller sees other users
//! than an unscoped one), the resource type, the filter and the Okta search. A listing's
//! bookmarks are kept [`KEEP_FOR`] after it was last used, [`MAX_BOOKMARKS`] at most in
//! all. A bookmark is only a hint: its page token goes through the gRPC API like any
//! other, under the caller's current rights, and positions move by the resources created or
//! deleted since it was made, which SCIM allows (RFC 7644 §3.4.2.4: index paging is not
//! promised consistent).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::api::page_token::fingerprint;

/// How long a listing's bookmarks are kept after its last use: longer than a client pauses
/// between pages, short enough that a policy change soon stops shifting positions.
pub const KEEP_FOR: Duration = Duration::from_secs(120);
/// Most bookmarks kept, of all listings together (each a page token and two counts, about
/// 200 bytes; a listing has at most `MAX_SCANNED / 200 + 1`).
pub const MAX_BOOKMARKS: u64 = 32_768;

/// Where one Okta page of a listing starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bookmark {
    /// The page token that asks for this page.
    pub page_token: String,
    /// Resources on the pages before it.
    pub scanned_before: usize,
    /// Of those, how many matched the filter.
    pub matched_before: usize,
}

/// Which listing a bookmark belongs to: a fingerprint of everything that decides its order
/// and contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Listing(String);

impl Listing {
    /// The listing of `parts` (the resource type, filter, search, ...) as seen by the caller
    /// whose credentials have the fingerprint `caller`.
    pub fn of(caller: &str, parts: &[&str]) -> Self {
        let all = std::iter::once(caller).chain(parts.iter().copied());
        Self(fingerprint(all.map(str::as_bytes)))
    }
}

/// The bookmarks of every listing walked lately; cheap to clone.
#[derive(Clone)]
pub struct Bookmarks {
    /// A listing's bookmarks by `scanned_before`, which is one page start's alone.
    listings: moka::future::Cache<Listing, Arc<BTreeMap<usize, Bookmark>>>,
}

impl Default for Bookmarks {
    fn default() -> Self {
        Self {
            listings: moka::future::Cache::builder()
                .max_capacity(MAX_BOOKMARKS)
                .weigher(|_, bookmarks: &Arc<BTreeMap<usize, Bookmark>>| {
                    u32::try_from(bookmarks.len()).unwrap_or(u32::MAX)
                })
                .time_to_idle(KEEP_FOR)
                .build(),
        }
    }
}

impl Bookmarks {
    /// The furthest page start of `listing` with no more than `skip` matches before it: a
    /// walk for a window that passes over `skip` matches may start there.
    pub async fn nearest(&self, listing: &Listing, skip: usize) -> Option<Bookmark> {
        let bookmarks = self.listings.get(listing).await?;
        bookmarks
            .values()
            .rev()
            .find(|bookmark| bookmark.matched_before <= skip)
            .cloned()
    }

    /// Adds the page starts a walk of `listing` passed.
    pub async fn remember(&self, listing: Listing, found: Vec<Bookmark>) {
        if found.is_empty() {
            return;
        }
        self.listings
            .entry(listing)
            .and_upsert_with(|known| async move {
                let mut bookmarks = known.map(|entry| (*entry.into_value()).clone());
                let bookmarks = bookmarks.get_or_insert_with(BTreeMap::new);
                for bookmark in found {
                    bookmarks.insert(bookmark.scanned_before, bookmark);
                }
                Arc::new(std::mem::take(bookmarks))
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(scanned_before: usize, matched_before: usize) -> Bookmark {
        Bookmark {
            page_token: format!("token-{scanned_before}"),
            scanned_before,
            matched_before,
        }
    }

    #[tokio::test]
    async fn the_furthest_page_start_before_the_window_is_chosen() {
        let bookmarks = Bookmarks::default();
        let listing = Listing::of("key-a", &["Users", "", ""]);
        bookmarks
            .remember(listing.clone(), vec![at(200, 150), at(400, 150)])
            .await;
        bookmarks
            .remember(listing.clone(), vec![at(600, 300)])
            .await;

        assert_eq!(bookmarks.nearest(&listing, 100).await, None);
        assert_eq!(bookmarks.nearest(&listing, 150).await, Some(at(400, 150)));
        assert_eq!(bookmarks.nearest(&listing, 299).await, Some(at(400, 150)));
        assert_eq!(bookmarks.nearest(&listing, 300).await, Some(at(600, 300)));
    }

    #[tokio::test]
    async fn another_caller_filter_or_resource_type_is_another_listing() {
        let bookmarks = Bookmarks::default();
        let listing = Listing::of("key-a", &["Users", "userName sw \"a\"", ""]);
        bookmarks.remember(listing, vec![at(200, 10)]).await;

        for other in [
            Listing::of("key-b", &["Users", "userName sw \"a\"", ""]),
            Listing::of("key-a", &["Groups", "userName sw \"a\"", ""]),
            Listing::of("key-a", &["Users", "userName sw \"b\"", ""]),
        ] {
            assert_eq!(bookmarks.nearest(&other, 1_000).await, None);
        }
        assert_ne!(
            Listing::of("key-a", &["Users", "ab", ""]),
            Listing::of("key-a", &["Users", "a", "b"]),
            "where one part ends and the next begins counts"
        );
    }
}
