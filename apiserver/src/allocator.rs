//! Tuning of the process's allocator (mimalloc, set in `main`).
//!
//! Owns the allocator options the apiserver changes from mimalloc's
//! defaults, and why, and the start of a serving process's runtime after
//! them. Its setters must not be called once other threads run: mimalloc's
//! option setters are not thread safe.

/// `mi_option_purge_delay` in the `mi_option_e` enumeration of the mimalloc
/// (v3) sources that `libmimalloc-sys` builds; the sys crate names no
/// constant for it. The test below checks it against the option's default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory the process freed instead of handing it back to the kernel.
///
/// The store's committer and sled allocate and free large buffers all the
/// time (a batch's log record, sled's I/O buffers). With purging on, mimalloc
/// returns them to the kernel, and the next allocation faults them in again
/// as fresh transparent huge pages, which the kernel zeroes 2 MiB at a time:
/// about a quarter of the committer's CPU under load. Kept, they are reused
/// as they are. The cost is a higher peak resident size after a burst (about
/// 400 instead of 376 MiB after listing 100,000 Tasks).
///
/// Call first thing in `main`, before any other thread starts.
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: sets one integer option; called before other threads exist.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

/// Sets the allocator as [`keep_freed_memory`] does, then runs `main` to
/// its end on a new multi-thread tokio runtime: the `main` of a process that
/// serves the API. Errors only when the runtime cannot start.
pub fn block_on<T>(main: impl std::future::Future<Output = T>) -> std::io::Result<T> {
    keep_freed_memory();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(runtime.block_on(main))
}

/// The allocator's current purge delay in milliseconds (-1: never).
#[allow(unsafe_code)]
pub fn purge_delay_ms() -> std::os::raw::c_long {
    // SAFETY: reads one integer option.
    unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set_and_keeping_memory_turns_it_off() {
        // mimalloc's default purge delay (1,000 ms, `options.c`) unless the
        // environment overrides it: a renumbered enumeration reads another
        // option here.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 1000, "option {PURGE_DELAY} is not mimalloc's purge delay");
        }
        keep_freed_memory();
        assert_eq!(purge_delay_ms(), -1);
    }
}
