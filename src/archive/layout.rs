//! Where things live inside a bag: pure path builders (relative to `data/`), the bag name, the
//! manifest path encoding and content sniffing. Shared by the writer and every reader.

use std::path::Path;

use uuid::Uuid;

use super::zipconst::{EOCD_SIG, LOCAL_SIG};

/// The longest bag (top-level folder) name we produce; longer file stems are cut.
const MAX_BAG_NAME: usize = 120;

/// The bag (top-level folder) name for an archive file: its file stem, with every character
/// outside `[A-Za-z0-9._-]` replaced by `_`, never empty and never starting with a dot.
pub fn bag_name_for(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(MAX_BAG_NAME)
        .collect();
    if name.starts_with('.') {
        name.replace_range(0..1, "_");
    }
    if name.is_empty() {
        name.push_str("bag");
    }
    name
}

/// `account.json`: the export's own record of what it found and archived.
pub fn account_json() -> &'static str {
    "account.json"
}

fn project_dir(p: Uuid) -> String {
    format!("projects/{p}")
}

/// `projects/<p>/project.json` (GetProject).
pub fn project_json(p: Uuid) -> String {
    format!("{}/project.json", project_dir(p))
}

/// `projects/<p>/tags.json` (GetTags).
pub fn tags_json(p: Uuid) -> String {
    format!("{}/tags.json", project_dir(p))
}

/// `projects/<p>/iterations.json` (GetIterations).
pub fn iterations_json(p: Uuid) -> String {
    format!("{}/iterations.json", project_dir(p))
}

fn iteration_dir(p: Uuid, it: Uuid) -> String {
    format!("{}/iterations/{it}", project_dir(p))
}

/// `projects/<p>/iterations/<it>/performance.json` (GetIterationPerformance).
pub fn performance_json(p: Uuid, it: Uuid) -> String {
    format!("{}/performance.json", iteration_dir(p, it))
}

/// `projects/<p>/iterations/<it>/image-performances.jsonl` (GetImagePerformances, all pages).
pub fn image_performances_jsonl(p: Uuid, it: Uuid) -> String {
    format!("{}/image-performances.jsonl", iteration_dir(p, it))
}

/// `projects/<p>/iterations/<it>/exports.json` (GetExports, download links removed).
pub fn exports_json(p: Uuid, it: Uuid) -> String {
    format!("{}/exports.json", iteration_dir(p, it))
}

/// `projects/<p>/iterations/<it>/models/<platform>[-<flavor>].<ext>` (an exported model).
/// Platform and flavor are reduced to `[A-Za-z0-9._-]` so they cannot form a path.
pub fn model_file(p: Uuid, it: Uuid, platform: &str, flavor: Option<&str>, ext: &str) -> String {
    let mut stem = path_safe(platform);
    if let Some(flavor) = flavor.filter(|f| !f.is_empty()) {
        stem.push('-');
        stem.push_str(&path_safe(flavor));
    }
    format!("{}/models/{stem}.{}", iteration_dir(p, it), path_safe(ext))
}

/// `projects/<p>/images.jsonl`: one line per image.
pub fn images_jsonl(p: Uuid) -> String {
    format!("{}/images.jsonl", project_dir(p))
}

/// `projects/<p>/images/<image>.<ext>`: the original bytes.
pub fn image_file(p: Uuid, image: Uuid, ext: &str) -> String {
    format!("{}/images/{image}.{}", project_dir(p), path_safe(ext))
}

/// `projects/<p>/predictions.jsonl`: one line per stored prediction.
pub fn predictions_jsonl(p: Uuid) -> String {
    format!("{}/predictions.jsonl", project_dir(p))
}

/// `projects/<p>/predictions/<id>.<ext>`: a stored prediction's image.
pub fn prediction_file(p: Uuid, id: Uuid, ext: &str) -> String {
    format!("{}/predictions/{id}.{}", project_dir(p), path_safe(ext))
}

/// The file extension for some content, from its first bytes:
/// `"jpg"`, `"png"`, `"gif"`, `"bmp"`, `"zip"`, else `"bin"`.
pub fn sniff_extension(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "jpg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "gif"
    } else if bytes.starts_with(b"BM") && bytes.len() >= 14 {
        "bmp"
    } else if bytes.starts_with(&LOCAL_SIG.to_le_bytes()) || bytes.starts_with(&EOCD_SIG.to_le_bytes()) {
        "zip"
    } else {
        "bin"
    }
}

/// Encodes a path for a manifest line as RFC 8493 §2.1.3 asks: `%`, CR and LF percent-encoded.
pub fn encode_manifest_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes a manifest path (the inverse of [`encode_manifest_path`]); other `%xx` stay as is,
/// as the RFC only defines those three.
pub fn decode_manifest_path(path: &str) -> String {
    if !path.contains('%') {
        return path.to_owned();
    }
    path.replace("%0D", "\r").replace("%0d", "\r").replace("%0A", "\n").replace("%0a", "\n").replace("%25", "%")
}

/// Why a path relative to `data/` (or inside the bag) is not one we would write or follow, if so.
pub fn unsafe_path_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty path");
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Some("absolute path");
    }
    if path.len() >= 2 && path.as_bytes()[1] == b':' && path.as_bytes()[0].is_ascii_alphabetic() {
        return Some("drive-letter path");
    }
    if path.contains('\\') {
        return Some("backslash in path");
    }
    if path.contains('\0') {
        return Some("NUL in path");
    }
    for part in path.split('/') {
        match part {
            ".." => return Some("parent-directory component"),
            "." => return Some("current-directory component"),
            "" => return Some("empty component"),
            _ => {}
        }
    }
    None
}

fn path_safe(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        "_".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bag_names_are_sanitised() {
        assert_eq!(bag_name_for(Path::new("/tmp/my backup.zip")), "my_backup");
        assert_eq!(bag_name_for(Path::new(".zip")), "_zip");
        assert_eq!(bag_name_for(Path::new("x/../ü.zip")), "_");
    }

    #[test]
    fn manifest_paths_round_trip() {
        let p = "a%b\r\nc";
        assert_eq!(encode_manifest_path(p), "a%25b%0D%0Ac");
        assert_eq!(decode_manifest_path(&encode_manifest_path(p)), p);
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff_extension(&[0xFF, 0xD8, 0xFF, 0xE0]), "jpg");
        assert_eq!(sniff_extension(b"\x89PNG\r\n\x1a\nrest"), "png");
        assert_eq!(sniff_extension(b"GIF89a.."), "gif");
        assert_eq!(sniff_extension(b"hello"), "bin");
    }

    #[test]
    fn unsafe_paths() {
        assert!(unsafe_path_reason("../x").is_some());
        assert!(unsafe_path_reason("/etc/passwd").is_some());
        assert!(unsafe_path_reason("a//b").is_some());
        assert!(unsafe_path_reason("projects/x/images/y.jpg").is_none());
        assert_eq!(
            model_file(Uuid::nil(), Uuid::nil(), "../ONNX", Some("a/b"), "zip").rsplit('/').next(),
            Some(".._ONNX-a_b.zip")
        );
    }
}
