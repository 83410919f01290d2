//! `account.json`'s record of what an export could not archive, as a reader of an untrusted
//! archive sees it: the `complete` flag, and the `missing` items (the account's, then each
//! project's, in order) with the first few kept and the rest only counted, across all lists, so
//! however many items an archive records, memory holds at most `keep` of them.
//!
//! The export writes these fields with `export::account::{AccountFile, Missing}`; the other
//! readers of `account.json` use [`AccountView`](super::data::AccountView).

use std::cell::RefCell;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::data::{read_json_seeded, JsonError};
use super::{BagReader, Entry};

/// One recorded missing item. Every field is optional and any value is kept as written (the
/// archive is untrusted): readers print it, never act on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct MissingItem {
    /// `image`, `prediction`, `model`, `predictions`, `project`, ... (see the export's `Missing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The project it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The item's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why the export could not archive it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An item as written: the expected object, or anything else (still counted).
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient {
    Item(MissingItem),
    Other(IgnoredAny),
}

/// What `account.json` says about its own completeness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completeness {
    /// `complete`, when present.
    pub complete: Option<bool>,
    /// The first recorded missing items.
    pub items: Vec<MissingItem>,
    /// How many items the `missing` lists hold in all.
    pub total: u64,
}

/// Reads `complete` and the `missing` items of the `account.json` at `entry`, keeping at most
/// `keep` items (the rest are counted, skipped unread).
pub fn read_completeness(reader: &BagReader, entry: &Entry, keep: usize) -> Result<Completeness, JsonError> {
    let state = RefCell::new(Completeness::default());
    let complete = read_json_seeded(reader, entry, Account { state: &state, keep })?;
    let mut out = state.into_inner();
    out.complete = complete;
    Ok(out)
}

/// The top of `account.json`: `complete`, `missing`, `projects`; everything else skipped.
struct Account<'a> {
    state: &'a RefCell<Completeness>,
    keep: usize,
}

impl<'de> DeserializeSeed<'de> for Account<'_> {
    type Value = Option<bool>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Account<'_> {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an account.json object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<bool>, A::Error> {
        let mut complete = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "complete" => complete = map.next_value::<Option<bool>>()?,
                "missing" => map.next_value_seed(List { state: self.state, keep: self.keep })?,
                "projects" => map.next_value_seed(Projects { state: self.state, keep: self.keep })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(complete)
    }
}

/// One `missing` array: items kept while under `keep` in all, then counted.
struct List<'a> {
    state: &'a RefCell<Completeness>,
    keep: usize,
}

impl<'de> DeserializeSeed<'de> for List<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for List<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of missing items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let room = self.state.borrow().items.len() < self.keep;
            if room {
                match seq.next_element::<Lenient>()? {
                    Some(Lenient::Item(item)) => self.state.borrow_mut().items.push(item),
                    // Still one item recorded missing, whatever its shape.
                    Some(Lenient::Other(_)) => self.state.borrow_mut().items.push(MissingItem::default()),
                    None => return Ok(()),
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            self.state.borrow_mut().total += 1;
        }
    }
}

/// The `projects` array: each project's `missing` list read with [`List`].
struct Projects<'a> {
    state: &'a RefCell<Completeness>,
    keep: usize,
}

impl<'de> DeserializeSeed<'de> for Projects<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Projects<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of projects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Project { state: self.state, keep: self.keep })?.is_some() {}
        Ok(())
    }
}

/// One project: its `missing` list; everything else skipped.
struct Project<'a> {
    state: &'a RefCell<Completeness>,
    keep: usize,
}

impl<'de> DeserializeSeed<'de> for Project<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Project<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a project object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "missing" {
                map.next_value_seed(List { state: self.state, keep: self.keep })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, keep: usize) -> Completeness {
        let state = RefCell::new(Completeness::default());
        let mut de = serde_json::Deserializer::from_str(text);
        let complete = Account { state: &state, keep }.deserialize(&mut de).unwrap();
        let mut out = state.into_inner();
        out.complete = complete;
        out
    }

    #[test]
    fn items_of_every_list_are_kept_up_to_the_cap_and_counted_beyond() {
        let item = |n: u32| format!(r#"{{"kind":"image","project":"p","id":"{n}","reason":"r","extra":[1]}}"#);
        let text = format!(
            r#"{{"complete":false,"missing":[{}],"projects":[{{"id":"p","missing":[{},{},{}]}},{{"missing":[]}}],"x":{{}}}}"#,
            item(1),
            item(2),
            item(3),
            item(4)
        );
        let c = parse(&text, 2);
        assert_eq!(c.complete, Some(false));
        assert_eq!(c.total, 4);
        assert_eq!(c.items.iter().map(|i| i.id.clone().unwrap()).collect::<Vec<_>>(), ["1", "2"]);
        let all = parse(&text, 10);
        assert_eq!((all.items.len(), all.total), (4, 4));
        assert_eq!(parse(r#"{"complete":true}"#, 3), Completeness { complete: Some(true), items: vec![], total: 0 });
        let odd = parse(r#"{"missing":[0,{"kind":7},{"kind":"image"}],"complete":false}"#, 3);
        assert_eq!((odd.complete, odd.total, odd.items[2].kind.as_deref()), (Some(false), 3, Some("image")));
    }
}
