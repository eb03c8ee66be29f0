//! The confirmation prompt: the binary's side of the engine's approval policy.
//! The answer is read on a thread of its own so that a Ctrl-C at the prompt
//! interrupts stamp at once instead of waiting for Enter.

use std::io::{BufRead, IsTerminal};
use std::rc::Rc;

use crate::error::Error;
use crate::events::EventSink;
use crate::stages::contract::{Approver, ShownPlan};
use crate::tools::terraform;

pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks on the terminal before each stack with changes is applied.
pub(crate) struct TerminalApprover {
    pub sink: Rc<dyn EventSink>,
}

impl Approver for TerminalApprover {
    fn approve<'a>(&'a self, customer: &'a str, plan: &'a ShownPlan) -> std::pin::Pin<Box<dyn Future<Output = Result<bool, Error>> + 'a>> {
        Box::pin(async move {
            let c = plan.changes;
            let mut text = format!("\n{customer} {}: {}\n", plan.stage, c.describe());
            for p in &plan.planned {
                let mark = if p.destroys() { "!!" } else { "  " };
                text.push_str(&format!(" {mark} {:>3} {:>8} {}\n", p.action.marker(), p.action, p.address));
            }
            text.push_str(&format!("  (full plan: cd {} && terraform show {})\n", plan.dir.display(), terraform::PLAN_FILE));
            text.push_str("Apply these changes? Only 'yes' will be accepted: ");
            self.sink.pause();
            let answer = ask(&text).await;
            self.sink.resume();
            answer.map(|a| a == "yes").map_err(|_| Error::Interrupted(Some(plan.stage.to_string())))
        })
    }
}

/// Prints `question` on stderr and reads one line; `Err` when interrupted.
pub(crate) async fn ask(question: &str) -> Result<String, ()> {
    eprint!("{question}");
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        let _ = tx.send(answer);
    });
    let interrupted = async {
        match crate::signals::subscribe() {
            Some(mut r) => {
                let _ = r.changed().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        a = rx => Ok(a.unwrap_or_default().trim().to_owned()),
        _ = interrupted => {
            eprintln!();
            Err(())
        }
    }
}
