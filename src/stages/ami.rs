//! Stage 3: the AMI. Writes `vars/<customer>.json` from the VPC outputs, then takes
//! the image of this customer's image key (`fleet::bakes`): reused when one is
//! already tagged with it, else baked once by `packer build` for every customer of
//! the run that needs it. Typed in (the VPC outputs), typed out (the AMI id).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::Error;
use crate::events::{Stage, Status};
use crate::names::AmiId;
use crate::render;
use crate::shared::bakes::{BakeFailed, Baked, image_key};
use crate::stages::contract::{StageContext, StageDone, VpcOutputs};
use crate::tools::aws::{TAG_COMMIT, TAG_CUSTOMER, TAG_GIT_ID, TAG_IMAGE_KEY, TAG_TEMPLATE_HASH};
use crate::tools::packer::PACKER_RECORDED;
use crate::tools::packer::{self, PackerEvent};
use crate::tools::process::{StageLog, Tail, ToolCommand};
use crate::tools::terraform;

pub async fn run(p: &mut StageContext, vpc: &VpcOutputs) -> Result<StageDone<AmiId>, Error> {
    // Private var files a killed run left behind (this customer's lock is held: no
    // other run is using them).
    for stale in std::fs::read_dir(&p.work).into_iter().flatten().flatten() {
        if stale.file_name().to_string_lossy().starts_with(PRIVATE_DIR_PREFIX) {
            let _ = std::fs::remove_dir_all(stale.path());
        }
    }
    // A rollback: the release's image, when it is still registered (no bake).
    if let Some(pin) = p.plan.pin.clone()
        && let Some(ami) = &pin.ami
    {
        let mut log = p.log(Stage::Ami)?;
        p.ui.step(Stage::Ami, &format!("looking for {ami} of release {}", pin.release_id));
        if p.aws.image_exists("ami", &mut log, ami).await? {
            log.note(&format!("stamp: release {} runs {ami}, still registered: deployed again, no bake", pin.release_id));
            return Ok(StageDone::new(ami.clone(), Status::Unchanged, format!("{ami} of release {} (no bake)", pin.release_id)));
        }
        let line = format!("{ami} of release {} is not registered any more: baking its commit {} again", pin.release_id, pin.commit);
        log.note(&format!("stamp: {line}"));
        p.ui.note(&line);
    }
    let hash = template_hash(p)?;
    // Every variable makes the image key (a hash; a sensitive one by its name only);
    // the sensitive ones go to packer in a private file of their own, announced
    // (masked in CI logs) first.
    let vars = packer_vars(p, vpc, &hash)?;
    let (_, secret_vars) = split_sensitive(p, vars.clone());
    for s in secret_vars.values().flat_map(crate::events::secret_leaves) {
        p.ui.secret(Stage::Ami, &s);
    }
    let vars_file = write_packer_vars(p, vpc, &hash)?;
    if let Some(files) = p.plan.app_config.clone() {
        write_app_config(p, &files)?;
    }
    let key = key_of(p, &hash, &vars);
    let cell = p.ctx.bakery.cell(&key);
    if !cell.initialized() {
        p.ui.step(Stage::Ami, &format!("image {key}"));
    }
    let name = p.name().to_owned();
    let baked = cell
        .get_or_init(|| async {
            let result = match p.log(Stage::Ami) {
                Ok(mut log) => bake(p, &mut log, &key, &hash, &vars_file, &secret_vars).await,
                Err(e) => Err(e),
            };
            result.map_err(|e| BakeFailed { by: name.clone(), message: e.to_string() })
        })
        .await
        .clone();
    match baked {
        Ok(Baked { ami, by, built }) => {
            let detail = match (built, by == name) {
                (true, true) => format!("built {ami} (image {key})"),
                (true, false) => format!("{ami}, built by {by}'s stage in this run (image {key})"),
                (false, _) => format!(
                    "reused {ami} (image {key}, {}, template {hash})",
                    p.plan.revision.as_ref().map(|r| r.describe()).unwrap_or_else(|| p.plan.customer.git_id.clone())
                ),
            };
            let status = if built && by == name { Status::Ok } else { Status::Unchanged };
            Ok(StageDone::new(ami, status, detail))
        }
        Err(BakeFailed { by, message }) if by != name => Err(Error::stage_hint(
            format!(
                "the bake of image {key} that this customer shares failed in {by}'s stage: {}",
                message.lines().next().unwrap_or_default()
            ),
            format!("see {by}'s ami log"),
        )),
        Err(BakeFailed { message, .. }) => Err(Error::stage(message)),
    }
}

/// Finds the image of `key`, or bakes it (`--rebuild-ami`: always bakes).
async fn bake(
    p: &mut StageContext,
    log: &mut StageLog,
    key: &str,
    hash: &str,
    vars_file: &Path,
    secret_vars: &BTreeMap<String, Value>,
) -> Result<Baked, Error> {
    let name = p.name().to_owned();
    if !p.opts.rebuild_ami {
        p.ui.step(Stage::Ami, "looking for an AMI of this image");
        let found = p.aws.find_images("ami", log, &[(TAG_IMAGE_KEY, key)]).await?;
        if let Some((ami, _, _)) = found.into_iter().next() {
            return Ok(Baked { ami, by: name, built: false });
        }
    }
    let ami = build(p, log, key, hash, vars_file, secret_vars).await?;
    Ok(Baked { ami, by: name, built: true })
}

async fn build(
    p: &mut StageContext,
    log: &mut StageLog,
    key: &str,
    hash: &str,
    vars_file: &Path,
    secret_vars: &BTreeMap<String, Value>,
) -> Result<AmiId, Error> {
    ensure_amazon_plugin(p, log).await?;
    // A copy of the template directory per image and baker: packer's cache and
    // manifest are its own, even when separate stamp processes bake the same image.
    let template = p.ctx.fleet.paths.packer_template.clone();
    let src = template.parent().unwrap_or(Path::new(".")).to_path_buf();
    let dir = p.ctx.fleet.paths.work.join("bakes").join(key).join(p.name());
    copy_template_dir(&src, &dir).map_err(|e| Error::work_dir(format!("copying {} to {}", src.display(), dir.display()), e))?;
    let mut cmd = ToolCommand::new(&p.ctx.tools().packer, &dir)
        .envs(&p.env)
        .envs(&[("PACKER_NO_COLOR".into(), "1".into())])
        .show_env(&["AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_REGION"])
        .stop_with(libc::SIGTERM)
        .args(["build", "-machine-readable"])
        .arg(format!("-var-file={}", vars_file.display()));
    // Packer 1.6 JSON templates read no PKR_VAR_ variables: the sensitive ones are
    // in a var file of mode 0600 in a directory of mode 0700, removed after the build
    // (when `_private` is dropped, on failure too).
    let _private = if secret_vars.is_empty() {
        None
    } else {
        let (dir, file) = private_var_file(&p.work, secret_vars)?;
        cmd = cmd.arg(format!("-var-file={}", file.display()));
        Some(dir)
    };
    if !p.ctx.fleet.packer_only.is_empty() {
        cmd = cmd.arg(format!("-only={}", p.ctx.fleet.packer_only.join(",")));
    }
    cmd = cmd.arg(template.file_name().unwrap_or_default());
    let ui = p.ui.clone();
    // A bake that failed for a transient cause (throttling, a dropped connection:
    // `stack::transient_failure`) is run again; packer cleans up what it started.
    let artifacts = crate::tools::process::logged(
        log,
        "packer build",
        async |log: &mut StageLog, _| {
            let mut artifacts: Vec<String> = Vec::new();
            cmd.run("ami", log, &[0], false, &mut |_, l| match packer::parse_machine_line(l) {
                Some(PackerEvent::Ui { kind, text }) => {
                    if let Some(step) = packer::step_text(&text) {
                        if kind == "say" || kind == "message" {
                            ui.step(Stage::Ami, &step);
                        }
                        Tail::Text(step)
                    } else {
                        Tail::Skip
                    }
                }
                Some(PackerEvent::ArtifactId { id, .. }) => {
                    artifacts.push(id);
                    Tail::Skip
                }
                Some(PackerEvent::Other) => Tail::Skip,
                None => Tail::Raw,
            })
            .await?;
            Ok(artifacts)
        },
        crate::stages::stack::steps::transient_failure,
    )
    .await?;
    let region = p.plan.customer.region.to_string();
    let ami = artifacts.iter().find_map(|a| packer::ami_for_region(a, &region)).ok_or_else(|| {
        Error::stage_hint(
            format!(
                "packer finished but reported no AMI in {region} (artifacts: {})",
                if artifacts.is_empty() { "none".into() } else { artifacts.join("; ") }
            ),
            format!("check the builders' region and [packer] only; full log: {}", log.path.display()),
        )
    })?;
    // The template tags the image at build time (`image_key`, the commit and the
    // others). A template that does not is tagged now, with what is missing: reuse
    // and destroy find stamp's images by these tags. The git_id as the customer
    // wrote it (a branch, maybe) never reaches packer: stamp tags it itself.
    let c = &p.plan.customer;
    let commit = p.plan.commit()?.to_owned();
    let want =
        [(TAG_CUSTOMER, c.name.to_string()), (TAG_COMMIT, commit), (TAG_TEMPLATE_HASH, hash.to_owned()), (TAG_IMAGE_KEY, key.to_owned())];
    let have = p.aws.image_tags("ami", log, &ami).await?;
    let missing: Vec<&(&str, String)> = want.iter().filter(|(k, v)| have.get(*k) != Some(v)).collect();
    if missing.is_empty() {
        log.note(&format!("stamp: {ami} carries {} from the template's tags", want.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")));
    } else {
        let names: Vec<&str> = missing.iter().map(|(k, _)| *k).collect();
        log.note(&format!(
            "stamp: the template did not tag {ami} with {}: tagging it now. Give the builders these tags (see packer/template.json) so an \
             interrupted build never leaves an untagged image",
            names.join(", ")
        ));
        ui.step(Stage::Ami, &format!("tagging {ami} ({})", names.join(", ")));
    }
    log.note(&format!("stamp: tagging {ami} with {TAG_GIT_ID}={} (packer is given the commit only)", c.git_id));
    let mut tags: Vec<String> = missing.iter().map(|(k, v)| format!("Key={k},Value={v}")).collect();
    tags.push(format!("Key={TAG_GIT_ID},Value={}", c.git_id));
    let id = ami.to_string();
    let mut args = vec!["ec2", "create-tags", "--resources", id.as_str(), "--tags"];
    args.extend(tags.iter().map(String::as_str));
    p.aws.run("ami", log, &args, &[0]).await?;
    Ok(ami)
}

/// Packer >= 1.10 no longer bundles the amazon plugin: install it when missing,
/// once per run (the plugin directory is the user's, shared by every customer).
async fn ensure_amazon_plugin(p: &StageContext, log: &mut StageLog) -> Result<(), Error> {
    let mut checked = p.ctx.plugin_lock.lock().await;
    if *checked {
        return Ok(());
    }
    let dir = p.ctx.fleet.root.clone();
    let packer = p.ctx.tools().packer.clone();
    let v = ToolCommand::new(&packer, &dir).envs(&p.env).arg("version").run("ami", log, &[0], true, &mut |_, _| Tail::Raw).await?;
    if let Some((major, minor)) = packer::parse_version(&v.stdout)
        && (major, minor) >= (1, 10)
    {
        let installed = ToolCommand::new(&packer, &dir)
            .envs(&p.env)
            .args(["plugins", "installed"])
            .run("ami", log, &[0], true, &mut |_, _| Tail::Raw)
            .await?;
        if !installed.stdout.contains("github.com/hashicorp/amazon") {
            p.ui.step(Stage::Ami, "installing the packer amazon plugin");
            ToolCommand::new(&packer, &dir)
                .envs(&p.env)
                .args(["plugins", "install", "github.com/hashicorp/amazon"])
                .run("ami", log, &[0], false, &mut |_, _| Tail::Raw)
                .await?;
        }
    }
    *checked = true;
    Ok(())
}

/// Destroy: deregisters the AMIs this customer baked or runs, unless another
/// deployed customer's frontends still run them.
pub async fn deregister(p: &mut StageContext, ran: Option<&AmiId>) -> Result<StageDone<()>, Error> {
    let mut log = p.log(Stage::Ami)?;
    let name = p.name().to_owned();
    let mut candidates = p.aws.find_images("ami", &mut log, &[(TAG_CUSTOMER, &name)]).await?;
    if let Some(ran) = ran
        && !candidates.iter().any(|(id, _, _)| id == ran)
    {
        // Baked by another customer's stage; stamp's own (tagged) images only.
        candidates.extend(p.aws.find_images("ami", &mut log, &[]).await?.into_iter().filter(|(id, _, _)| id == ran));
    }
    if candidates.is_empty() {
        return Ok(StageDone::new((), Status::Unchanged, "0 deregistered"));
    }
    let (mut gone, mut kept) = (0, Vec::new());
    for (id, _, snaps) in &candidates {
        // Customers of one run destroying the same image decide one after the other,
        // each reading the others' states afresh.
        let lock = p.ctx.lock(&format!("ami:{id}"));
        let _held = lock.lock().await;
        let in_use = amis_used_by_others(p, &mut log).await?;
        if let Some(users) = in_use.get(id.as_str()) {
            kept.push(format!("{id} (run by {})", users.iter().cloned().collect::<Vec<_>>().join(", ")));
            continue;
        }
        p.ui.step(Stage::Ami, &format!("deregistering {id}"));
        p.aws.delete_image("ami", &mut log, id, snaps).await?;
        gone += 1;
    }
    let mut detail = format!("{gone} deregistered");
    if !kept.is_empty() {
        detail.push_str(&format!(", kept {}", kept.join(", ")));
    }
    Ok(StageDone::new((), if gone == 0 { Status::Unchanged } else { Status::Ok }, detail))
}

/// AMI id -> the other customers (same region) whose deployed frontends run it,
/// read from their states.
async fn amis_used_by_others(p: &StageContext, log: &mut StageLog) -> Result<BTreeMap<String, BTreeSet<String>>, Error> {
    let fleet = &p.ctx.fleet;
    let me = &p.plan.customer;
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let names = fleet.customer_names()?;
    for other in names.into_iter().filter_map(Result::ok).filter(|n| n != &me.name) {
        // A customer whose file does not load may run the image: not knowing is not "unused".
        let c = fleet.load_customer(&other).map_err(|e| {
            Error::stage_hint(
                format!("cannot tell whether customer {other} runs an AMI of {}: its file does not load: {e}", me.name),
                "fix that customer's file, then run destroy again; no AMI was deregistered",
            )
        })?;
        if c.region != me.region {
            continue;
        }
        let bucket = crate::stages::bucket::bucket_of(&p.ctx, &c, &p.aws, log).await?;
        let key = format!("{other}/frontends/{}", c.env);
        // A read that fails, or a state that does not parse, stops the deregistering:
        // only "no such bucket / key" means the other customer runs nothing here.
        let state = p.aws.read_object("ami", log, &bucket, &key).await.map_err(|e| match e {
            Error::Stage { message, hint } => Error::Stage {
                message: format!("{message}; cannot tell whether customer {other} runs these AMIs: none was deregistered"),
                hint,
            },
            other => other,
        })?;
        let Some(state) = state else { continue };
        let unreadable =
            |m: String| Error::stage(format!("s3://{bucket}/{key} is not a state stamp can read ({m}): no AMI was deregistered"));
        let outs = terraform::outputs_from_state(&state).map_err(unreadable)?;
        if let Some(ami) = outs.get("ami_id").and_then(|o| o.value.as_str())
            && terraform::state_resource_count(&state).map_err(unreadable)? > 0
        {
            used.entry(ami.to_owned()).or_default().insert(other.to_string());
        }
    }
    Ok(used)
}

/// The image key of this customer's image (as the stage computes it).
pub fn image_key_of(p: &StageContext, vpc: &VpcOutputs) -> Result<String, Error> {
    let hash = template_hash(p)?;
    let vars = packer_vars(p, vpc, &hash)?;
    Ok(key_of(p, &hash, &vars))
}

pub fn template_hash(p: &StageContext) -> Result<String, Error> {
    packer::template_hash(&p.ctx.fleet.paths.packer_template).map_err(|e| Error::io("hashing the packer template", e))
}

/// The packer variables: the standard ones the template declares, the rest of the
/// brief's vars/travis.json at the template's defaults, then `[packer.vars]`, then
/// the `[secrets]` the template declares. `git_id` is the commit the customer's
/// git_id named when this run looked (never a branch: the image must hold exactly
/// the commit its key names), so the image key hashes the commit.
pub fn packer_vars(p: &StageContext, vpc: &VpcOutputs, hash: &str) -> Result<BTreeMap<String, Value>, Error> {
    let c = &p.plan.customer;
    let commit = p.plan.commit()?;
    let template = &p.plan.template;
    let standard: [(&str, Value); 8] = [
        ("region", json!(c.region.as_str())),
        ("build_vpc", json!(vpc.vpc_id)),
        ("build_subnet", json!(vpc.build_subnet_id)),
        ("git_id", json!(commit)),
        ("aws_endpoint", json!(p.ctx.fleet.aws.endpoint.clone().unwrap_or_default())),
        ("customer", json!(c.name.as_str())),
        ("app_repo", json!(c.app_repo)),
        ("template_hash", json!(hash)),
    ];
    let mut vars: BTreeMap<String, Value> =
        standard.into_iter().filter(|(k, _)| template.variables.contains(*k)).map(|(k, v)| (k.to_owned(), v)).collect();
    for k in PACKER_RECORDED {
        if let Some(default) = template.defaults.get(k) {
            vars.insert(k.to_owned(), default.clone());
        }
    }
    vars.extend(c.packer_vars.values.clone());
    for (name, secret) in p.plan.secrets.iter().filter(|(k, _)| template.variables.contains(*k)) {
        vars.insert(name.clone(), json!(secret.value()));
    }
    // The image key, for the template to tag the AMI with at build time: an image
    // is then never left untagged (neither reused nor cleaned up) by an interrupt
    // or a failure between packer and stamp's own calls.
    if template.variables.contains("image_key") {
        let key = key_of(p, hash, &vars);
        vars.insert("image_key".into(), json!(key));
    }
    Ok(vars)
}

/// The image key of these variables. A sensitive value counts by its name only: the
/// key is tagged on the AMI, and a hash of a weak secret could be reversed by trying
/// candidates. Rotating a build secret therefore does not bake a new image
/// (`--rebuild-ami` does).
fn key_of(p: &StageContext, hash: &str, vars: &BTreeMap<String, Value>) -> String {
    let (mut plain, secret) = split_sensitive(p, vars.clone());
    plain.extend(secret.into_keys().map(|k| (k, json!("(sensitive)"))));
    image_key(hash, p.plan.customer.region.as_str(), &plain)
}

/// (plain, sensitive): the sensitive ones are the template's "sensitive-variables"
/// and the `[secrets]`.
fn split_sensitive(p: &StageContext, vars: BTreeMap<String, Value>) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    vars.into_iter().partition(|(k, _)| !p.plan.template.sensitive.contains(k) && !p.plan.secrets.contains_key(k))
}

/// `vars/<customer>.json`: every packer variable but the sensitive ones.
pub fn write_packer_vars(p: &StageContext, vpc: &VpcOutputs, hash: &str) -> Result<PathBuf, Error> {
    let dir = &p.ctx.fleet.paths.vars;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(format!("{}.json", p.name()));
    let (plain, _) = split_sensitive(p, packer_vars(p, vpc, hash)?);
    crate::files::write_atomic(&path, &render::vars_json(&plain))?;
    Ok(path)
}

const PRIVATE_DIR_PREFIX: &str = ".packer-secrets-";

/// A var file of mode 0600 holding `vars`, in a new directory of mode 0700 under
/// `work` that is removed with the returned guard.
fn private_var_file(work: &Path, vars: &BTreeMap<String, Value>) -> Result<(tempfile::TempDir, PathBuf), Error> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |what: &str, e| Error::work_dir(format!("{what} in {}", work.display()), e);
    let dir = tempfile::Builder::new()
        .prefix(PRIVATE_DIR_PREFIX)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(work)
        .map_err(|e| err("creating a private directory", e))?;
    let path = dir.path().join("sensitive.json");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| err("creating the sensitive packer var file", e))?;
    f.write_all(render::vars_json(vars).as_bytes()).map_err(|e| err("writing the sensitive packer var file", e))?;
    Ok((dir, path))
}

pub fn write_app_config(p: &StageContext, files: &[(String, String)]) -> Result<PathBuf, Error> {
    let root = p.work.join("app");
    for (rel, text) in files {
        let path = root.join(rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        }
        crate::files::write_atomic(&path, text)?;
    }
    Ok(root)
}

/// Copies the template directory (what `template_hash` covers: no dot files,
/// packer_cache or manifests) into `dest`.
fn copy_template_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "packer_cache" || name.contains("manifest") {
            continue;
        }
        let to = dest.join(&name);
        if entry.path().is_dir() {
            copy_template_dir(&entry.path(), &to)?;
        } else {
            crate::tools::terraform::copy_atomic(&entry.path(), &to)?;
        }
    }
    Ok(())
}
