//! kiln-ssh against a real OpenSSH sshd on loopback.

// Helpers outside `#[test]` functions panic on purpose too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kiln_ssh::{
    Auth, AuthorizedKeysCleanup, ExecError, ExitStatus, KeyPair, KeyPairType, Session, Stream,
    Target, TransferError, WaitConfig, WaitError, WaitEvent, wait_ready,
};
use support::{Sshd, mode_of, sshd_available, write_tree};

fn fast_config() -> WaitConfig {
    WaitConfig {
        timeout: Duration::from_secs(30),
        handshake_attempts: 3,
        retry_delay: Duration::from_millis(50),
        ..WaitConfig::default()
    }
}

fn key() -> KeyPair {
    KeyPair::generate(KeyPairType::Ed25519, None, "kiln-test").unwrap()
}

async fn connect(sshd: &Sshd, key: &KeyPair) -> Session {
    let target = Target::new("127.0.0.1", sshd.port, sshd.user.clone());
    wait_ready(target, Auth::new().key(key.clone()), fast_config(), |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()))
}

fn events() -> (mpsc::Sender<WaitEvent>, mpsc::Receiver<WaitEvent>) {
    mpsc::channel()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_connects_and_reports_banner() {
    if !sshd_available("key_auth_connects_and_reports_banner") {
        return;
    }
    let sshd = Sshd::start();
    let k = key();
    sshd.authorize(&k);
    let (tx, rx) = events();
    let target = Target::new("127.0.0.1", sshd.port, sshd.user.clone());
    let session = wait_ready(target, Auth::new().key(k), fast_config(), move |e| {
        tx.send(e).unwrap();
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    let seen: Vec<WaitEvent> = rx.try_iter().collect();
    assert!(
        matches!(&seen[..], [WaitEvent::Banner { version }, WaitEvent::Connected { attempts: 1, host_key, .. }]
            if version.starts_with("SSH-2.0-OpenSSH") && host_key.starts_with("SHA256:")),
        "{seen:?}"
    );
    assert!(session.server_version().starts_with("SSH-2.0-OpenSSH"));
    let out = session.exec_capture("id -un").await.unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), sshd.user);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_stops_after_handshake_attempts() {
    if !sshd_available("wrong_password_stops_after_handshake_attempts") {
        return;
    }
    let sshd = Sshd::start();
    let (tx, rx) = events();
    let target = Target::new("127.0.0.1", sshd.port, sshd.user.clone());
    let config = WaitConfig {
        timeout: Duration::from_secs(300),
        ..fast_config()
    };
    let start = Instant::now();
    let err = wait_ready(
        target,
        Auth::new().password("certainly-not-the-password"),
        config,
        move |e| {
            tx.send(e).unwrap();
        },
    )
    .await
    .unwrap_err();
    let took = start.elapsed();
    let WaitError::AuthRefused {
        attempts,
        methods_offered,
        methods_tried,
        ..
    } = &err
    else {
        panic!("expected AuthRefused, got {err}");
    };
    assert_eq!(*attempts, 3);
    assert!(methods_offered.contains(&"publickey".to_owned()), "{err}");
    assert!(methods_offered.contains(&"password".to_owned()), "{err}");
    assert_eq!(methods_tried, &["password"]);
    // Bounded by the refusals, not by the 300 s ssh_timeout.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let refusals = rx
        .try_iter()
        .filter(|e| matches!(e, WaitEvent::AuthRefused { .. }))
        .count();
    assert_eq!(refusals, 3);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{}@127.0.0.1:{}", sshd.user, sshd.port)),
        "{msg}"
    );
    eprintln!("wrong password refused 3 times in {took:.2?}: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_is_refused_with_methods_named() {
    if !sshd_available("unknown_key_is_refused_with_methods_named") {
        return;
    }
    let sshd = Sshd::start();
    let target = Target::new("127.0.0.1", sshd.port, sshd.user.clone());
    let err = wait_ready(
        target,
        Auth::new().key(key()),
        WaitConfig {
            handshake_attempts: 2,
            ..fast_config()
        },
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, WaitError::AuthRefused { methods_tried, attempts: 2, .. } if methods_tried == &["publickey"]),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_listener_is_diagnosed_as_no_banner() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s); // accept, say nothing, keep open
        }
    });
    let (tx, rx) = events();
    let config = WaitConfig {
        timeout: Duration::from_millis(1500),
        banner_timeout: Duration::from_millis(300),
        ..fast_config()
    };
    let err = wait_ready(
        Target::new("127.0.0.1", port, "nobody"),
        Auth::new().key(key()),
        config,
        move |e| {
            tx.send(e).unwrap();
        },
    )
    .await
    .unwrap_err();
    holder.abort();
    let WaitError::Timeout {
        last,
        attempts,
        held,
        ..
    } = &err
    else {
        panic!("expected a timeout, got {err}");
    };
    assert!(
        matches!(
            last,
            Some(WaitEvent::TcpConnectedNoBanner {
                peer_closed: false,
                ..
            })
        ),
        "{err}"
    );
    assert!(*attempts >= 2, "{err}");
    assert!(*held > Duration::from_millis(500), "{err}");
    let seen: Vec<WaitEvent> = rx.try_iter().collect();
    assert_eq!(seen.len(), 1, "one transition only: {seen:?}");
    assert!(
        err.diagnosis().contains("no SSH banner"),
        "{}",
        err.diagnosis()
    );
    eprintln!("{err}\nhint: {}", err.diagnosis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_that_accepts_then_closes_is_named() {
    // What QEMU's user networking does while the guest's sshd is not up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let closer = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let err = wait_ready(
        Target::new("127.0.0.1", port, "nobody"),
        Auth::new().password("x"),
        WaitConfig {
            timeout: Duration::from_millis(800),
            ..fast_config()
        },
        |_| {},
    )
    .await
    .unwrap_err();
    closer.abort();
    assert!(
        matches!(
            &err,
            WaitError::Timeout {
                last: Some(WaitEvent::TcpConnectedNoBanner {
                    peer_closed: true,
                    ..
                }),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.diagnosis().contains("sshd is not up"));
    eprintln!("{err}\nhint: {}", err.diagnosis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_is_diagnosed_and_polled_quickly() {
    let port = support::free_port();
    let (tx, rx) = events();
    let err = wait_ready(
        Target::new("127.0.0.1", port, "nobody"),
        Auth::new().password("x"),
        WaitConfig {
            timeout: Duration::from_secs(1),
            ..fast_config()
        },
        move |e| {
            tx.send(e).unwrap();
        },
    )
    .await
    .unwrap_err();
    let WaitError::Timeout { last, attempts, .. } = &err else {
        panic!("{err}");
    };
    assert!(matches!(last, Some(WaitEvent::PortClosed { .. })), "{err}");
    // Polled every 100 ms, not every 5 s.
    assert!(*attempts >= 5, "{err}");
    let seen: Vec<WaitEvent> = rx.try_iter().collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    eprintln!("{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_output_and_reports_exit_status() {
    if !sshd_available("exec_streams_output_and_reports_exit_status") {
        return;
    }
    let sshd = Sshd::start();
    let k = key();
    sshd.authorize(&k);
    let session = connect(&sshd, &k).await;

    assert_eq!(
        session.exec("true", |_| {}).await.unwrap(),
        ExitStatus::Code(0)
    );
    assert_eq!(
        session.exec("exit 3", |_| {}).await.unwrap(),
        ExitStatus::Code(3)
    );
    let killed = session.exec("kill -9 $$", |_| {}).await.unwrap();
    assert!(
        matches!(&killed, ExitStatus::Signal { signal, .. } if signal == "KILL"),
        "{killed:?}"
    );
    assert_eq!(killed.shell_code(), 137);

    // Output arrives while the command still runs: the command waits for a
    // file that the test creates only after seeing the first line.
    let go = sshd.path("go");
    let cmd = format!(
        "echo ready; echo to-stderr >&2; while [ ! -e {go} ]; do sleep 0.02; done; printf 'done\\nno-newline'",
        go = go.display()
    );
    let mut lines = Vec::new();
    let status = session
        .exec_lines(&cmd, |stream, line| {
            if line == "ready" {
                std::fs::write(&go, "").unwrap();
            }
            lines.push((stream, line.to_owned()));
        })
        .await
        .unwrap();
    assert!(status.success());
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(stdout, ["ready", "done", "no-newline"]);
    assert!(lines.contains(&(Stream::Stderr, "to-stderr".to_owned())));

    // Environment is passed in the command string, as Packer does.
    let out = session
        .exec_capture("FOO='a b' BAR=2 sh -c 'echo \"$FOO-$BAR\"'")
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "a b-2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_is_distinct_and_reconnect_works() {
    if !sshd_available("lost_connection_is_distinct_and_reconnect_works") {
        return;
    }
    let mut sshd = Sshd::start();
    let k = key();
    sshd.authorize(&k);
    let mut session = connect(&sshd, &k).await;
    let port = sshd.port;

    // Kill sshd and its session processes while a command runs (a guest
    // reboot or crash, seen from the client).
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let mut started_tx = Some(started_tx);
    let exec = session.exec("echo started; sleep 60; echo never", move |o| {
        if o.data.starts_with(b"started")
            && let Some(tx) = started_tx.take()
        {
            let _ = tx.send(());
        }
    });
    let killer = async {
        started_rx.await.unwrap();
        sshd.kill_all();
    };
    let started = Instant::now();
    let (result, ()) = tokio::join!(exec, killer);
    let err = result.unwrap_err();
    assert!(err.is_disconnect(), "{err}");
    assert!(matches!(err, ExecError::Disconnected { .. }));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "noticed only after {:?}",
        started.elapsed()
    );
    eprintln!("{err}");
    assert!(session.is_closed());

    // A new command on the dead session fails the same way.
    let again = session.exec("true", |_| {}).await.unwrap_err();
    assert!(again.is_disconnect(), "{again}");

    // sshd comes back (the guest rebooted); reconnect.
    sshd.spawn();
    let (tx, rx) = events();
    session
        .reconnect(move |e| {
            tx.send(e).unwrap();
        })
        .await
        .unwrap();
    assert!(
        rx.try_iter()
            .any(|e| matches!(e, WaitEvent::Connected { .. }))
    );
    let out = session.exec_capture("echo back").await.unwrap();
    assert_eq!(out.stdout, b"back\n");
    assert_eq!(session.target().port, port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_process_killed_mid_command_is_a_disconnect() {
    if !sshd_available("session_process_killed_mid_command_is_a_disconnect") {
        return;
    }
    let sshd = Sshd::start();
    let k = key();
    sshd.authorize(&k);
    let session = connect(&sshd, &k).await;
    // $PPID of the command's shell is sshd's per-session process: killing
    // it drops the connection without an exit status.
    let err = session
        .exec("echo bye; kill -9 $PPID; sleep 30", |_| {})
        .await
        .unwrap_err();
    assert!(err.is_disconnect(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_download_follow_packer_path_rules() {
    if !sshd_available("upload_and_download_follow_packer_path_rules") {
        return;
    }
    let sshd = Sshd::start();
    let k = key();
    sshd.authorize(&k);
    let session = connect(&sshd, &k).await;
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap(); // the "guest" side (same machine)
    let r = |p: &str| remote.path().join(p);
    let rs = |p: &str| format!("{}/{p}", remote.path().display());

    // A source tree with modes, a nested and an empty directory.
    let src = local.path().join("conf");
    write_tree(
        &src,
        &[
            ("app.conf", "key = value\n", 0o640),
            ("bin/run.sh", "#!/bin/sh\necho run\n", 0o755),
            ("secret", "s3cr3t", 0o600),
            ("with space.txt", "spaced", 0o644),
        ],
        &[("bin", 0o750), ("empty", 0o700)],
    );
    let single = local.path().join("single.txt");
    std::fs::write(&single, "one file\n").unwrap();
    std::fs::set_permissions(&single, std::os::unix::fs::PermissionsExt::from_mode(0o604)).unwrap();

    // File to an explicit path.
    session.upload(&single, &rs("explicit.txt")).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(r("explicit.txt")).unwrap(),
        "one file\n"
    );
    assert_eq!(mode_of(&r("explicit.txt")), 0o604);

    // File to `dir/` (trailing slash): lands inside, dir created.
    session.upload(&single, &rs("into/")).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(r("into/single.txt")).unwrap(),
        "one file\n"
    );

    // File to an existing directory without slash: lands inside too.
    std::fs::create_dir(r("existing")).unwrap();
    session.upload(&single, &rs("existing")).await.unwrap();
    assert!(r("existing/single.txt").is_file());

    // Directory without trailing slash: the directory itself is created.
    let stats = session.upload(&src, &rs("d1")).await.unwrap();
    assert_eq!((stats.files, stats.dirs), (4, 3), "{stats:?}");
    check_tree(&r("d1/conf"));

    // Directory with trailing slash: its contents go into the destination.
    let src_slash = format!("{}/", src.display());
    session
        .upload(Path::new(&src_slash), &rs("d2"))
        .await
        .unwrap();
    check_tree(&r("d2"));
    assert!(!r("d2/conf").exists());

    // In-memory bytes with an exact mode (not masked by the umask).
    session
        .upload_bytes(b"#!/bin/sh\nexit 0\n", &rs("inline.sh"), 0o777)
        .await
        .unwrap();
    assert_eq!(mode_of(&r("inline.sh")), 0o777);
    let out = session.exec_capture(&rs("inline.sh")).await.unwrap();
    assert!(out.status.success());

    // Download a file to an explicit path and into `dir/`.
    let dl = local.path().join("dl");
    session
        .download(&rs("d1/conf/secret"), &dl.join("x/secret.copy"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dl.join("x/secret.copy")).unwrap(),
        "s3cr3t"
    );
    assert_eq!(mode_of(&dl.join("x/secret.copy")), 0o600);
    let into = format!("{}/", dl.join("y").display());
    session
        .download(&rs("d1/conf/app.conf"), Path::new(&into))
        .await
        .unwrap();
    assert_eq!(mode_of(&dl.join("y/app.conf")), 0o640);

    // Download a directory (`dir/`): as Packer, it lands under its name.
    let stats = session
        .download(&rs("d1/conf/"), &dl.join("tree"))
        .await
        .unwrap();
    assert_eq!((stats.files, stats.dirs), (4, 3), "{stats:?}");
    check_tree(&dl.join("tree/conf"));
    // A glob downloads the matches themselves.
    session
        .download(&rs("d1/conf/*"), &dl.join("glob"))
        .await
        .unwrap();
    check_tree(&dl.join("glob"));

    // Errors carry the remote path and scp's message.
    let err = session
        .download(&rs("missing.txt"), &dl.join("m"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Remote { .. }), "{err}");
    assert!(err.to_string().contains("missing.txt"), "{err}");
    let err = session
        .download(&rs("d1/conf"), &dl.join("notadir"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
    let err = session
        .upload(&single, "/proc/kiln-cannot-write-here/x")
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Remote { .. }), "{err}");
    eprintln!("{err}");
}

fn check_tree(root: &Path) {
    assert_eq!(
        std::fs::read_to_string(root.join("app.conf")).unwrap(),
        "key = value\n"
    );
    assert_eq!(mode_of(&root.join("app.conf")), 0o640);
    assert_eq!(mode_of(&root.join("bin/run.sh")), 0o755);
    assert_eq!(mode_of(&root.join("bin")), 0o750);
    assert_eq!(mode_of(&root.join("secret")), 0o600);
    assert_eq!(
        std::fs::read_to_string(root.join("with space.txt")).unwrap(),
        "spaced"
    );
    assert!(root.join("empty").is_dir());
    assert_eq!(mode_of(&root.join("empty")), 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_50_mb_reports_throughput() {
    if !sshd_available("upload_of_50_mb_reports_throughput") {
        return;
    }
    let sshd = Sshd::start();
    let k = key();
    sshd.authorize(&k);
    let session = connect(&sshd, &k).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let size = 50 * 1024 * 1024;
    let data: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();

    let dst = dir.path().join("big.copy");
    let mut reports = Vec::new();
    let start = Instant::now();
    session
        .upload_with_progress(&src, &dst.to_string_lossy(), |p| reports.push(p))
        .await
        .unwrap();
    let up = start.elapsed();
    assert!(reports.len() > 10, "{}", reports.len());
    assert_eq!(
        reports.last().copied(),
        Some(kiln_ssh::Progress {
            bytes: size as u64,
            total: Some(size as u64)
        })
    );
    assert!(
        std::fs::read(&dst).unwrap() == data,
        "upload content differs"
    );

    let back = dir.path().join("big.back");
    let start = Instant::now();
    session
        .download(&dst.to_string_lossy(), &back)
        .await
        .unwrap();
    let down = start.elapsed();
    assert!(
        std::fs::read(&back).unwrap() == data,
        "download content differs"
    );
    let mb = size as f64 / (1024.0 * 1024.0);
    eprintln!(
        "scp 50 MiB over loopback: upload {:.1} MB/s ({up:.2?}), download {:.1} MB/s ({down:.2?})",
        mb / up.as_secs_f64(),
        mb / down.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_authorized_keys_removes_only_the_build_key() {
    if !sshd_available("clear_authorized_keys_removes_only_the_build_key") {
        return;
    }
    let sshd = Sshd::start();
    let build = key();
    let other = KeyPair::generate(KeyPairType::Ed25519, None, "someone-else").unwrap();
    std::fs::write(
        &sshd.authorized_keys,
        format!(
            "{}\n{}\n",
            other.public_key_line().unwrap(),
            build.public_key_line().unwrap()
        ),
    )
    .unwrap();
    let root_file = sshd.path("root_authorized_keys");
    std::fs::write(
        &root_file,
        format!("{}\n", build.public_key_line().unwrap()),
    )
    .unwrap();

    let session = connect(&sshd, &build).await;
    let cmd = AuthorizedKeysCleanup::new(&build.public_key_line().unwrap())
        .user_file(&sshd.authorized_keys.to_string_lossy())
        .root_file(Some(&root_file.to_string_lossy()))
        .command();
    let out = session.exec_capture(&cmd).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&sshd.authorized_keys).unwrap(),
        format!("{}\n", other.public_key_line().unwrap())
    );
    if support::is_root() {
        assert_eq!(std::fs::read_to_string(&root_file).unwrap(), "");
    }
    session.close().await;

    // The build key no longer gets in; the other key still does.
    let target = Target::new("127.0.0.1", sshd.port, sshd.user.clone());
    let err = wait_ready(
        target.clone(),
        Auth::new().key(build),
        WaitConfig {
            handshake_attempts: 1,
            ..fast_config()
        },
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, WaitError::AuthRefused { .. }), "{err}");
    wait_ready(target, Auth::new().key(other), fast_config(), |_| {})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_key_files_in_openssh_and_pem_formats_authenticate() {
    if !sshd_available("user_key_files_in_openssh_and_pem_formats_authenticate") {
        return;
    }
    if !Path::new("/usr/bin/ssh-keygen").exists() {
        eprintln!("skipping: ssh-keygen not found (openssh-client)");
        return;
    }
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let keygen = |name: &str, args: &[&str]| {
        let path = dir.path().join(name);
        let status = std::process::Command::new("ssh-keygen")
            .args(args)
            .arg("-q")
            .arg("-f")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    };
    let files = [
        keygen("ed25519", &["-t", "ed25519", "-N", ""]),
        keygen(
            "rsa_pem",
            &["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", ""],
        ),
        keygen(
            "ecdsa_pem",
            &["-t", "ecdsa", "-b", "256", "-m", "PEM", "-N", ""],
        ),
        keygen(
            "rsa_pkcs8",
            &["-t", "rsa", "-b", "2048", "-m", "PKCS8", "-N", ""],
        ),
    ];
    for f in &files {
        let k = KeyPair::load(f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.source_path(), Some(f.as_path()));
        sshd.authorize(&k);
        let target = Target::new("127.0.0.1", sshd.port, sshd.user.clone());
        let s = wait_ready(target, Auth::new().key(k), fast_config(), |_| {})
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(s.exec("true", |_| {}).await.unwrap().success());
    }
    for (name, args) in [
        ("enc_openssh", &["-t", "ed25519", "-N", "pass phrase"][..]),
        (
            "enc_pem",
            &["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "pass phrase"][..],
        ),
    ] {
        let f = keygen(name, args);
        let err = KeyPair::load(&f).unwrap_err();
        assert!(
            matches!(err, kiln_ssh::KeyError::Encrypted { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(&f.display().to_string()), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_from_listener_ready_to_first_command_result() {
    if !sshd_available("time_from_listener_ready_to_first_command_result") {
        return;
    }
    let mut sshd = Sshd::prepare(support::free_port());
    let k = key();
    sshd.authorize(&k);
    let port = sshd.port;
    let target = Target::new("127.0.0.1", port, sshd.user.clone());

    // The wait starts before sshd exists, as it does while a guest boots.
    let (tx, rx) = mpsc::channel();
    let waiter = tokio::spawn(async move {
        let s = wait_ready(
            target,
            Auth::new().key(k),
            WaitConfig::default(),
            move |e| {
                tx.send((Instant::now(), e)).unwrap();
            },
        )
        .await
        .unwrap();
        let connected = Instant::now();
        let out = s.exec_capture("echo first").await.unwrap();
        assert_eq!(out.stdout, b"first\n");
        let done = Instant::now();
        // The same command again on the live session: what the login
        // shell costs by itself (root's ~/.bashrc on a dev machine can
        // take hundreds of ms; a cloud image's user has none).
        let t = Instant::now();
        s.exec_capture("echo first").await.unwrap();
        (connected, done, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Watch /proc/net/tcp for the moment the listener appears.
    let watcher = std::thread::spawn(move || {
        let limit = Instant::now() + Duration::from_secs(10);
        while !support::is_listening(port) && Instant::now() < limit {
            std::thread::sleep(Duration::from_micros(500));
        }
        Instant::now()
    });
    let spawned = Instant::now();
    sshd.spawn();
    let listening = watcher.join().unwrap();
    let (connected, done, shell_cost) = waiter.await.unwrap();
    let from_listen = done.saturating_duration_since(listening);
    for (at, e) in rx.try_iter() {
        let rel = if at >= listening {
            format!("+{:.0?}", at - listening)
        } else {
            format!("-{:.0?}", listening - at)
        };
        eprintln!("  {rel} {}", e.state_name());
    }
    eprintln!(
        "listener ready -> authenticated: {:.0?}; -> first command result: {:.0?}, of which the remote shell alone takes {:.0?} (sshd spawn -> listening {:.0?}; default 100 ms poll)",
        connected.saturating_duration_since(listening),
        from_listen,
        shell_cost,
        listening.saturating_duration_since(spawned)
    );
}

/// A TCP relay to `port` that can be frozen: it then stops forwarding in
/// both directions but keeps the connections open (a guest that hangs, a
/// network that drops packets).
struct FreezableProxy {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezableProxy {
    async fn start(to: u16) -> FreezableProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = std::sync::Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(("127.0.0.1", to))
                    .await
                    .unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut r, mut w, frozen) in [
                    (
                        Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                        f.clone(),
                    ),
                    (Box::new(sr), Box::new(cw), f.clone()),
                ] {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match r.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if frozen.load(Ordering::SeqCst) {
                                std::future::pending::<()>().await;
                            }
                            if w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = w.shutdown().await;
                    });
                }
            }
        });
        FreezableProxy { port, frozen, task }
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_connection_is_detected_by_keepalive() {
    if !sshd_available("hung_connection_is_detected_by_keepalive") {
        return;
    }
    let sshd = Sshd::start();
    let k = key();
    sshd.authorize(&k);
    let proxy = FreezableProxy::start(sshd.port).await;
    let target = Target::new("127.0.0.1", proxy.port, sshd.user.clone());
    let config = WaitConfig {
        keepalive_interval: Some(Duration::from_millis(300)),
        keepalive_max: 2,
        ..fast_config()
    };
    let session = wait_ready(target, Auth::new().key(k), config, |_| {})
        .await
        .unwrap();
    let started = Instant::now();
    let (result, ()) = tokio::join!(session.exec("echo started; sleep 60", |_| {}), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.freeze();
    });
    let err = result.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_disconnect(), "{err}");
    assert!(took < Duration::from_secs(20), "noticed after {took:?}");
    eprintln!("hung connection noticed after {took:.1?}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_ssh_server_counts_handshake_failures() {
    use tokio::io::AsyncWriteExt;
    // Sends a banner, then closes: a handshake failure each time.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"SSH-2.0-Broken_1.0\r\n").await;
            drop(s);
        }
    });
    let (tx, rx) = events();
    let err = wait_ready(
        Target::new("127.0.0.1", port, "nobody"),
        Auth::new().password("x"),
        WaitConfig {
            handshake_attempts: 3,
            ..fast_config()
        },
        move |e| {
            tx.send(e).unwrap();
        },
    )
    .await
    .unwrap_err();
    server.abort();
    assert!(
        matches!(&err, WaitError::HandshakeFailed { attempts: 3, .. }),
        "{err}"
    );
    let seen: Vec<WaitEvent> = rx.try_iter().collect();
    assert!(
        matches!(&seen[0], WaitEvent::Banner { version } if version == "SSH-2.0-Broken_1.0"),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, WaitEvent::HandshakeFailed { .. }))
            .count(),
        3
    );
    eprintln!("{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ssh_service_is_named() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            drop(s);
        }
    });
    let err = wait_ready(
        Target::new("127.0.0.1", port, "nobody"),
        Auth::new().password("x"),
        WaitConfig {
            handshake_attempts: 2,
            ..fast_config()
        },
        |_| {},
    )
    .await
    .unwrap_err();
    server.abort();
    let WaitError::HandshakeFailed { last_error, .. } = &err else {
        panic!("{err}");
    };
    assert!(last_error.contains("not an SSH server"), "{err}");
    assert!(last_error.contains("HTTP/1.1 400"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_rsa_and_ecdsa_keys_authenticate() {
    if !sshd_available("generated_rsa_and_ecdsa_keys_authenticate") {
        return;
    }
    let sshd = Sshd::start();
    for (kind, bits) in [(KeyPairType::Rsa, Some(2048)), (KeyPairType::Ecdsa, None)] {
        let k = KeyPair::generate(kind, bits, "kiln-test").unwrap();
        sshd.authorize(&k);
        let target = Target::new("127.0.0.1", sshd.port, sshd.user.clone());
        let s = wait_ready(target, Auth::new().key(k), fast_config(), |_| {})
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}\n{}", sshd.log()));
        assert!(s.exec("true", |_| {}).await.unwrap().success());
    }
}
