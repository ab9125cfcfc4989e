//! Ctrl-C and SIGTERM for commands that write artifacts outside a build:
//! the temporary file being written is removed before the process exits,
//! so an interrupted `kiln maas tgz` leaves nothing behind.

use crate::context::Context;
use crate::exit::Exit;

/// Watch for SIGINT/SIGTERM on the command's runtime (its worker threads
/// run while the main thread writes); on either, remove every staged
/// output and exit with 130.
pub fn remove_outputs_on_signal(cx: &Context) {
    let Ok(runtime) = cx.runtime() else { return };
    // Register the handlers before the writer starts, not in the task.
    let _entered = runtime.enter();
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let (Ok(mut term), Ok(mut int)) = (term, int) else {
        return;
    };
    runtime.spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        kiln_image::output::remove_staged_files();
        crate::render::err_line("interrupted: the unfinished output was removed");
        std::process::exit(Exit::Interrupted as i32);
    });
}
