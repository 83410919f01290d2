//! Uploading a local spool file to a store as it grows (see the module docs of `store`).
