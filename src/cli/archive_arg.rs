//! An archive argument on the command line: a local path or an address in a store
//! (`az://`, `https://ACCOUNT.blob.core.windows.net/`, `s3://`), parsed by
//! [`Location::parse`] as clap reads it.
//!
//! A refused address is reported without clap's usual echo of the value: the store's message
//! quotes the address with any credential removed (a SAS token pasted into a URL, say), where
//! clap would print it whole.

use std::ffi::OsStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

use crate::store::Location;

/// The value parser of every argument that names an archive to read (or write).
#[derive(Debug, Clone, Copy, Default)]
pub struct ArchiveParser;

impl TypedValueParser for ArchiveParser {
    type Value = Location;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<Location, clap::Error> {
        Location::parse(value).map_err(|e| {
            let name = arg.map_or_else(|| "the archive".to_owned(), ToString::to_string);
            clap::Error::raw(ErrorKind::ValueValidation, format!("invalid value for {name}: {e}\n")).with_cmd(cmd)
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[arg(value_parser = ArchiveParser)]
        archive: Location,
    }

    #[test]
    fn addresses_and_paths_parse_and_a_refused_address_is_not_echoed() {
        let args = Args::try_parse_from(["t", "az://backups/nightly.zip"]).unwrap();
        assert_eq!(args.archive.to_string(), "az://backups/nightly.zip");
        let args = Args::try_parse_from(["t", "out/backup.zip"]).unwrap();
        assert_eq!(args.archive, Location::Local("out/backup.zip".into()));

        let err = Args::try_parse_from(["t", "https://acct.blob.core.windows.net/c/a.zip?sv=1&sig=SECRETSIG"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("<ARCHIVE>") && err.contains("query string"), "{err}");
        assert!(!err.contains("SECRETSIG"), "{err}");
    }
}
