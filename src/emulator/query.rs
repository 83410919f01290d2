//! The query parameters of the Training API operations, read as the service reads them: names
//! case-insensitively, ids, flags, paging and image filters within the service's limits.

use uuid::Uuid;

use super::state::{
    ApiError, ImageFilter, MetadataFilter, Order, Page, ProjectState, Tagging, MAX_BATCH, MAX_TAG_FILTER,
};

/// Query parameters; names match case-insensitively, as on the service.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        Query(url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub(super) fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        let value: i64 = raw
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_request("BadRequest", format!("{name} must be an integer, not {raw:?}")))?;
        if value < min || value > max {
            return Err(ApiError::bad_request(
                "BadRequest",
                format!("{name} must be between {min} and {max}; was {value}"),
            ));
        }
        Ok(value)
    }

    pub(super) fn ids(&self, name: &str, max: usize, too_many: &'static str) -> Result<Vec<Uuid>, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(Vec::new()) };
        let ids =
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_id).collect::<Result<Vec<_>, _>>()?;
        if ids.len() > max {
            return Err(ApiError::bad_request(
                too_many,
                format!("{name}: at most {max} ids per request; got {}", ids.len()),
            ));
        }
        Ok(ids)
    }

    pub(super) fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub(super) fn page(&self) -> Result<Page, ApiError> {
        let order = match self.get("orderBy") {
            None => Order::Newest,
            Some(o) if o.eq_ignore_ascii_case("Newest") => Order::Newest,
            Some(o) if o.eq_ignore_ascii_case("Oldest") => Order::Oldest,
            Some(o) => {
                return Err(ApiError::bad_request("BadRequest", format!("orderBy must be Newest or Oldest, not {o:?}")))
            }
        };
        let take = self.int("take", 50, 0, MAX_BATCH as i64)? as usize;
        let skip = self.int("skip", 0, 0, i64::from(i32::MAX))? as usize;
        Ok(Page { order, take, skip })
    }

    /// The image filter of list and count calls; `iterationId` must name an iteration.
    ///
    /// Source: [spec] the image listings' `iterationId`, "The iteration id. Defaults to
    /// workspace": with it, the call answers from that iteration's own images (see
    /// [`super::state::TrainingSet`]), which may include images gone from the workspace.
    pub(super) fn filter(&self, p: &ProjectState, tagging: Tagging) -> Result<ImageFilter, ApiError> {
        let iteration = self.iteration(p)?.map(|it| it.iteration.id);
        let metadata = match self.get("$filter") {
            Some(text) => Some(
                MetadataFilter::parse(text)
                    .ok_or_else(|| ApiError::bad_request("BadRequest", format!("cannot read $filter {text:?}")))?,
            ),
            None => None,
        };
        let tag_ids = self.ids("tagIds", MAX_TAG_FILTER, "BadRequestExceededBatchSize")?;
        Ok(ImageFilter { tagging, tag_ids, iteration, metadata })
    }

    /// The iteration `iterationId` names, if given; it must exist.
    pub(super) fn iteration<'p>(
        &self,
        p: &'p ProjectState,
    ) -> Result<Option<&'p super::state::IterationState>, ApiError> {
        match self.get("iterationId") {
            Some(raw) => Ok(Some(p.iteration(parse_id(raw)?)?)),
            None => Ok(None),
        }
    }
}

pub(super) fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw.trim())
        .map_err(|_| ApiError::bad_request("BadRequestInvalidIds", format!("Invalid id: {raw:?}")))
}

pub(super) fn tagging(raw: Option<&str>) -> Result<Tagging, ApiError> {
    match raw {
        None => Ok(Tagging::All),
        Some(t) if t.eq_ignore_ascii_case("All") => Ok(Tagging::All),
        Some(t) if t.eq_ignore_ascii_case("Tagged") => Ok(Tagging::Tagged),
        Some(t) if t.eq_ignore_ascii_case("Untagged") => Ok(Tagging::Untagged),
        Some(t) => Err(ApiError::bad_request(
            "BadRequest",
            format!("taggingStatus must be All, Tagged or Untagged, not {t:?}"),
        )),
    }
}
