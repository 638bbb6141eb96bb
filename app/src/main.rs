//! Sync Lab's desktop app. The GUI and the headless `run` command are being built (see the
//! README's status section); until then this binary explains what exists.

fn main() {
    println!(
        "Sync Lab {}: the GUI is not built yet. What exists today is the sync-core library \
         (protocol and sans-IO engine); run ./test.sh to exercise it.",
        env!("CARGO_PKG_VERSION")
    );
}
