//! `doctor`: the tools, their versions, and whether AWS (or the emulator) answers.

use crate::config::Fleet;
use crate::error::Error;
use crate::tools::find;
use crate::tools::process::{StageLog, Stream, Tail, ToolCommand};

pub async fn doctor(fleet: &Fleet) -> Result<(), Error> {
    let mut problems = 0;
    println!("config:   {}", fleet.config_path.display());
    println!("endpoint: {}", fleet.aws.endpoint.as_deref().unwrap_or("real AWS"));
    // (name, names looked up on PATH, configured choice, version arguments)
    type Probe<'a> = (&'a str, &'a [&'a str], Option<&'a str>, &'a [&'a str]);
    let tools: [Probe; 3] = [
        ("terraform", &["terraform", "tofu"], fleet.tools.terraform.as_deref(), &["version"]),
        ("packer", &["packer"], fleet.tools.packer.as_deref(), &["version"]),
        ("aws", &["aws"], fleet.tools.aws.as_deref(), &["--version"]),
    ];
    let env = find::tool_env(fleet, &fleet.region, &fleet.paths.work)?;
    let mut aws_path = None;
    for (name, names, choice, args) in tools {
        match find::find_tool(names, choice, &fleet.root, &format!("[tools] {name}")) {
            Ok(path) => {
                let mut first = String::new();
                let r = ToolCommand::new(&path, &fleet.root)
                    .args(args.iter().copied())
                    .envs(&env)
                    .run("doctor", &mut StageLog::discard(), &[0], false, &mut |stream, l| {
                        if first.is_empty() && stream == Stream::Stdout && !l.trim().is_empty() {
                            first = l.trim().to_owned();
                        }
                        Tail::Raw
                    })
                    .await;
                match r {
                    Ok(_) => println!("ok   {name:<10} {} ({first})", path.display()),
                    Err(e) => {
                        problems += 1;
                        println!("FAIL {name:<10} {}: {e}", path.display());
                    }
                }
                if name == "aws" {
                    aws_path = Some(path);
                }
            }
            Err(e) => {
                problems += 1;
                println!("FAIL {name:<10} {e}");
            }
        }
    }
    if let Some(program) = aws_path {
        let aws = crate::tools::aws::Aws::new(fleet, program, env.clone());
        match aws.account_id("doctor", &mut StageLog::discard_with_notes()).await {
            Ok(a) => println!("ok   {:<10} credentials work, account {a}", "aws"),
            Err(e) => {
                problems += 1;
                println!("FAIL {:<10} cannot reach AWS with these credentials: {e}", "aws");
            }
        }
    }
    match fleet.customer_names() {
        Ok(n) => println!("ok   {:<10} {} customer file(s) in {}", "customers", n.len(), fleet.paths.customers.display()),
        Err(e) => {
            problems += 1;
            println!("FAIL {:<10} {e}", "customers");
        }
    }
    if problems > 0 {
        return Err(Error::stage(format!("doctor found {problems} problem(s)")));
    }
    Ok(())
}
