//! Which renderer a run uses (`--progress` and the CI it runs in), and the CI
//! environment stamp reads, in one place. Read by the renderers, the GitHub
//! annotations and the commands that write GitHub's files.

use std::path::PathBuf;
use std::sync::OnceLock;

/// `--progress` (or `STAMP_PROGRESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// GitHub groups under GitHub Actions, Travis folds under Travis, else bars in a
    /// terminal and plain lines without one (or with `CI` set).
    #[default]
    Auto,
    Terminal,
    Plain,
    Github,
    Travis,
}

/// The renderer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    Terminal,
    Plain,
    Github,
    Travis,
}

/// The CI environment stamp reads (README: Environment variables).
#[derive(Debug, Clone, Default)]
pub struct CiEnv {
    /// `GITHUB_ACTIONS=true`.
    pub github_actions: bool,
    /// `TRAVIS=true`.
    pub travis: bool,
    /// `GITHUB_STEP_SUMMARY`: the step summary file, appended to.
    pub step_summary: Option<PathBuf>,
    /// `GITHUB_OUTPUT`: a one-customer deploy's outputs go there.
    pub output: Option<PathBuf>,
    /// `GITHUB_WORKSPACE`: annotation paths are made relative to it.
    pub workspace: Option<PathBuf>,
    /// The CI run's page, recorded in each deploy's history record: GitHub Actions'
    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`, Travis
    /// CI's `TRAVIS_JOB_WEB_URL` (else `TRAVIS_BUILD_WEB_URL`).
    pub run_url: Option<String>,
}

impl CiEnv {
    pub fn from_process() -> Self {
        let path = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let is_true = |k: &str| std::env::var(k).is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        Self {
            github_actions: is_true("GITHUB_ACTIONS"),
            travis: is_true("TRAVIS"),
            step_summary: path("GITHUB_STEP_SUMMARY"),
            output: path("GITHUB_OUTPUT"),
            workspace: path("GITHUB_WORKSPACE"),
            run_url: run_url(&|k: &str| std::env::var(k).ok().filter(|v| !v.is_empty())),
        }
    }
}

/// The CI run's page from these variables (see `CiEnv::run_url`).
fn run_url(var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let (Some(server), Some(repo), Some(id)) = (var("GITHUB_SERVER_URL"), var("GITHUB_REPOSITORY"), var("GITHUB_RUN_ID")) {
        return Some(format!("{}/{repo}/actions/runs/{id}", server.trim_end_matches('/')));
    }
    var("TRAVIS_JOB_WEB_URL").or_else(|| var("TRAVIS_BUILD_WEB_URL"))
}

/// The run's CI settings: the environment and the `--progress` choice.
#[derive(Debug, Clone, Default)]
pub struct Ci {
    pub env: CiEnv,
    pub progress: Progress,
}

impl Ci {
    /// The renderer: an explicit `--progress` wins; else GitHub Actions, Travis,
    /// plain lines when `plain` (no terminal, `CI`), the terminal's. (`--no-progress` is
    /// `--progress plain`.)
    pub fn renderer(&self, plain: bool) -> Renderer {
        match self.progress {
            Progress::Terminal => Renderer::Terminal,
            Progress::Plain => Renderer::Plain,
            Progress::Github => Renderer::Github,
            Progress::Travis => Renderer::Travis,
            Progress::Auto if self.env.github_actions => Renderer::Github,
            Progress::Auto if self.env.travis => Renderer::Travis,
            Progress::Auto if plain => Renderer::Plain,
            Progress::Auto => Renderer::Terminal,
        }
    }

    /// GitHub's masks, annotations, step summary and outputs: under GitHub Actions
    /// whatever the renderer, or when `--progress=github` asks for them.
    pub fn github(&self) -> bool {
        self.env.github_actions || self.progress == Progress::Github
    }
}

static CI: OnceLock<Ci> = OnceLock::new();

/// Sets the run's CI settings (once, before anything renders).
pub fn init(progress: Progress) {
    let _ = CI.set(Ci { env: CiEnv::from_process(), progress });
}

pub fn get() -> &'static Ci {
    CI.get_or_init(|| Ci { env: CiEnv::from_process(), progress: Progress::Auto })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_choice_wins_and_ci_is_detected() {
        let gh = Ci { env: CiEnv { github_actions: true, ..Default::default() }, progress: Progress::Auto };
        assert_eq!(gh.renderer(false), Renderer::Github);
        assert!(gh.github());
        let forced = Ci { progress: Progress::Plain, ..gh.clone() };
        assert_eq!(forced.renderer(false), Renderer::Plain);
        assert!(forced.github(), "masks and annotations stay on under GitHub Actions");
        let travis = Ci { env: CiEnv { travis: true, ..Default::default() }, progress: Progress::Auto };
        assert_eq!(travis.renderer(true), Renderer::Travis);
        assert!(!travis.github());
        let local = Ci::default();
        assert_eq!(local.renderer(true), Renderer::Plain);
        assert_eq!(local.renderer(false), Renderer::Terminal);
    }

    #[test]
    fn the_run_url_is_github_actions_run_or_travis_job() {
        let gh = |k: &str| match k {
            "GITHUB_SERVER_URL" => Some("https://github.com/".to_owned()),
            "GITHUB_REPOSITORY" => Some("acme/fleet".to_owned()),
            "GITHUB_RUN_ID" => Some("42".to_owned()),
            _ => None,
        };
        assert_eq!(run_url(&gh).as_deref(), Some("https://github.com/acme/fleet/actions/runs/42"));
        let travis = |k: &str| (k == "TRAVIS_BUILD_WEB_URL").then(|| "https://travis/b/1".to_owned());
        assert_eq!(run_url(&travis).as_deref(), Some("https://travis/b/1"));
        assert_eq!(run_url(&|_: &str| None), None);
    }
}
