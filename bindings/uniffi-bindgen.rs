//! `uniffi-bindgen`, the same version as the library's `uniffi` (bindings/generate.sh runs it).

fn main() {
    uniffi::uniffi_bindgen_main();
}
