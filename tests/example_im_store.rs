//! The example server's IM storage (`examples/server/im_store.rs`): its unit
//! tests, compiled here so `cargo test` runs them (tests inside an example
//! run only with `cargo test --example server`).

#[allow(dead_code)]
#[path = "../examples/server/im_store.rs"]
mod im_store;
