use clap::Parser;

fn main() {
    // Before clap: a bad STAMP_* value is refused naming the variable, not the flag.
    if let Err(e) = stamp::env_vars::check() {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
    let cli = stamp::cli::Cli::parse();
    let code = stamp::commands::main(cli);
    std::process::exit(code);
}
