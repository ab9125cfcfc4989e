//! Ctrl-C and SIGTERM for commands that write artifacts outside a build:
//! the temporary file being written is removed before the process exits,
//! so an interrupted `kiln maas tgz` leaves nothing behind.

use crate::exit::Exit;

/// Watch for SIGINT/SIGTERM on a thread of its own; on either, remove every
/// staged output and exit with 130.
pub fn remove_outputs_on_signal() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build();
    let Ok(runtime) = runtime else { return };
    // Register the handlers before the writer starts, not on the thread.
    let term = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    });
    let int = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    });
    let (Ok(mut term), Ok(mut int)) = (term, int) else {
        return;
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        kiln_image::output::remove_staged_files();
        crate::render::err_line("interrupted: the unfinished output was removed");
        std::process::exit(Exit::Interrupted as i32);
    });
}
