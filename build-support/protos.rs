// Shared by every crate's `build.rs` (through `include!`): compiles the
// crate's protos with protox — pure Rust, so nobody installs `protoc` —
// and keeps the encoded descriptor set for gRPC reflection.

/// Compiles `protos` (paths under `proto/`) into the crate's `OUT_DIR`.
fn compile_protos(protos: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).open_files(protos)?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptor.bin"), compiler.encode_file_descriptor_set())?;
    tonic_prost_build::configure().compile_fds(compiler.file_descriptor_set())?;
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=../build-support/protos.rs");
    Ok(())
}
