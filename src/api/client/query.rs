//! The parameters of the list and delete calls: a page of images (order, size, offset,
//! iteration, tags) and what DeleteImages deletes, checked against the service's limits.

use uuid::Uuid;

use super::{csv, Call, MAX_TAKE};
use crate::api::error::Error;

/// Sort order of the list operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    /// Newest first (the service's default).
    #[default]
    Newest,
    /// Oldest first: stable while images are being added.
    Oldest,
}

impl OrderBy {
    fn as_str(self) -> &'static str {
        match self {
            OrderBy::Newest => "Newest",
            OrderBy::Oldest => "Oldest",
        }
    }
}

/// The query of one page of a list operation.
#[derive(Debug, Clone, Default)]
pub struct ImageQuery {
    /// Sort order.
    pub order_by: OrderBy,
    /// Page size, at most 256.
    pub take: u32,
    /// Items to skip.
    pub skip: u32,
    /// The iteration to read; the workspace when `None`.
    pub iteration_id: Option<Uuid>,
    /// Only images with these tags (at most 20).
    pub tag_ids: Vec<Uuid>,
}

/// What DeleteImages deletes, and whether trained iterations' copies go too.
///
/// `all_iterations` is `allIterations` ([spec] DeleteImages: "Removes these images from all
/// iterations, not just the current workspace"): without it every trained iteration keeps its
/// copy of the images. The choice is a field of each variant so that every call site states it.
#[derive(Debug, Clone)]
pub enum DeleteImages {
    /// These images (at most 256).
    Ids {
        /// The images.
        ids: Vec<Uuid>,
        /// Send `allIterations=true`: trained iterations' copies go too.
        all_iterations: bool,
    },
    /// Every image of the project; the service answers 202 and finishes later.
    All {
        /// Send `allIterations=true`: trained iterations' copies go too.
        all_iterations: bool,
    },
}

/// `call` with the query of one page of a list operation.
pub(super) fn page_query(call: Call, q: &ImageQuery, with_iteration: bool) -> Result<Call, Error> {
    if q.take > MAX_TAKE {
        return Err(Error::Argument {
            op: call.op,
            detail: format!("take={} is over the service's limit of {MAX_TAKE}", q.take),
        });
    }
    let mut call = call;
    if with_iteration {
        call = call.with_opt("iterationId", q.iteration_id);
    }
    if !q.tag_ids.is_empty() {
        call = call.with("tagIds", csv(&q.tag_ids));
    }
    Ok(call.with("orderBy", q.order_by.as_str()).with("take", q.take).with("skip", q.skip))
}
