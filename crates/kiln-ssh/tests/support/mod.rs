//! A real OpenSSH `sshd` on a loopback port, for tests.
//!
//! Each [`Sshd`] has its own temporary directory with a host key, an
//! `authorized_keys` file, a config (`StrictModes no`, `UsePAM no`), a pid
//! file and a log. It runs as the current user (root in CI). Tests skip with
//! a message when `/usr/sbin/sshd` is absent (`apt-get install
//! openssh-server`).
//!
//! Candidate to move into `kiln-test`.

#![allow(
    dead_code,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_ssh::{KeyPair, KeyPairType};

pub const SSHD: &str = "/usr/sbin/sshd";

/// The sshd binary, or a printed reason to skip.
pub fn sshd_available(test: &str) -> bool {
    if Path::new(SSHD).exists() {
        true
    } else {
        eprintln!(
            "skipping {test}: {SSHD} not found (install Debian's openssh-server and openssh-client)"
        );
        false
    }
}

pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    out.stdout == b"0\n"
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Whether something listens on 127.0.0.1:`port`, read from /proc/net/tcp
/// (no connection is made, so an sshd is not disturbed).
pub fn is_listening(port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let want = format!(":{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
    })
}

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
    pub authorized_keys: PathBuf,
    child: Option<Child>,
}

impl Sshd {
    /// Prepares the directory and config; does not start.
    pub fn prepare(port: u16) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("kiln-sshd-")
            .tempdir()
            .unwrap();
        let host_key = KeyPair::generate(KeyPairType::Ed25519, None, "kiln-test-host").unwrap();
        let host_key_path = dir.path().join("host_ed25519");
        std::fs::write(&host_key_path, host_key.private_key_openssh().unwrap()).unwrap();
        std::fs::set_permissions(&host_key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, "").unwrap();
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {hk}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {ak}\n\
             StrictModes no\n\
             UsePAM no\n\
             PermitRootLogin yes\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\n\
             MaxStartups 100\n\
             MaxAuthTries 20\n\
             LogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n",
            hk = host_key_path.display(),
            pid = dir.path().join("sshd.pid").display(),
            ak = authorized_keys.display(),
        );
        std::fs::write(dir.path().join("sshd_config"), config).unwrap();
        if is_root() {
            // sshd's privilege separation directory.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        Sshd {
            dir,
            port,
            user: current_user(),
            authorized_keys,
            child: None,
        }
    }

    /// Prepares and starts on a free port, waiting until it listens.
    pub fn start() -> Sshd {
        let mut s = Sshd::prepare(free_port());
        s.spawn();
        s.wait_listening(Duration::from_secs(10));
        s
    }

    pub fn authorize(&self, key: &KeyPair) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.authorized_keys)
            .unwrap();
        writeln!(f, "{}", key.public_key_line().unwrap()).unwrap();
    }

    /// Starts sshd in the foreground (`-D -e`), logging to `sshd.log`.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "sshd already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sshd.log"))
            .unwrap();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sshd");
        self.child = Some(child);
    }

    pub fn wait_listening(&self, limit: Duration) {
        let start = Instant::now();
        while !is_listening(self.port) {
            assert!(
                start.elapsed() < limit,
                "sshd did not listen on {} within {limit:?}; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the listener and every session process it started.
    pub fn kill_all(&mut self) {
        if let Some(mut child) = self.child.take() {
            let mut pids = descendants(child.id());
            pids.push(child.id());
            for pid in pids {
                let _ = Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Every process whose parent chain leads to `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid …; comm may hold spaces and parens.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let fields: Vec<&str> = after.split_whitespace().collect();
            if let Some(ppid) = fields.get(1).and_then(|f| f.parse::<u32>().ok()) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(cur) = frontier.pop() {
        for (p, pp) in &parent_of {
            if *pp == cur && !out.contains(p) {
                out.push(*p);
                frontier.push(*p);
            }
        }
    }
    out
}

/// Writes a tree of files with given modes.
pub fn write_tree(root: &Path, files: &[(&str, &str, u32)], dirs: &[(&str, u32)]) {
    for (d, _) in dirs {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (f, content, mode) in files {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    for (d, mode) in dirs {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

pub fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}
