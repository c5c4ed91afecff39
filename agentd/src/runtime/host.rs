//! What a container takes from the host: the user it runs as, looked up in
//! the agent's `/etc/passwd`, and the shared root filesystem of mount points
//! for the host's top-level directories.
//!
//! It must not create containers nor write anything but the rootfs' mount
//! points and symlinks.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::spec::NOT_BOUND;
use super::{RuntimeError, SANDBOX_MOUNT};

/// Resolves the user a task runs as: `nobody` by default.
pub(crate) fn lookup_user(name: Option<&str>) -> Result<(u32, u32), RuntimeError> {
    let wanted = name.unwrap_or("nobody");
    let found = nix::unistd::User::from_name(wanted)
        .map_err(|e| RuntimeError::InvalidConfig { field: "user", reason: format!("looking up {wanted:?}: {e}") })?;
    match (found, name) {
        (Some(u), _) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        (None, None) => Ok((65534, 65534)),
        (None, Some(_)) => Err(RuntimeError::InvalidConfig {
            field: "user",
            reason: format!("no user {wanted:?} in this agent's /etc/passwd"),
        }),
    }
}

/// Brings the shared rootfs up to date with the host and returns the
/// host's top-level directories, to be bound read-only: a directory of
/// mount points for them, copies of the host's top-level symlinks
/// (`/bin -> usr/bin`), and mount points for what each container gets of
/// its own.
///
/// Every container on the host filesystem uses this one directory: its
/// mounts are made in the container's own mount namespace and it is read-only
/// there, so containers never see each other's. Sharing it spares each
/// start a few dozen inodes created and deleted (ext4 pays for every inode
/// freed recently when it allocates the next). Only additions are made, so a
/// container being created meanwhile is never disturbed.
pub(crate) fn prepare_rootfs(rootfs: &Path) -> Result<Vec<String>, RuntimeError> {
    let io = |p: &Path, e| RuntimeError::io(p, e);
    std::fs::create_dir_all(rootfs).map_err(|e| io(rootfs, e))?;
    let mut host_dirs = Vec::new();
    for entry in std::fs::read_dir("/").map_err(|e| io(Path::new("/"), e))? {
        let entry = entry.map_err(|e| io(Path::new("/"), e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if NOT_BOUND.contains(&name.as_str()) {
            continue;
        }
        let target = rootfs.join(&name);
        let kind = entry.file_type().map_err(|e| io(&entry.path(), e))?;
        if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(|e| io(&entry.path(), e))?;
            if target.symlink_metadata().is_err() {
                match symlink(&link, &target) {
                    // Another create made it meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    other => other.map_err(|e| io(&target, e))?,
                }
            }
        } else if kind.is_dir() {
            mount_point(&target)?;
            host_dirs.push(name);
        }
    }
    for own in ["proc", "sys", "dev", "tmp", SANDBOX_MOUNT.trim_start_matches('/')] {
        mount_point(&rootfs.join(own))?;
    }
    host_dirs.sort();
    Ok(host_dirs)
}

/// Makes sure directory `target` exists (a stat when it does).
fn mount_point(target: &Path) -> Result<(), RuntimeError> {
    if target.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(target).map_err(|e| RuntimeError::io(target, e))
}
