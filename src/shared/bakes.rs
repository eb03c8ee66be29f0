//! One bake per image. Customers whose image inputs are identical share one
//! `packer build`: the template and every file beside it (its hash), the region,
//! and every packer variable but the build placement ones (`PACKER_PLACEMENT`:
//! where the build instance runs, not what it makes). The first customer to need an
//! image bakes it (or finds it already baked, by its `stamp:image_key` tag); the
//! others wait for that bake and reuse its AMI. Different inputs bake apart, side
//! by side, each in a copy of the template directory of its own (packer's cache
//! and manifest are not shared).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::names::AmiId;
use crate::tools::packer::PACKER_PLACEMENT;

/// The key of an image: a short hash of everything that makes it what it is.
pub(crate) fn image_key(template_hash: &str, region: &str, vars: &BTreeMap<String, Value>) -> String {
    let mut h = Sha256::new();
    h.update(template_hash.as_bytes());
    h.update([0]);
    h.update(region.as_bytes());
    // `image_key` itself is the template's copy of this key: not an input of it.
    for (k, v) in vars.iter().filter(|(k, _)| !PACKER_PLACEMENT.contains(&k.as_str()) && k.as_str() != "image_key") {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.to_string().as_bytes());
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// How a shared bake ended, as the customers waiting on it see it.
#[derive(Debug, Clone)]
pub(crate) struct Baked {
    pub ami: AmiId,
    /// The customer whose stage ran the bake (or found the image).
    pub by: String,
    /// Whether a build ran in this stamp run (else an image of the key was reused).
    pub built: bool,
}

/// A bake that failed, as the customers waiting on it see it.
#[derive(Debug, Clone)]
pub(crate) struct BakeFailed {
    /// The customer whose stage ran the bake.
    pub by: String,
    pub message: String,
}

/// A bake every customer of an image waits on.
pub(crate) type Bake = Rc<OnceCell<Result<Baked, BakeFailed>>>;

/// The bakes of one stamp run, by image key.
#[derive(Default)]
pub(crate) struct Bakery {
    bakes: RefCell<BTreeMap<String, Bake>>,
}

impl Bakery {
    /// The cell every customer needing `key` waits on: the first one in fills it.
    pub(crate) fn cell(&self, key: &str) -> Bake {
        self.bakes.borrow_mut().entry(key.to_owned()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placement_does_not_change_the_key_and_anything_else_does() {
        let vars = |vpc: &str, git: &str| {
            BTreeMap::from([
                ("build_vpc".to_string(), json!(vpc)),
                ("build_subnet".to_string(), json!("subnet-1")),
                ("customer".to_string(), json!(vpc)),
                ("git_id".to_string(), json!(git)),
                ("instance_type".to_string(), json!("t3.small")),
            ])
        };
        let a = image_key("abc", "eu-west-1", &vars("vpc-1", "v1"));
        assert_eq!(a, image_key("abc", "eu-west-1", &vars("vpc-2", "v1")), "other VPC, same image");
        assert_ne!(a, image_key("abc", "eu-west-1", &vars("vpc-1", "v2")), "other revision");
        assert_ne!(a, image_key("abd", "eu-west-1", &vars("vpc-1", "v1")), "other template");
        assert_ne!(a, image_key("abc", "us-east-1", &vars("vpc-1", "v1")), "other region");
        assert_eq!(a.len(), 16);
    }
}
