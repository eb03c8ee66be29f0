use clap::Parser;

fn main() {
    // stamp's binary is also the relay each tool runs under (src/tools/relay.rs).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == stamp::tools::relay::ARG) {
        std::process::exit(stamp::tools::relay::main(&args[2..]));
    }
    // Before clap: a bad STAMP_* value is refused naming the variable, not the flag.
    if let Err(e) = stamp::env_vars::check() {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
    let cli = stamp::cli::Cli::parse();
    let code = stamp::commands::main(cli);
    std::process::exit(code);
}
