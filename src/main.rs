use clap::Parser;

fn main() {
    let cli = stamp::cli::Cli::parse();
    let code = stamp::app::main(cli);
    std::process::exit(code);
}
