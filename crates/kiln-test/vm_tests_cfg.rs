//! The build script of every crate with VM tests (`build =
//! "../kiln-test/vm_tests_cfg.rs"` in its `Cargo.toml`): `KILN_VM_TESTS=1`
//! at build time turns on `cfg(kiln_vm_tests)`, which lifts the `#[ignore]`
//! from the tests that start QEMU (see `kiln_test`).

// Cargo reads a build script's instructions from its stdout.
#![allow(clippy::print_stdout)]

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kiln_vm_tests)");
    println!("cargo::rerun-if-env-changed=KILN_VM_TESTS");
    if std::env::var_os("KILN_VM_TESTS").is_some_and(|v| v == "1") {
        println!("cargo::rustc-cfg=kiln_vm_tests");
    }
}
