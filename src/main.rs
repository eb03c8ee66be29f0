use clap::Parser;

fn main() {
    let cli = stamp::cli::Cli::parse();
    let code = stamp::commands::main(cli);
    std::process::exit(code);
}
