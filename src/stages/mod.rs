//! The stages of a customer's pipeline, one file each, typed in and out:
//! `bucket` (-> the state bucket), `stack` (a terraform stack -> its outputs),
//! `ami` (the VPC outputs -> an AMI, baked once per image), `smoke` (the frontends'
//! `public_url` -> it answers).

pub(crate) mod ami;
pub(crate) mod bucket;
pub mod contract;
pub(crate) mod init_cache;
pub(crate) mod smoke;
pub(crate) mod stack;
