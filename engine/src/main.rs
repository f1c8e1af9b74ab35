//! The `engine` binary.

fn main() -> std::process::ExitCode {
    engine::cli::main()
}
