//! The BagIt 1.0 text files (RFC 8493): `bagit.txt`, `bag-info.txt` and the SHA-256 manifests,
//! both rendering (for the writer) and tolerant parsing (for readers of untrusted bags).

use chrono::NaiveDate;

use super::layout::{decode_manifest_path, encode_manifest_path};

/// The bag declaration, byte for byte as we write it.
pub const BAGIT_TXT: &str = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n";
/// Name of the bag declaration.
pub const BAGIT_TXT_NAME: &str = "bagit.txt";
/// Name of the bag metadata file.
pub const BAG_INFO_NAME: &str = "bag-info.txt";
/// Name of the payload manifest.
pub const MANIFEST_NAME: &str = "manifest-sha256.txt";
/// Name of the tag manifest.
pub const TAGMANIFEST_NAME: &str = "tagmanifest-sha256.txt";

/// What `bag-info.txt` says besides the computed `Payload-Oxum` and `Bagging-Software`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagInfo {
    /// The Custom Vision endpoint host the archive was taken from (no scheme, no key).
    pub source_host: String,
    /// The Training API version used, e.g. `v3.3`.
    pub api_version: String,
    /// This tool's version, e.g. `0.1.0`.
    pub tool_version: String,
    /// The day the bag was made.
    pub bagging_date: NaiveDate,
    /// More `Label: value` pairs (RFC 8493 §2.2.2 reserved labels or our own).
    pub extra: Vec<(String, String)>,
}

/// Payload size and file count, as in `Payload-Oxum: <bytes>.<files>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadOxum {
    /// Total octets of every payload file.
    pub bytes: u64,
    /// Number of payload files.
    pub files: u64,
}

impl std::fmt::Display for PayloadOxum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.bytes, self.files)
    }
}

impl PayloadOxum {
    /// Parses `<bytes>.<files>`.
    pub fn parse(s: &str) -> Option<PayloadOxum> {
        let (b, f) = s.trim().split_once('.')?;
        Some(PayloadOxum { bytes: b.parse().ok()?, files: f.parse().ok()? })
    }
}

/// Renders `bag-info.txt`. Values are made single-line, since a newline would start a new label.
pub fn render_bag_info(info: &BagInfo, oxum: PayloadOxum) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let value = value.replace(['\r', '\n'], " ");
        out.push_str(label);
        out.push_str(": ");
        out.push_str(value.trim());
        out.push('\n');
    };
    line("Bagging-Date", &info.bagging_date.format("%Y-%m-%d").to_string());
    line("Bagging-Software", &format!("cvarchive {}", info.tool_version));
    line("Payload-Oxum", &oxum.to_string());
    line("Source-Endpoint-Host", &info.source_host);
    line("Custom-Vision-API-Version", &info.api_version);
    for (label, value) in &info.extra {
        let label: String = label.chars().filter(|c| !c.is_control() && *c != ':').collect();
        if !label.trim().is_empty() {
            line(label.trim(), value);
        }
    }
    out
}

/// Parses a tag file of `Label: value` lines (continuation lines start with whitespace). Returns
/// the pairs in order and the 1-based numbers of lines that are neither.
pub fn parse_tag_file(text: &str) -> (Vec<(String, String)>, Vec<usize>) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match pairs.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => bad.push(i + 1),
            }
            continue;
        }
        match line.split_once(':') {
            Some((label, value)) if !label.trim().is_empty() => {
                pairs.push((label.trim().to_string(), value.trim().to_string()))
            }
            _ => bad.push(i + 1),
        }
    }
    (pairs, bad)
}

/// The first value of a label in parsed tag-file pairs (labels compare case-insensitively).
pub fn tag_value<'a>(pairs: &'a [(String, String)], label: &str) -> Option<&'a str> {
    pairs.iter().find(|(l, _)| l.eq_ignore_ascii_case(label)).map(|(_, v)| v.as_str())
}

/// One manifest line: `<lowercase hex sha256> <encoded path>\n`.
pub fn render_manifest_line(sha256: &[u8; 32], path: &str) -> String {
    format!("{} {}\n", hex::encode(sha256), encode_manifest_path(path))
}

/// A parsed manifest line: the hash and the decoded path, or why the line is malformed.
pub fn parse_manifest_line(line: &str) -> Result<([u8; 32], String), &'static str> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (digest, path) = line.split_once([' ', '\t']).ok_or("no separator between hash and path")?;
    let path = path.trim_start_matches([' ', '\t']);
    if path.is_empty() {
        return Err("no path");
    }
    let mut sha = [0u8; 32];
    hex::decode_to_slice(digest, &mut sha).map_err(|_| "hash is not 64 hex digits")?;
    Ok((sha, decode_manifest_path(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_files_parse_with_continuations() {
        let (pairs, bad) = parse_tag_file("A: 1\nB: two\n  more\nnonsense\r\n");
        assert_eq!(pairs, vec![("A".into(), "1".into()), ("B".into(), "two more".into())]);
        assert_eq!(bad, vec![4]);
    }

    #[test]
    fn manifest_lines_round_trip() {
        let sha = [0xab; 32];
        let line = render_manifest_line(&sha, "data/a%b c");
        let (s, p) = parse_manifest_line(line.trim_end_matches('\n')).unwrap();
        assert_eq!((s, p.as_str()), (sha, "data/a%b c"));
        assert!(parse_manifest_line("zz data/x").is_err());
    }

    #[test]
    fn oxum() {
        assert_eq!(PayloadOxum::parse("12.3"), Some(PayloadOxum { bytes: 12, files: 3 }));
        assert_eq!(PayloadOxum::parse("12"), None);
    }
}
