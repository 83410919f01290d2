//! The zip's end, written last by [`BagWriter::finish`]: one central header per entry (tag files
//! and payload merged in archive order, the payload read back from the writer's index) and the
//! end-of-central-directory records (zip64 when needed).

use super::super::journal::WrittenEntry;
use super::super::zipwrite::{self, Header};
use super::{BagWriter, Error};

impl BagWriter {
    /// The central directory in archive order: tag files and payload files merged by offset (the
    /// index yields the payload in that order already).
    pub(super) fn write_central_directory(&mut self) -> Result<(), Error> {
        let cd_offset = self.out.pos();
        let mut entries = std::mem::take(&mut self.entries);
        let mut tags = std::mem::take(&mut self.tags);
        tags.sort_unstable_by_key(|e| e.offset);
        let result = match entries.live() {
            Ok(live) => self.write_central_headers(&tags, live),
            Err(e) => Err(self.index_error(e)),
        };
        self.entries = entries;
        self.tags = tags;
        let count = result?;
        let mut record = Vec::with_capacity(512);
        let cd_size = self.out.pos() - cd_offset;
        zipwrite::end_records(&mut record, count, cd_offset, cd_size, &self.limits);
        self.out.put(&record).and_then(|_| self.out.flush_buffer()).map_err(|e| self.io_error(e))
    }

    /// Writes one central header per entry, tags and payload merged by offset; returns how many.
    fn write_central_headers(
        &mut self,
        tags: &[WrittenEntry],
        payload: impl Iterator<Item = std::io::Result<WrittenEntry>>,
    ) -> Result<u64, Error> {
        let mut record = Vec::with_capacity(512);
        let (mut count, mut tags) = (0u64, tags.iter().peekable());
        for e in payload {
            let e = e.map_err(|source| self.index_error(source))?;
            while let Some(t) = tags.next_if(|t| t.offset < e.offset) {
                self.put_central_header(&mut record, &self.tag_name(&t.data_path), t)?;
                count += 1;
            }
            self.put_central_header(&mut record, &self.payload_name(&e.data_path), &e)?;
            count += 1;
        }
        for t in tags {
            self.put_central_header(&mut record, &self.tag_name(&t.data_path), t)?;
            count += 1;
        }
        Ok(count)
    }

    fn put_central_header(&mut self, record: &mut Vec<u8>, name: &str, e: &WrittenEntry) -> Result<(), Error> {
        let h = Header {
            method: e.method(),
            crc32: e.crc32,
            compressed_size: e.compressed_size,
            size: e.size,
            zip64: e.zip64,
            descriptor: e.descriptor,
        };
        record.clear();
        zipwrite::central_header(record, name.as_bytes(), &h, e.offset, &self.limits);
        self.out.put(record).map_err(|err| self.io_error(err))
    }
}
