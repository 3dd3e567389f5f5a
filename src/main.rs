fn main() -> std::process::ExitCode {
    nodeforge::cli::main()
}
