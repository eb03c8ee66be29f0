//! What must hold before a stack is applied or destroyed: the approval of its plan,
//! no unseen destroy, no deletion protection on what a destroy would remove.

use crate::error::Error;
use crate::stages::contract::{Approval, PlannedChange, ShownPlan, StageContext};
use crate::tools::process::StageLog;
use crate::tools::terraform::{self, Action};

/// Asks the approval policy whether a planned stack may be applied.
pub(super) async fn approve(p: &StageContext, plan: &ShownPlan) -> Result<(), Error> {
    let stage = plan.stage;
    match &p.opts.approval {
        Approval::Auto => Ok(()),
        Approval::Ask(approver) => {
            if approver.approve(p.name(), plan).await? {
                Ok(())
            } else {
                Err(Error::stage(format!("{stage}: apply cancelled; nothing was changed in this stage")))
            }
        }
        Approval::Approved(reviewed) => {
            let unseen = unseen_destroys(&plan.planned, reviewed.destroys.get(&(p.name().to_owned(), stage)));
            if unseen.is_empty() { Ok(()) } else { Err(reviewed.refusal(p.name(), stage, &unseen)) }
        }
    }
}

/// The destroys and replacements of `planned` that the approved plan did not show.
/// A tainted resource's replacement is not asked about: its create failed part-way
/// (or an operator tainted it), and the deploy that follows a failed one (a re-run
/// of the same approved plan) must replace it to go on.
pub(crate) fn unseen_destroys(planned: &[PlannedChange], shown: Option<&std::collections::BTreeSet<String>>) -> Vec<String> {
    planned
        .iter()
        .filter(|c| c.destroys() && !(c.action == Action::Replace && c.tainted) && !shown.is_some_and(|s| s.contains(&c.address)))
        .map(|c| format!("{} {}", c.action, c.address))
        .collect()
}

/// Destroy's guard, before anything is destroyed: every resource of the customer's
/// states that AWS can protect (an RDS instance, a load balancer) is looked up in AWS,
/// whatever the state says (protection may have been switched on by hand after the
/// apply, or off since); one whose protection is on refuses the whole destroy.
pub(crate) async fn refuse_protected(p: &StageContext, log: &mut StageLog, states: &[&str]) -> Result<(), Error> {
    let mut on = Vec::new();
    for state in states {
        for r in terraform::protectable_resources(state).map_err(Error::stage)? {
            if p.aws.still_protected("bucket", log, &r).await? {
                on.push(r);
            }
        }
    }
    if on.is_empty() {
        return Ok(());
    }
    let endpoint = p.ctx.fleet.aws.endpoint.as_ref().map(|e| format!(" --endpoint-url {e}")).unwrap_or_default();
    let region = &p.plan.customer.region;
    let (what, commands): (Vec<String>, Vec<String>) = on
        .iter()
        .map(|p| match p {
            terraform::Protected::Database { identifier } => (
                format!("database {identifier}"),
                format!(
                    "aws{endpoint} --region {region} rds modify-db-instance --db-instance-identifier {identifier} --no-deletion-protection --apply-immediately"
                ),
            ),
            terraform::Protected::LoadBalancer { arn } => (
                format!("load balancer {arn}"),
                format!(
                    "aws{endpoint} --region {region} elbv2 modify-load-balancer-attributes --load-balancer-arn {arn} --attributes Key=deletion_protection.enabled,Value=false"
                ),
            ),
        })
        .unzip();
    Err(Error::stage_hint(
        format!(
            "refusing to destroy {}: deletion protection is on for {} ({} env); nothing was destroyed",
            p.plan.customer.name,
            what.join(" and "),
            p.plan.customer.env
        ),
        format!(
            "this is what protects a production customer from a mistaken destroy. To destroy it for good, turn it off, \
             then run `stamp destroy {}` again (RDS then keeps a final snapshot):\n    {}",
            p.plan.customer.name,
            commands.join("\n    ")
        ),
    ))
}
