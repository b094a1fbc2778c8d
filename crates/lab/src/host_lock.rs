//! Host-wide build locks: what one host builds once for all its checkouts (the lab images
//! in its Docker engine, the libvirt box Vagrant registers) is built by one process at a
//! time. Two checkouts running `make up` on a fresh host, or `make test` building the box
//! while a test asks for it, would otherwise build the same thing twice at once and race
//! on its tag, its box name and the work directories.
//!
//! The lock is an advisory `flock` on a file under the host's state directory: the kernel
//! releases it when its holder exits, so a killed build never leaves a stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, failed};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

/// Where the lock named `name` lives.
pub fn path(name: &str) -> PathBuf {
    stackpilot_core::labs::host_state_dir()
        .join("locks")
        .join(format!("{name}.lock"))
}

/// Takes the host-wide lock `name` for `what`, waiting (and saying so, with how long it
/// waited) while another process holds it.
pub fn acquire(name: &str, what: &str) -> Result<HostLock, Error> {
    acquire_at(path(name), what)
}

fn acquire_at(path: PathBuf, what: &str) -> Result<HostLock, Error> {
    let cmd = format!("flock {}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(what, &format!("mkdir -p {}", dir.display()), &e.to_string()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| failed(what, &cmd, &e.to_string()))?;
    match file.try_lock() {
        Ok(()) => return Ok(HostLock { _file: file }),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => return Err(failed(what, &cmd, &e.to_string())),
    }
    eprintln!(
        "==> {what}: another process on this host holds it (lock {}): waiting for it",
        path.display()
    );
    let started = Instant::now();
    file.lock()
        .map_err(|e| failed(what, &cmd, &e.to_string()))?;
    eprintln!(
        "==> {what}: the other process released it after {:.1}s waiting; going on",
        started.elapsed().as_secs_f64()
    );
    Ok(HostLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_second_holder_gets_the_lock_only_once_the_first_released_it() {
        let dir = std::env::temp_dir().join(format!("sp-host-lock-{}", std::process::id()));
        let lock = dir.join("locks/test.lock");
        let first = acquire_at(lock.clone(), "test lock").expect("first holder");
        let other = OpenOptions::new()
            .write(true)
            .open(&lock)
            .expect("the lock file exists");
        assert!(
            matches!(other.try_lock(), Err(TryLockError::WouldBlock)),
            "held while the first holder lives"
        );
        let released = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&released);
        let waiter = std::thread::spawn(move || {
            let _second = acquire_at(lock, "test lock").expect("second holder");
            seen.load(Ordering::SeqCst)
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        drop(first);
        assert!(
            waiter.join().expect("the waiter ends"),
            "the second holder got the lock only after the first released it"
        );
        drop(other);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
