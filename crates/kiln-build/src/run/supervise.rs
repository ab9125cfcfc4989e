//! Steps that run while QEMU does: a step future raced against QEMU's
//! exit, so a dead VM ends the step at once with what QEMU said.

use std::time::Duration;

use kiln_qemu::process::QemuProcess;

use crate::events::BuildEvents;
use crate::pipeline::BoxError;

/// How long a failed step waits to see whether QEMU exited too. A guest
/// whose QEMU is killed drops its SSH connection a moment before QEMU's
/// exit is reaped, and the lost connection is only a symptom.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Runs `fut` while watching QEMU. The outer `Err` says QEMU exited: while
/// `fut` ran, or within [`EXIT_GRACE`] after it failed (its failure is then
/// put down to QEMU's exit). Otherwise `fut`'s own result.
pub(crate) async fn watch<T, E>(
    qemu: &QemuProcess,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, String> {
    tokio::select! {
        r = fut => match r {
            Ok(v) => Ok(Ok(v)),
            Err(e) => match qemu.wait_exit_timeout(EXIT_GRACE).await {
                Some(_) => Err(qemu_died(qemu)),
                None => Ok(Err(e)),
            },
        },
        _ = qemu.wait_exit() => Err(qemu_died(qemu)),
    }
}

/// A step future raced against QEMU's exit (see [`watch`]).
pub(crate) async fn supervised<T, E: Into<BoxError>>(
    qemu: &QemuProcess,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BoxError> {
    watch(qemu, fut).await?.map_err(Into::into)
}

/// QEMU's exit status and the last lines it wrote to stderr.
pub(crate) fn qemu_died(qemu: &QemuProcess) -> String {
    match qemu.try_exit() {
        Some(exit) => format!(
            "QEMU exited unexpectedly ({}){}",
            exit.status(),
            tail_text("QEMU said", &exit.stderr_tail)
        ),
        None => "QEMU exited unexpectedly".into(),
    }
}

/// `lines` under a heading, to append to a message (empty: nothing).
pub(crate) fn tail_text(what: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n{what}:\n  {}", lines.join("\n  "))
    }
}

/// Send console lines to the events as they arrive.
pub(crate) fn forward_console(qemu: &QemuProcess, ev: &BuildEvents) {
    let mut rx = qemu.console().subscribe();
    let ev = ev.clone();
    tokio::spawn(async move {
        while let Ok(line) = rx.recv().await {
            ev.console(line.text);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_qemu::process::QemuCommand;

    /// A stand-in for QEMU: `sh -c SCRIPT` in its own process group.
    pub(crate) async fn fake_qemu(script: &str) -> QemuProcess {
        QemuProcess::spawn(QemuCommand {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: None,
            console_from_stdout: false,
            console_log: None,
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_failure_just_before_qemu_dies_is_put_down_to_qemu() {
        // As when QEMU is killed: the SSH connection drops first.
        let qemu = fake_qemu("sleep 0.3; kill -9 $$").await;
        let step = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err::<(), _>("script disconnected unexpectedly")
        };
        let died = watch(&qemu, step).await.unwrap_err();
        assert_eq!(died, "QEMU exited unexpectedly (killed by signal 9)");
    }

    #[tokio::test]
    async fn a_failure_while_qemu_runs_on_is_the_steps_own() {
        let qemu = fake_qemu("sleep 30").await;
        let r = watch(&qemu, async { Err::<(), _>("exit code 3") }).await;
        assert_eq!(r, Ok(Err("exit code 3")));
        assert_eq!(
            supervised(&qemu, async { Ok::<_, String>(7) })
                .await
                .unwrap(),
            7
        );
        qemu.kill().await;
    }

    #[tokio::test]
    async fn qemu_exiting_while_a_step_runs_ends_the_step() {
        let qemu = fake_qemu("echo 'qemu: bad things' >&2; exit 3").await;
        let step = std::future::pending::<Result<(), String>>();
        let died = supervised(&qemu, step).await.unwrap_err();
        assert_eq!(
            died.to_string(),
            "QEMU exited unexpectedly (exit status 3)\nQEMU said:\n  qemu: bad things"
        );
    }
}
