//! The metadata expressions of GetImages' `$filter` (`key eq 'value' and other ne 'x' or ...`).

use super::state::ImageRec;

/// A metadata expression of GetImages' `$filter`: alternatives (`or`) of conjunctions (`and`)
/// of `key eq 'value'` / `key ne 'value'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetadataFilter(Vec<Vec<(String, bool, String)>>);

impl MetadataFilter {
    /// Parses `key1 eq 'value1' and key2 ne 'value2' or key3 eq 'x'`.
    pub fn parse(text: &str) -> Option<MetadataFilter> {
        let mut any = Vec::new();
        for alternative in text.split(" or ") {
            let mut all = Vec::new();
            for term in alternative.split(" and ") {
                let term = term.trim();
                let (key, rest) = term.split_once(' ')?;
                let (op, value) = rest.trim_start().split_once(' ')?;
                let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'");
                let eq = match op {
                    "eq" => true,
                    "ne" => false,
                    _ => return None,
                };
                all.push((key.to_owned(), eq, value));
            }
            any.push(all);
        }
        Some(MetadataFilter(any))
    }

    pub(crate) fn matches(&self, image: &ImageRec) -> bool {
        let value = |k: &str| image.metadata.as_ref().and_then(|m| m.get(k).cloned());
        self.0.iter().any(|all| all.iter().all(|(k, eq, v)| (value(k).as_deref() == Some(v.as_str())) == *eq))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::emulator::state::Content;

    #[test]
    fn metadata_filters_parse_and_match() {
        let f = MetadataFilter::parse("source eq 'camera-1' and kind ne 'x' or caption eq 'it''s'").unwrap();
        let mut image = ImageRec {
            id: Uuid::nil(),
            created: Utc::now(),
            width: 1,
            height: 1,
            tags: vec![],
            regions: vec![],
            metadata: Some(Box::new(BTreeMap::from([("source".to_owned(), "camera-1".to_owned())]))),
            content: Content::Fixture(0),
        };
        assert!(f.matches(&image));
        image.metadata = Some(Box::new(BTreeMap::from([("caption".to_owned(), "it's".to_owned())])));
        assert!(f.matches(&image));
        image.metadata = None;
        assert!(!f.matches(&image));
        assert!(MetadataFilter::parse("source gt 'a'").is_none());
    }
}
