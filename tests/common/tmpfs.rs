//! A tmpfs of a fixed size, for full-disk scenarios (needs root; skipped otherwise).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether the test runs as root (euid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted on a fresh temp directory, unmounted on drop (also when the test panics).
/// Declare it before anything that uses it (a [`super::Child`] gateway), so that is dropped
/// first.
pub struct Tmpfs {
    mountpoint: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=…`, e.g. `96m`). `Err` says why it could not.
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        let mountpoint = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(mountpoint.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { mountpoint })
    }

    /// [`Tmpfs::mount`], or `None` (with the reason on stderr) when not root and mounting is
    /// refused. As root a failed mount fails the test.
    pub fn mount_or_skip(size: &str) -> Option<Tmpfs> {
        match Tmpfs::mount(size) {
            Ok(fs) => Some(fs),
            Err(why) if is_root() => panic!("running as root but cannot mount a tmpfs: {why}"),
            Err(why) => {
                eprintln!("skipped: not root and cannot mount a tmpfs: {why}");
                None
            }
        }
    }

    /// The mounted directory.
    pub fn path(&self) -> &Path {
        self.mountpoint.path()
    }

    /// Writes a file in it until the file system is full (ENOSPC): whole MiBs, then pages,
    /// then single bytes. Returns the file and the bytes written.
    pub fn fill(&self, name: &str) -> (PathBuf, u64) {
        let path = self.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5u8; 1 << 20];
        let mut written = 0u64;
        for size in [1 << 20, 4096, 1] {
            loop {
                match f.write(&chunk[..size]) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        (path, written)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.mountpoint.path();
        let ok = std::process::Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a process left in it): detach now, freed when the last user goes.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(path)
                .status();
        }
    }
}
