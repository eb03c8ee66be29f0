//! The operations other than deploy: plan (with placeholders for what is not
//! deployed yet), drift, destroy and render.

use super::*;

impl Pipeline {
    /// Plans both stacks, building nothing and writing no state. What cannot be
    /// planned for real yet is planned in a scratch copy (stages::stack::plan_scratch):
    /// the vpc of a never-deployed customer against an empty state, the frontends with
    pub(super) async fn plan(&mut self) -> Result<(), Error> {
        use crate::customer::report::Placeholder;
        use stages::stack::Scratch;
        let bucket = self
            .stage(Stage::Bucket, "state bucket", async |p: &mut Self| {
                stages::bucket::run(&mut p.cx, false, &mut p.report.state_bucket).await
            })
            .await?;
        let label = self.cx.plan.vpc.label.clone();
        let vpc_out = match &bucket {
            Some(b) => {
                self.stage(Stage::Vpc, &label, async |p: &mut Self| {
                    stages::stack::run(&mut p.cx, Stage::Vpc, b, Mode::PlanOnly, None).await
                })
                .await?
            }
            None => {
                self.stage(Stage::Vpc, &label, async |p: &mut Self| {
                    stages::stack::plan_scratch(&mut p.cx, Stage::Vpc, Scratch { bucket: None, placeholders: vec![] }, None).await
                })
                .await?
            }
        };
        let vpc = VpcOutputs::from_outputs(&vpc_out, "vpc").ok();
        if vpc.is_some() {
            self.report.outputs.insert("vpc".into(), outputs_json(&vpc_out, false));
        }
        // Plan never bakes: it plans the frontends with the AMI they already run.
        let ami = match &bucket {
            Some(b) => {
                let mut log = self.cx.log(Stage::Ami)?;
                let key = self.cx.plan.frontends.key.clone();
                let deployed = self.cx.aws.read_object("ami", &mut log, b, &key).await?;
                deployed
                    .as_deref()
                    .and_then(|s| terraform::outputs_from_state(s).ok())
                    .and_then(|o| o.get("ami_id").and_then(|v| v.value.as_str()).and_then(|s| AmiId::parse(s).ok()))
            }
            None => None,
        };
        let mut placeholders = Vec::new();
        let vpc = vpc.unwrap_or_else(|| {
            placeholders.push(Placeholder::VpcOutputs);
            placeholder_vpc()
        });
        let ami = match ami {
            Some(ami) => {
                let detail = self.deployed_revision(&ami).await;
                self.skip(Stage::Ami, &format!("planning with the deployed {ami}; nothing is built. {detail}"));
                self.report.outputs.insert("ami_id".into(), json!(ami.as_str()));
                ami
            }
            None => {
                self.skip(Stage::Ami, "no AMI deployed yet: the frontends are planned with a placeholder; deploy bakes one");
                placeholders.push(Placeholder::Ami);
                placeholder_ami()
            }
        };
        let label = self.cx.plan.frontends.label.clone();
        match &bucket {
            Some(b) if placeholders.is_empty() => {
                self.stage(Stage::Frontends, &label, async |p: &mut Self| {
                    stages::stack::run(&mut p.cx, Stage::Frontends, b, Mode::PlanOnly, Some((&vpc, &ami))).await
                })
                .await?;
            }
            b => {
                let scratch = Scratch { bucket: b.as_ref(), placeholders };
                self.stage(Stage::Frontends, &label, async |p: &mut Self| {
                    stages::stack::plan_scratch(&mut p.cx, Stage::Frontends, scratch, Some((&vpc, &ami))).await
                })
                .await?;
            }
        }
        Ok(())
    }

    /// What the deployed AMI was baked from (its `stamp:git_id` and `stamp:commit`
    /// tags) against the commit this customer's git_id names now.
    pub(super) async fn deployed_revision(&mut self, ami: &AmiId) -> String {
        let Some(now) = self.cx.plan.revision.clone() else { return String::new() };
        let mut log = match self.cx.log(Stage::Ami) {
            Ok(l) => l,
            Err(_) => StageLog::discard(),
        };
        let tags = self.cx.aws.image_tags("ami", &mut log, ami).await.unwrap_or_default();
        let baked = (tags.get(crate::tools::aws::TAG_GIT_ID), tags.get(crate::tools::aws::TAG_COMMIT));
        match baked {
            (_, Some(c)) if c.eq_ignore_ascii_case(&now.commit) => {
                format!("It was baked from commit {}, which {} still names", now.short(), now.git_id)
            }
            (g, Some(c)) => format!(
                "It was baked from {}commit {}; {} names {} now: a deploy bakes that commit",
                g.map(|g| format!("{g} at ")).unwrap_or_default(),
                &c[..12.min(c.len())],
                now.git_id,
                now.short()
            ),
            (_, None) => format!("Its commit is not tagged (stamp:commit); a deploy bakes {}", now.describe()),
        }
    }

    /// For each deployed stack, what drifted (refresh-only plan) and what is pending
    /// (normal plan). Builds nothing, creates no bucket, writes no state.
    pub(super) async fn drift(&mut self) -> Result<(), Error> {
        let bucket = self
            .stage(Stage::Bucket, "state bucket", async |p: &mut Self| {
                stages::bucket::run(&mut p.cx, false, &mut p.report.state_bucket).await
            })
            .await?;
        let Some(bucket) = bucket else {
            self.skip(Stage::Vpc, "not deployed");
            self.skip(Stage::Frontends, "not deployed");
            return Ok(());
        };
        let mut log = self.cx.log(Stage::Bucket)?;
        let vpc_state = self.cx.aws.read_object("bucket", &mut log, &bucket, &self.cx.plan.vpc.key.clone()).await?;
        let fe_state = self.cx.aws.read_object("bucket", &mut log, &bucket, &self.cx.plan.frontends.key.clone()).await?;
        let deployed = |s: &Option<String>| -> Result<bool, Error> {
            Ok(s.as_deref().map(terraform::state_resource_count).transpose().map_err(Error::stage)?.unwrap_or(0) > 0)
        };
        let label = self.cx.plan.vpc.label.clone();
        if deployed(&vpc_state)? {
            self.stage(Stage::Vpc, &label, async |p: &mut Self| stages::stack::drift(&mut p.cx, Stage::Vpc, &bucket, None).await).await?;
        } else {
            self.skip(Stage::Vpc, "not deployed");
        }
        let label = self.cx.plan.frontends.label.clone();
        if deployed(&fe_state)? {
            // The inputs the frontends were applied with: the vpc's outputs and the AMI they run.
            let vpc_outputs = vpc_state.as_deref().and_then(|s| terraform::outputs_from_state(s).ok()).unwrap_or_default();
            let vpc = VpcOutputs::from_outputs(&vpc_outputs, &format!("the vpc state ({})", self.cx.plan.vpc.key))?;
            self.report.outputs.insert("vpc".into(), outputs_json(&vpc_outputs, false));
            let fe_outputs = fe_state.as_deref().and_then(|s| terraform::outputs_from_state(s).ok()).unwrap_or_default();
            let ami = fe_outputs.get("ami_id").and_then(|v| v.value.as_str()).and_then(|s| AmiId::parse(s).ok()).ok_or_else(|| {
                Error::stage(format!("the frontends state ({}) has no ami_id output: cannot plan it", self.cx.plan.frontends.key))
            })?;
            self.report.outputs.insert("ami_id".into(), json!(ami.as_str()));
            self.stage(Stage::Frontends, &label, async |p: &mut Self| {
                stages::stack::drift(&mut p.cx, Stage::Frontends, &bucket, Some((&vpc, &ami))).await
            })
            .await?;
        } else {
            self.skip(Stage::Frontends, "not deployed");
        }
        Ok(())
    }

    pub(super) async fn destroy(&mut self) -> Result<(), Error> {
        let bucket = self
            .stage(Stage::Bucket, "state bucket", async |p: &mut Self| {
                stages::bucket::run(&mut p.cx, false, &mut p.report.state_bucket).await
            })
            .await?;
        let Some(bucket) = bucket else {
            self.skip(Stage::Frontends, "nothing deployed");
            self.skip(Stage::Vpc, "nothing deployed");
            return Ok(());
        };
        // Both states are read, and must parse, before anything is destroyed: a read
        // that fails (anything but "no such key": AccessDenied, a 5xx that outlasted
        // the retries, a dropped connection) or a state that does not parse stops
        // destroy here, so a misread can never skip a stack and then deregister the
        // AMIs it runs.
        let mut log = self.cx.log(Stage::Bucket)?;
        let mut read = async |p: &mut Self, key: String| -> Result<(Option<String>, usize, Outputs), Error> {
            let state = p.cx.aws.read_object("bucket", &mut log, &bucket, &key).await.map_err(|e| refuse_destroy(&key, e))?;
            let Some(text) = state else { return Ok((None, 0, Outputs::new())) };
            let unreadable = |m: String| {
                Error::stage_hint(
                    format!("s3://{bucket}/{key} is not a state stamp can read ({m}): nothing was destroyed"),
                    "look at the object (`aws s3 cp s3://BUCKET/KEY -`); restore a previous version from the bucket's versioning if it was damaged",
                )
            };
            let count = terraform::state_resource_count(&text).map_err(unreadable)?;
            let outputs = terraform::outputs_from_state(&text).map_err(unreadable)?;
            Ok((Some(text), count, outputs))
        };
        let (vpc_state, vpc_count, vpc_outputs) = read(self, self.cx.plan.vpc.key.clone()).await?;
        let (fe_state, fe_count, fe_outputs) = read(self, self.cx.plan.frontends.key.clone()).await?;
        // Deletion protection, as AWS has it now, for both stacks: refused whole.
        let states: Vec<&str> = [fe_state.as_deref(), vpc_state.as_deref()].into_iter().flatten().collect();
        stages::stack::guard::refuse_protected(&self.cx, &mut log, &states).await?;
        // Inputs a destroy plan still evaluates: the values the stacks were applied with,
        // else the contract's placeholders (ids of the right form, never applied).
        let vpc = VpcOutputs::from_outputs(&vpc_outputs, "vpc").unwrap_or_else(|_| placeholder_vpc());
        let ami =
            fe_outputs.get("ami_id").and_then(|v| v.value.as_str()).and_then(|s| AmiId::parse(s).ok()).unwrap_or_else(placeholder_ami);
        let label = self.cx.plan.frontends.label.clone();
        if fe_count > 0 {
            self.stage(Stage::Frontends, &label, async |p: &mut Self| {
                stages::stack::run(&mut p.cx, Stage::Frontends, &bucket, Mode::Destroy, Some((&vpc, &ami))).await
            })
            .await?;
        } else {
            self.skip(Stage::Frontends, "nothing deployed");
        }
        let label = self.cx.plan.vpc.label.clone();
        if vpc_count > 0 {
            self.stage(Stage::Vpc, &label, async |p: &mut Self| {
                stages::stack::run(&mut p.cx, Stage::Vpc, &bucket, Mode::Destroy, None).await
            })
            .await?;
        } else {
            self.skip(Stage::Vpc, "nothing deployed");
        }
        let ran = fe_outputs.get("ami_id").and_then(|v| v.value.as_str()).and_then(|s| AmiId::parse(s).ok());
        self.stage(Stage::Ami, "AMIs", async |p: &mut Self| stages::ami::deregister(&mut p.cx, ran.as_ref()).await).await?;
        self.report.notes.push(format!(
            "The state bucket {bucket} is kept: it holds the state history. Remove it with `aws s3 rb s3://{bucket} --force` once you no longer need it."
        ));
        Ok(())
    }

    pub(super) async fn render(&mut self) -> Result<(), Error> {
        let last = RunReport::read(&self.cx.work.join("last-run.json")).map_err(Error::stage)?;
        let fleet = &self.cx.ctx.fleet;
        let c = &self.cx.plan.customer;
        let from_last = || last.as_ref().and_then(|l| stages::bucket::account_in(fleet, c, l.state_bucket.as_deref()?));
        let account = fleet.aws.account_id.clone().or_else(from_last);
        let bucket = match account {
            Some(acct) => stages::bucket::name_for_account(fleet, c, &acct)?,
            None => stages::bucket::name(&self.cx, &mut StageLog::discard()).await?,
        };
        stages::stack::inputs::sync_working_copy(&self.cx)?;
        stages::stack::inputs::write_files(&self.cx, Stage::Vpc, &bucket, None)?;
        let vpc = last
            .as_ref()
            .and_then(|l| l.outputs.get("vpc").cloned())
            .and_then(|v| serde_json::from_value::<BTreeMap<String, Value>>(v).ok())
            .map(|m| m.into_iter().map(|(k, value)| (k, terraform::OutputValue { value, sensitive: false })).collect::<Outputs>())
            .and_then(|o| VpcOutputs::from_outputs(&o, "vpc").ok());
        let ami = last.as_ref().and_then(|l| l.outputs.get("ami_id")?.as_str().and_then(|s| AmiId::parse(s).ok()));
        let mut written = vec![self.cx.work.join("terraform/vpc")];
        match (&vpc, &ami) {
            (Some(v), Some(a)) => {
                stages::stack::inputs::write_files(&self.cx, Stage::Frontends, &bucket, Some((v, a)))?;
                written.push(self.cx.work.join("terraform").join(&self.cx.plan.frontends.rel));
            }
            _ => self.cx.ui.note("frontends inputs need the vpc outputs and an AMI: they are rendered after the first deploy"),
        }
        if let Some(v) = &vpc {
            written.push(stages::ami::write_packer_vars(&self.cx, v, &stages::ami::template_hash(&self.cx)?)?);
        } else {
            self.cx.ui.note(&format!("vars/{}.json needs the vpc outputs: it is rendered after the first deploy", self.cx.name()));
        }
        if let Some(files) = self.cx.plan.app_config.clone() {
            written.push(stages::ami::write_app_config(&self.cx, &files)?);
        }
        for w in written {
            self.cx.ui.note(&format!("wrote {}", w.display()));
        }
        Ok(())
    }
}

/// A state that could not be read: destroy stops before touching anything.
fn refuse_destroy(key: &str, e: Error) -> Error {
    match e {
        Error::Stage { message, hint } => Error::Stage {
            message: format!(
                "{message}; destroy stopped before touching anything (the state of `{key}` must be read to know what it holds)"
            ),
            hint,
        },
        other => other,
    }
}
