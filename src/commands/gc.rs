//! `gc`: deregisters the AMIs stamp baked (tagged `stamp:image_key`) that nothing
//! needs any more, with their snapshots. An image is kept when a release among a
//! customer's last `[rollout] keep_releases` history records names it (by id or by
//! image key), when it is a customer's current release, or when a customer's
//! frontends state runs it (a customer deployed before stamp kept a history). Every
//! customer's history and state is read first: one that cannot be read stops gc
//! before anything is deleted.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Fleet;
use crate::customer::release::{current_and_previous, open_bucket, read_history};
use crate::error::{EXIT_USAGE, Error};
use crate::names::AmiId;
use crate::tools::aws::{Aws, TAG_IMAGE_KEY};
use crate::tools::process::StageLog;
use crate::tools::terraform;

/// An image stamp baked, as describe-images lists it.
struct Image {
    id: AmiId,
    key: String,
    created: String,
    snapshots: Vec<String>,
}

pub(super) async fn gc(fleet: Fleet, dry_run: bool, auto_approve: bool) -> Result<(), Error> {
    if !dry_run && !auto_approve && !crate::ui::prompt::interactive() {
        return Err(Error::usage_hint(
            "refusing to deregister images without a terminal to confirm",
            "pass --auto-approve (CI), --dry-run to only list, or run it in a terminal",
        ));
    }
    let keep_n = fleet.rollout.keep_releases;
    let ctx = super::history::reading_context(fleet)?;
    let fleet = &ctx.fleet;
    let mut log = StageLog::discard_with_notes();
    // AMI id or image key -> why it is kept.
    let mut keep: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut regions: BTreeMap<String, Aws> = BTreeMap::new();
    let stop =
        |what: String| Error::stage_hint(format!("{what}; gc deleted nothing"), "gc decides on every customer's history or not at all");
    let names = fleet.customer_names()?;
    for entry in names {
        let name = entry.map_err(|(p, m)| stop(format!("{}: {m}", p.display())))?;
        let c = fleet.load_customer(&name).map_err(|e| stop(format!("customer {name}'s file does not load: {e}")))?;
        let (aws, bucket) = open_bucket(&ctx, &c, &mut log).await.map_err(|e| stop(format!("{name}: {e}")))?;
        let records = read_history(&aws, &mut log, &bucket, name.as_str(), None)
            .await
            .map_err(|e| stop(format!("cannot read the history of {name}: {e}")))?;
        let mut add = |what: Option<&String>, why: String| {
            if let Some(w) = what {
                keep.entry(w.clone()).or_default().insert(why);
            }
        };
        for r in records.iter().take(keep_n) {
            let why = format!("{name}'s release {} (among its last {keep_n})", r.release_id);
            add(r.release.ami.as_ref(), why.clone());
            add(r.release.image_key.as_ref(), why);
        }
        if let (Some(cur), _) = current_and_previous(&records) {
            let why = format!("run by {name} (its current release {})", cur.release_id);
            add(cur.release.ami.as_ref(), why.clone());
            add(cur.release.image_key.as_ref(), why);
        }
        // What its frontends state runs, whatever the history says.
        let key = format!("{name}/frontends/{}", c.env);
        let state = aws.read_object("gc", &mut log, &bucket, &key).await.map_err(|e| stop(format!("{name}: {e}")))?;
        if let Some(state) = state {
            let outputs = terraform::outputs_from_state(&state).map_err(|m| stop(format!("s3://{bucket}/{key}: {m}")))?;
            if let Some(ami) = outputs.get("ami_id").and_then(|o| o.value.as_str()) {
                add(Some(&ami.to_owned()), format!("run by {name} (its frontends state)"));
            }
        }
        regions.entry(c.region.to_string()).or_insert(aws);
    }
    let mut delete = Vec::new();
    for (region, aws) in &regions {
        for image in images(aws, &mut log).await.map_err(|e| stop(format!("listing the images in {region}: {e}")))? {
            let why: BTreeSet<&String> = [image.id.as_str(), image.key.as_str()].iter().filter_map(|k| keep.get(*k)).flatten().collect();
            if why.is_empty() {
                println!("delete {} {region} (image {}, created {})", image.id, image.key, image.created);
                delete.push((aws, image));
            } else {
                println!("keep   {} {region}: {}", image.id, why.into_iter().cloned().collect::<Vec<_>>().join("; "));
            }
        }
    }
    if delete.is_empty() {
        eprintln!("nothing to delete");
        return Ok(());
    }
    if dry_run {
        eprintln!("--dry-run: {} image(s) would be deregistered with their snapshots; nothing was deleted", delete.len());
        return Ok(());
    }
    if !auto_approve {
        let q = format!("\nDeregister {} image(s) and delete their snapshots? Only 'yes' will be accepted: ", delete.len());
        match crate::ui::prompt::ask(&q).await {
            Ok(a) if a == "yes" => {}
            Ok(_) => return Err(Error::Reported { message: "gc cancelled; nothing was deleted".into(), code: EXIT_USAGE }),
            Err(()) => return Err(Error::Interrupted(None)),
        }
    }
    for (aws, image) in &delete {
        aws.delete_image("gc", &mut log, &image.id, &image.snapshots).await?;
        eprintln!("deregistered {} and its {} snapshot(s)", image.id, image.snapshots.len());
    }
    Ok(())
}

/// The images stamp baked in the region of `aws`: those tagged `stamp:image_key`.
async fn images(aws: &Aws, log: &mut StageLog) -> Result<Vec<Image>, Error> {
    let filter = format!("Name=tag-key,Values={TAG_IMAGE_KEY}");
    let args = ["ec2", "describe-images", "--owners", "self", "--filters", &filter, "--output", "json"];
    let (_, out, _) = aws.run("gc", log, &args, &[0]).await?;
    Ok(crate::tools::aws::parse_images(&out, TAG_IMAGE_KEY)?
        .into_iter()
        .map(|(id, created, snapshots, key)| Image { id, key: key.unwrap_or_default(), created, snapshots })
        .collect())
}
